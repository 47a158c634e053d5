//! Local-filesystem helpers shared by every crate that keeps files.
//!
//! Owns: creating directories durably ([`create_dir_all_durable`]) and the
//! one atomic, durable file write of the workspace ([`write_atomic`],
//! [`write_atomic_private`], [`write_atomic_with`]): a temporary file next to
//! the target, filled, fsynced, renamed over the target, then the directory
//! fsynced; the naming of those temporary files ([`TEMP_PREFIX`],
//! [`is_temp_file`]) and their cleanup after a crash ([`remove_temp_files`]).
//! Does not own: any file format, or locking between processes (two writers
//! of one path each land whole; the last rename wins).
//!
//! Invariant: after a crash at any point of a write the target holds either
//! its previous bytes or the new ones, never a mix; once a write returned
//! `Ok`, the new bytes survive a power cut.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// First characters of every temporary file [`write_atomic_with`] creates
/// next to its target. A crash can leave such files behind; they are never a
/// complete file of their own.
pub const TEMP_PREFIX: &str = ".tmp.";

/// Mode of files only their owner may read or write (keys, tokens).
pub const MODE_OWNER_ONLY: u32 = 0o600;

/// Distinguishes the temporary files of concurrent writes within one
/// process; the process id distinguishes processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `create_dir_all` that also fsyncs the parent of every directory it creates,
/// so a new database's directories survive a power cut along with the files
/// later synced inside them.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent_of(dir))
}

/// Replaces `path` with `bytes`, atomically and durably (see the module
/// header), with the default permissions of new files.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, None, |file| file.write_all(bytes))
}

/// [`write_atomic`] for secrets: the file is readable and writable by its
/// owner only ([`MODE_OWNER_ONLY`]) from the moment it exists.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, Some(MODE_OWNER_ONLY), |file| file.write_all(bytes))
}

/// Replaces `path` atomically and durably with what `fill` writes into a
/// fresh temporary file created with `mode` (Unix permission bits; `None`
/// for the default). On failure the temporary file is removed (best effort)
/// and `path` is untouched; the error names `path`.
pub fn write_atomic_with(
    path: &Path,
    mode: Option<u32>,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let temp = temp_path(path)?;
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&temp)?;
        fill(&mut file)?;
        file.flush()?;
        // The bytes must be durable before the rename makes them visible, or
        // a crash could expose a complete-looking but empty file.
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        sync_dir(parent_of(path))
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is never read as a target
        // and `remove_temp_files` clears it.
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// Whether a directory entry named `name` is a temporary file of
/// [`write_atomic_with`].
pub fn is_temp_file(name: &OsStr) -> bool {
    name.to_string_lossy().starts_with(TEMP_PREFIX)
}

/// Removes the temporary files a crash left directly in `dir` (not below
/// it); returns how many. Only call when no write into `dir` is in flight
/// (e.g. at startup), or that write fails.
pub fn remove_temp_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if is_temp_file(&entry.file_name()) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Makes a change of the entries of `dir` (create, rename, unlink) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `<dir>/.tmp.<file name>.<pid>.<counter>`: next to `path`, so the rename
/// never crosses file systems, and unique among concurrent writers.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    Ok(path.with_file_name(format!(
        "{TEMP_PREFIX}{}.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    // Protects the basic contract: the target holds exactly the new bytes,
    // replacing older ones, and no temporary file stays behind.
    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(names(dir.path()), ["a.json"]);
    }

    // Protects secrets: a private write is mode 0600 from its creation on,
    // and replacing a world-readable file with a private one narrows it.
    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        write_atomic(&path, b"public").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic_private(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
    }

    // Protects "the target is untouched on failure": a fill that fails
    // leaves the old bytes and no temporary file, and the error names the
    // target.
    #[test]
    fn a_failed_write_keeps_the_old_bytes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, None, |file| {
            file.write_all(b"half")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("state"), "{err}");
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["state"]);
    }

    // Protects the error path when the target cannot be replaced (here: it
    // is a directory): an error, the directory intact, no leftovers.
    #[test]
    fn replacing_a_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"x").unwrap();
        assert!(write_atomic(&path, b"bytes").is_err());
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"x");
        assert_eq!(names(dir.path()), ["taken"]);
    }

    // Protects crash cleanup: temporary files are recognised and removed,
    // nothing else is.
    #[test]
    fn leftover_temp_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".tmp.a.json.1.2"), b"half").unwrap();
        std::fs::write(dir.path().join("a.json"), b"whole").unwrap();
        std::fs::create_dir(dir.path().join(".tmp.dir")).unwrap();
        assert_eq!(remove_temp_files(dir.path()).unwrap(), 1);
        assert_eq!(names(dir.path()), [".tmp.dir", "a.json"]);
        assert!(is_temp_file(OsStr::new(".tmp.x")));
        assert!(!is_temp_file(OsStr::new("x.tmp")));
    }
}
