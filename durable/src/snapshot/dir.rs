//! A [`BlobStore`] on a local directory.
//!
//! Owns: the mapping from keys to files under one root directory, and the
//! directories of keys; `put` is `crate::fs::write_atomic` (temp, fsync,
//! rename, fsync of the directory).
//! Does not own: locking between processes. Two processes writing the same
//! store is only safe because keys are content-addressed or written by a single
//! snapshot writer; this type does not enforce it.
//!
//! Entry points: [`DirBlobStore::open`], [`DirBlobStore::remove_temp_files`].
//!
//! Invariants:
//! - A key `a/b/c` is the file `<root>/a/b/c`; [`validate_key`] guarantees it
//!   stays under `<root>`.
//! - Temp files are named `.tmp.*` (`crate::fs::TEMP_PREFIX`) inside the
//!   target's own directory (so the rename never crosses file systems).
//!   Keys cannot start a segment with `.`, so temp files are never listed,
//!   read or overwritten as keys.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::blob::{validate_key, validate_prefix, BlobStore};
use crate::fs::sync_dir;

/// Blob store rooted at a local directory.
#[derive(Debug)]
pub struct DirBlobStore {
    root: PathBuf,
}

impl DirBlobStore {
    /// Opens (creating if needed) a store rooted at `dir`.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        let root = dir.as_ref().to_path_buf();
        crate::fs::create_dir_all_durable(&root)?;
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> io::Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Removes temp files left by puts interrupted by a crash. Only call when
    /// no `put` is in flight on this store (for example at startup, before the
    /// snapshot writer runs), or an in-progress put will fail.
    pub fn remove_temp_files(&self) -> io::Result<usize> {
        let mut removed = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let ty = entry.file_type()?;
                if ty.is_dir() {
                    stack.push(entry.path());
                } else if crate::fs::is_temp_file(&name) {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Creates `dir` and any missing ancestors below `root`, syncing each parent so
/// the new directory entries survive a crash.
fn ensure_dir(root: &Path, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .expect("a key directory always has a parent under the root");
    if parent != root {
        ensure_dir(root, parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent),
        // Another thread created it first; its creator syncs the parent.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

impl BlobStore for DirBlobStore {
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path_of(key)?;
        let dir = path
            .parent()
            .expect("a validated key has a parent directory")
            .to_path_buf();
        ensure_dir(&self.root, &dir)?;
        crate::fs::write_atomic(&path, bytes)
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let path = self.path_of(key)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn exists(&self, key: &str) -> io::Result<bool> {
        let path = self.path_of(key)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        validate_prefix(prefix)?;
        // Walk only the deepest directory the prefix fully names.
        let (dir_key, start) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], self.root.join(&prefix[..i])),
            None => ("", self.root.clone()),
        };
        let mut out = Vec::new();
        let mut stack = vec![(start, dir_key.to_owned())];
        while let Some((dir, key_prefix)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue; // not a key this store could have written
                };
                if name.starts_with('.') {
                    continue; // temp files and anything else outside the key space
                }
                let key = if key_prefix.is_empty() {
                    name
                } else {
                    format!("{key_prefix}/{name}")
                };
                let ty = entry.file_type()?;
                if ty.is_dir() {
                    // Only descend where keys below could still match the prefix.
                    if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) {
                        stack.push((entry.path(), key));
                    }
                } else if ty.is_file() && key.starts_with(prefix) {
                    out.push(key);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(
                path.parent()
                    .expect("a validated key has a parent directory"),
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_files(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).expect("read_dir") {
                let e = e.expect("entry");
                if e.file_type().expect("type").is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out
    }

    // Protects: the basic contract on disk, including nested keys and list by partial name.
    #[test]
    fn contract() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = DirBlobStore::open(tmp.path()).expect("open");
        s.put("b/2", b"two").expect("put");
        s.put("a/1", b"one").expect("put");
        s.put("b/1", b"one").expect("put");
        s.put("bb", b"x").expect("put");
        s.put("b/1", b"uno").expect("overwrite");
        assert_eq!(s.get("b/1").expect("get"), Some(b"uno".to_vec()));
        assert_eq!(s.get("zz").expect("get"), None);
        assert_eq!(s.get("q/zz").expect("get in missing dir"), None);
        assert!(s.exists("b/2").expect("exists"));
        assert!(!s.exists("b").expect("a directory is not a key"));
        assert_eq!(s.list("b/").expect("list"), vec!["b/1", "b/2"]);
        assert_eq!(s.list("b").expect("list"), vec!["b/1", "b/2", "bb"]);
        assert_eq!(s.list("nope/").expect("list"), Vec::<String>::new());
        s.delete("b/1").expect("delete");
        s.delete("b/1").expect("delete missing is ok");
        assert_eq!(s.list("").expect("list"), vec!["a/1", "b/2", "bb"]);
    }

    // Protects: keys that would escape the root or hit temp-file names are rejected by every operation.
    #[test]
    fn rejects_bad_keys() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = DirBlobStore::open(tmp.path().join("store")).expect("open");
        for bad in [
            "../escape",
            "/etc/passwd",
            "a//b",
            "a/",
            "",
            "a/../../b",
            ".tmp.x",
            "a/./b",
        ] {
            assert_eq!(
                s.put(bad, b"x").expect_err(bad).kind(),
                io::ErrorKind::InvalidInput,
                "{bad}"
            );
            assert!(s.get(bad).is_err(), "{bad}");
            assert!(s.exists(bad).is_err(), "{bad}");
            assert!(s.delete(bad).is_err(), "{bad}");
        }
        assert!(s.list("../").is_err());
        assert!(!tmp.path().join("escape").exists());
    }

    // Protects: a successful put leaves only the final file (no temp files), and
    // stray temp files from a crash are invisible to list and removable.
    #[test]
    fn no_temp_files_after_put() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = DirBlobStore::open(tmp.path()).expect("open");
        for i in 0..5 {
            s.put(&format!("objects/k{i}"), &[i; 100]).expect("put");
        }
        let mut files = all_files(tmp.path());
        files.sort();
        assert_eq!(files, vec!["k0", "k1", "k2", "k3", "k4"]);
        // Simulate a crash mid-put.
        fs::write(tmp.path().join("objects/.tmp.k9.1.1"), b"partial").expect("write");
        assert_eq!(s.list("objects/").expect("list").len(), 5);
        assert_eq!(s.remove_temp_files().expect("sweep"), 1);
        assert_eq!(all_files(tmp.path()).len(), 5);
    }
}
