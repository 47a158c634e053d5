//! Storage abstraction under the commit log, and its local-disk implementation.
//!
//! Owns: the [`SegmentStore`] / [`SegmentFile`] traits (kept small so tests
//! can inject faults and a later object-storage layer can ship sealed
//! segments) and [`FileSegmentStore`]. Does not own: the byte format or any
//! decision about validity; a store moves opaque bytes.
//!
//! Entry points: [`FileSegmentStore::open`], [`FileSegmentStore::lose_unsynced_on_crash`].
//!
//! Invariants: when `create` or `remove` returns Ok the directory entry change
//! is durable; when `sync` returns Ok every byte appended to that file before
//! it is durable; `open_append` makes its truncation durable before returning.

use orrery_api::TxOffset;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A set of segments, each named by the offset of its first record.
pub trait SegmentStore: Send + Sync + 'static {
    /// First offsets of the existing segments, ascending.
    fn list(&self) -> io::Result<Vec<TxOffset>>;
    /// The whole content of a segment (as far as the medium returns it).
    fn read(&self, first: TxOffset) -> io::Result<Vec<u8>>;
    /// The content of a segment from byte `start` on (empty past its end).
    /// Stores that can seek override it; the default reads the whole segment.
    fn read_from(&self, first: TxOffset, start: u64) -> io::Result<Vec<u8>> {
        let mut bytes = self.read(first)?;
        let start = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        bytes.drain(..start);
        Ok(bytes)
    }
    /// Creates a new, empty segment; its directory entry is durable on return.
    /// Fails if the segment already exists.
    fn create(&self, first: TxOffset) -> io::Result<Box<dyn SegmentFile>>;
    /// Truncates an existing segment to `valid_len` bytes, makes that (and
    /// the content kept) durable, and returns a handle appending after it.
    fn open_append(&self, first: TxOffset, valid_len: u64) -> io::Result<Box<dyn SegmentFile>>;
    /// Deletes a segment; the deletion is durable on return.
    fn remove(&self, first: TxOffset) -> io::Result<()>;
}

/// An open segment that is being appended to.
pub trait SegmentFile: Send {
    /// Appends bytes at the end. They are not durable until `sync`.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// Segments as files `{first:020}.seg` in one directory of a local file system.
#[derive(Debug, Clone)]
pub struct FileSegmentStore {
    dir: PathBuf,
    lose_unsynced: bool,
}

impl FileSegmentStore {
    /// Uses (and creates, if missing) the directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<FileSegmentStore> {
        let dir = dir.as_ref().to_path_buf();
        crate::fs::create_dir_all_durable(&dir)?;
        Ok(FileSegmentStore {
            dir,
            lose_unsynced: false,
        })
    }

    /// Crash-test mode: appended bytes stay in a user-space buffer and reach
    /// the file only inside `sync` (write + fdatasync). A SIGKILL then loses
    /// exactly the unsynced bytes, as a power cut would; without this the
    /// kernel page cache would keep them and hide missing syncs.
    pub fn lose_unsynced_on_crash(mut self, on: bool) -> FileSegmentStore {
        self.lose_unsynced = on;
        self
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, first: TxOffset) -> PathBuf {
        self.dir.join(format!("{:020}.seg", first.0))
    }

    /// Makes directory entry changes (create, unlink) durable.
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn handle(&self, file: File) -> Box<dyn SegmentFile> {
        Box::new(FileSegment {
            file,
            buffer: Vec::new(),
            lose_unsynced: self.lose_unsynced,
        })
    }
}

/// Parses `{first:020}.seg`; anything else in the directory is not ours.
fn parse_name(name: &str) -> Option<TxOffset> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(TxOffset)
}

impl SegmentStore for FileSegmentStore {
    fn list(&self) -> io::Result<Vec<TxOffset>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(first) = entry.file_name().to_str().and_then(parse_name) {
                out.push(first);
            }
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, first: TxOffset) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(first))
    }

    fn read_from(&self, first: TxOffset, start: u64) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = File::open(self.path(first))?;
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn create(&self, first: TxOffset) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(self.path(first))?;
        self.sync_dir()?;
        Ok(self.handle(file))
    }

    fn open_append(&self, first: TxOffset, valid_len: u64) -> io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().append(true).open(self.path(first))?;
        file.set_len(valid_len)?;
        // sync_all, not sync_data: the size change is metadata we rely on.
        // This also flushes kept bytes that might only sit in the page cache
        // (e.g. after an earlier failed fsync) before we call them durable.
        file.sync_all()?;
        Ok(self.handle(file))
    }

    fn remove(&self, first: TxOffset) -> io::Result<()> {
        std::fs::remove_file(self.path(first))?;
        self.sync_dir()
    }
}

struct FileSegment {
    file: File,
    buffer: Vec<u8>,
    lose_unsynced: bool,
}

impl SegmentFile for FileSegment {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.lose_unsynced {
            self.buffer.extend_from_slice(bytes);
            Ok(())
        } else {
            self.file.write_all(bytes)
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            let pending = std::mem::take(&mut self.buffer);
            self.file.write_all(&pending)?;
        }
        // fdatasync: flushes the data and the size needed to read it back.
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the file naming, listing order, and create/read/remove behaviour.
    #[test]
    fn file_store_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileSegmentStore::open(dir.path()).expect("open");
        std::fs::write(dir.path().join("notes.txt"), b"not a segment").expect("write");
        for first in [10u64, 0, 5] {
            let mut f = store.create(TxOffset(first)).expect("create");
            f.append(&first.to_le_bytes()).expect("append");
            f.sync().expect("sync");
        }
        assert!(dir.path().join("00000000000000000005.seg").exists());
        assert_eq!(
            store.list().expect("list"),
            vec![TxOffset(0), TxOffset(5), TxOffset(10)]
        );
        assert_eq!(store.read(TxOffset(5)).expect("read"), 5u64.to_le_bytes());
        assert!(
            store.create(TxOffset(5)).is_err(),
            "create must not clobber"
        );
        store.remove(TxOffset(5)).expect("remove");
        assert_eq!(store.list().expect("list"), vec![TxOffset(0), TxOffset(10)]);
    }

    // Protects truncation on open_append and that appends continue after it.
    #[test]
    fn open_append_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileSegmentStore::open(dir.path()).expect("open");
        let mut f = store.create(TxOffset(0)).expect("create");
        f.append(b"abcdef").expect("append");
        f.sync().expect("sync");
        drop(f);
        let mut f = store.open_append(TxOffset(0), 3).expect("open_append");
        f.append(b"XY").expect("append");
        f.sync().expect("sync");
        assert_eq!(store.read(TxOffset(0)).expect("read"), b"abcXY");
    }

    // Protects the crash-test mode: unsynced bytes never reach the file.
    #[test]
    fn lose_unsynced_mode_holds_bytes_until_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileSegmentStore::open(dir.path())
            .expect("open")
            .lose_unsynced_on_crash(true);
        let mut f = store.create(TxOffset(0)).expect("create");
        f.append(b"abc").expect("append");
        assert_eq!(store.read(TxOffset(0)).expect("read"), b"");
        f.sync().expect("sync");
        f.append(b"def").expect("append");
        drop(f); // as if killed: the buffered tail is lost
        assert_eq!(store.read(TxOffset(0)).expect("read"), b"abc");
    }
}
