//! Local-filesystem helpers shared by the file-backed stores.
//!
//! Owns: creating directories durably. Does not own: any file format.

use std::fs::File;
use std::io;
use std::path::Path;

/// `create_dir_all` that also fsyncs the parent of every directory it creates,
/// so a new database's directories survive a power cut along with the files
/// later synced inside them.
pub(crate) fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
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
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}
