//! The snapshot repository: publication, reading, recovery and retention.
//!
//! Owns: the key layout (`objects/<blake3 hex>`, `snapshots/<offset:020>.manifest`),
//! the write protocol (objects first, manifest last), verified reads, the
//! fallback search used by recovery, and garbage collection of old snapshots.
//! Does not own: the meaning or encoding of parts, when to snapshot, or how many
//! snapshots to keep (the caller passes `keep`, normally
//! `orrery_api::limits::SNAPSHOT_RETAIN_DEFAULT`).
//!
//! Entry points: [`SnapshotRepo::new`], [`SnapshotRepo::write`],
//! [`SnapshotRepo::list`], [`SnapshotRepo::read`],
//! [`SnapshotRepo::read_newest_valid`], [`SnapshotRepo::retain`].
//!
//! Invariants:
//! - Every object a manifest references is present before the manifest is put,
//!   and is not deleted while any manifest referencing it (or any manifest that
//!   cannot be parsed) is present.
//! - `write` and `retain` are serialised by one mutex, so retention can never
//!   delete an object that a concurrent write has just decided to reuse.
//!   Across processes this relies on a single writer per repository (the
//!   placement lease); readers need no coordination.

// `SnapshotError::CorruptObject` carries both hashes so one log line identifies
// the damage; errors are the cold path, so its size does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use orrery_api::TxOffset;

use super::blob::BlobStore;
use super::error::{ManifestError, SnapshotError};
use super::manifest::{Manifest, ManifestPart, ObjectHash, NAME_BYTES_MAX};
use crate::clock::Clock;

const OBJECTS_PREFIX: &str = "objects/";
const SNAPSHOTS_PREFIX: &str = "snapshots/";
const MANIFEST_SUFFIX: &str = ".manifest";

/// Key of the object holding bytes with this hash.
pub fn object_key(hash: &ObjectHash) -> String {
    format!("{OBJECTS_PREFIX}{hash}")
}

/// Key of the manifest publishing the snapshot at `offset`. Zero-padded to 20
/// digits (the width of `u64::MAX`) so key order is offset order.
pub fn manifest_key(offset: TxOffset) -> String {
    format!("{SNAPSHOTS_PREFIX}{:020}{MANIFEST_SUFFIX}", offset.0)
}

/// The offset named by a manifest key, or `None` for any other key (temp
/// files, stray uploads, a different padding).
pub fn parse_manifest_key(key: &str) -> Option<TxOffset> {
    let digits = key
        .strip_prefix(SNAPSHOTS_PREFIX)?
        .strip_suffix(MANIFEST_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(TxOffset)
}

/// One named part of a snapshot, owned (as returned by [`SnapshotRepo::read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPart {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Caller-supplied, recorded in the manifest and returned as is.
    pub row_count: u64,
}

impl SnapshotPart {
    /// Borrows this part for [`SnapshotRepo::write`].
    pub fn as_part_ref(&self) -> SnapshotPartRef<'_> {
        SnapshotPartRef {
            name: &self.name,
            bytes: &self.bytes,
            row_count: self.row_count,
        }
    }
}

/// One named part of a snapshot, borrowed: the engine keeps its encoded
/// buffers and this module hashes and uploads them without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPartRef<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
    pub row_count: u64,
}

/// A snapshot read back and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub offset: TxOffset,
    pub created_at_micros: i64,
    /// Caller bytes given to [`SnapshotRepo::write_with_metadata`] (empty otherwise).
    pub metadata: Vec<u8>,
    /// In the order they were written.
    pub parts: Vec<SnapshotPart>,
}

/// What [`SnapshotRepo::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotWritten {
    pub offset: TxOffset,
    /// Distinct objects uploaded by this call.
    pub objects_written: usize,
    /// Distinct objects already present and not uploaded again.
    pub objects_reused: usize,
    /// Bytes handed to `put`: new objects plus the manifest.
    pub bytes_written: u64,
    /// True if an identical manifest was already published (an idempotent retry);
    /// the manifest was then not rewritten.
    pub already_published: bool,
}

/// Outcome of [`SnapshotRepo::read_newest_valid`].
#[derive(Debug)]
pub struct Recovered {
    /// The newest snapshot that verified, if any.
    pub snapshot: Option<Snapshot>,
    /// Newer snapshots that were skipped, newest first, with why. Reported even
    /// when no snapshot verified, so "all damaged" is distinguishable from "none".
    pub skipped: Vec<(TxOffset, SnapshotError)>,
}

/// What [`SnapshotRepo::retain`] did.
#[derive(Debug, Default)]
pub struct RetainReport {
    /// Snapshots whose manifests verified and were kept, newest first.
    pub kept: Vec<TxOffset>,
    /// Manifests deleted, oldest first.
    pub manifests_deleted: Vec<TxOffset>,
    /// Newer manifests that failed to verify: left in place (the failure may be
    /// transient) and not counted towards `keep`.
    pub unreadable: Vec<(TxOffset, SnapshotError)>,
    /// Unreferenced objects deleted.
    pub objects_deleted: usize,
    /// True if the object sweep did not run because some present manifest could
    /// not be read, so the set of referenced objects was unknown.
    pub sweep_skipped: bool,
}

/// Snapshots of one database over a blob store. Cheap to share behind an `Arc`;
/// every method takes `&self`.
pub struct SnapshotRepo {
    store: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    /// Serialises `write` and `retain` (see the module invariants). Guards no
    /// data, only the order of store operations.
    writer: Mutex<()>,
}

impl std::fmt::Debug for SnapshotRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotRepo").finish_non_exhaustive()
    }
}

fn io_err(key: &str) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        key: key.to_owned(),
        source,
    }
}

impl SnapshotRepo {
    pub fn new(store: Arc<dyn BlobStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            writer: Mutex::new(()),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic in another writer leaves nothing
        // inconsistent in memory; the store itself is crash-safe by protocol.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the snapshot at `offset` with no caller metadata.
    /// See [`SnapshotRepo::write_with_metadata`].
    pub fn write(
        &self,
        offset: TxOffset,
        parts: &[SnapshotPartRef<'_>],
    ) -> Result<SnapshotWritten, SnapshotError> {
        self.write_with_metadata(offset, parts, &[])
    }

    /// Stores every part as a content-addressed object (skipping objects
    /// already present), then publishes the manifest.
    ///
    /// Re-publishing an offset is idempotent when the contents (part names,
    /// bytes, row counts, metadata; not the creation time) are identical: this
    /// makes retrying after an ambiguous failure (a PUT that timed out but
    /// landed) safe. Different contents at a published offset are a
    /// [`SnapshotError::Conflict`]. A manifest at the offset that fails to
    /// verify is replaced.
    pub fn write_with_metadata(
        &self,
        offset: TxOffset,
        parts: &[SnapshotPartRef<'_>],
        metadata: &[u8],
    ) -> Result<SnapshotWritten, SnapshotError> {
        if u32::try_from(parts.len()).is_err() {
            return Err(SnapshotError::TooLarge {
                offset,
                what: "part count",
                len: parts.len() as u64,
            });
        }
        if u32::try_from(metadata.len()).is_err() {
            return Err(SnapshotError::TooLarge {
                offset,
                what: "metadata",
                len: metadata.len() as u64,
            });
        }
        let mut names = HashSet::with_capacity(parts.len());
        for p in parts {
            let reason = if p.name.is_empty() {
                Some("empty")
            } else if p.name.len() > NAME_BYTES_MAX {
                Some("longer than NAME_BYTES_MAX")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SnapshotError::InvalidPartName {
                    offset,
                    name: p.name.to_owned(),
                    reason,
                });
            }
            if !names.insert(p.name) {
                return Err(SnapshotError::DuplicatePartName {
                    offset,
                    name: p.name.to_owned(),
                });
            }
        }

        // Hash before taking the lock: it is the expensive CPU part.
        let entries: Vec<ManifestPart> = parts
            .iter()
            .map(|p| ManifestPart {
                name: p.name.to_owned(),
                hash: ObjectHash::of(p.bytes),
                len: p.bytes.len() as u64,
                row_count: p.row_count,
            })
            .collect();

        let _writer = self.lock_writer();
        let manifest = Manifest {
            offset,
            created_at_micros: self.clock.now_micros(),
            metadata: metadata.to_vec(),
            parts: entries,
        };

        let key = manifest_key(offset);
        let mut already_published = false;
        match self.read_manifest(offset) {
            Ok(existing) if existing.same_contents(&manifest) => already_published = true,
            Ok(_) => return Err(SnapshotError::Conflict { offset, key }),
            // Nothing usable there: publishing repairs it.
            Err(SnapshotError::NotFound { .. } | SnapshotError::CorruptManifest { .. }) => {}
            Err(e) => return Err(e),
        }

        // Objects first. Even for an idempotent retry this loop runs: it only
        // costs existence checks and restores any object that went missing.
        let mut objects_written = 0;
        let mut objects_reused = 0;
        let mut bytes_written = 0u64;
        let mut seen = HashSet::with_capacity(parts.len());
        for (part, entry) in parts.iter().zip(&manifest.parts) {
            if !seen.insert(entry.hash) {
                continue; // two parts with identical bytes share one object
            }
            let okey = object_key(&entry.hash);
            if self.store.exists(&okey).map_err(io_err(&okey))? {
                objects_reused += 1;
            } else {
                self.store.put(&okey, part.bytes).map_err(io_err(&okey))?;
                objects_written += 1;
                bytes_written += entry.len;
            }
        }
        assert_eq!(
            objects_written + objects_reused,
            seen.len(),
            "every distinct object accounted for"
        );

        if !already_published {
            let encoded = manifest.encode();
            // Cheap relative to the upload, and a mismatch here would publish a
            // snapshot that can never be read: keep it on in release.
            assert_eq!(
                Manifest::decode(&encoded).as_ref(),
                Ok(&manifest),
                "manifest round trip"
            );
            // The manifest goes last: only now does the snapshot exist.
            self.store.put(&key, &encoded).map_err(io_err(&key))?;
            bytes_written += encoded.len() as u64;
        }

        Ok(SnapshotWritten {
            offset,
            objects_written,
            objects_reused,
            bytes_written,
            already_published,
        })
    }

    /// Offsets of all published manifests, newest first. Keys under
    /// `snapshots/` that are not manifest names are ignored. Does not verify.
    pub fn list(&self) -> Result<Vec<TxOffset>, SnapshotError> {
        let keys = self
            .store
            .list(SNAPSHOTS_PREFIX)
            .map_err(io_err(SNAPSHOTS_PREFIX))?;
        let mut offsets: Vec<TxOffset> =
            keys.iter().filter_map(|k| parse_manifest_key(k)).collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        Ok(offsets)
    }

    /// Reads and verifies the manifest at `offset` (checksum, structure, and
    /// that the offset inside matches the key).
    pub fn read_manifest(&self, offset: TxOffset) -> Result<Manifest, SnapshotError> {
        let key = manifest_key(offset);
        let Some(bytes) = self.store.get(&key).map_err(io_err(&key))? else {
            return Err(SnapshotError::NotFound { offset, key });
        };
        let manifest = match Manifest::decode(&bytes) {
            Ok(m) => m,
            Err(reason) => {
                return Err(SnapshotError::CorruptManifest {
                    offset,
                    key,
                    reason,
                })
            }
        };
        if manifest.offset != offset {
            let reason = ManifestError::OffsetMismatch {
                recorded: manifest.offset,
                key_offset: offset,
            };
            return Err(SnapshotError::CorruptManifest {
                offset,
                key,
                reason,
            });
        }
        Ok(manifest)
    }

    /// Reads the snapshot at `offset`, verifying the manifest and every
    /// object's length and BLAKE3 hash.
    pub fn read(&self, offset: TxOffset) -> Result<Snapshot, SnapshotError> {
        let manifest = self.read_manifest(offset)?;
        let mut parts: Vec<SnapshotPart> = Vec::with_capacity(manifest.parts.len());
        // Parts with identical bytes share an object; fetch it once.
        let mut fetched: HashMap<ObjectHash, usize> = HashMap::new();
        for entry in manifest.parts {
            if let Some(&i) = fetched.get(&entry.hash) {
                let bytes = parts[i].bytes.clone();
                parts.push(SnapshotPart {
                    name: entry.name,
                    bytes,
                    row_count: entry.row_count,
                });
                continue;
            }
            let okey = object_key(&entry.hash);
            let Some(bytes) = self.store.get(&okey).map_err(io_err(&okey))? else {
                // Retention deletes the manifest before its objects; if the
                // manifest is gone too, the snapshot was retired under us.
                let mkey = manifest_key(offset);
                if !self.store.exists(&mkey).map_err(io_err(&mkey))? {
                    return Err(SnapshotError::NotFound { offset, key: mkey });
                }
                return Err(SnapshotError::MissingObject {
                    offset,
                    name: entry.name,
                    key: okey,
                });
            };
            let actual = ObjectHash::of(&bytes);
            if actual != entry.hash || bytes.len() as u64 != entry.len {
                return Err(SnapshotError::CorruptObject {
                    offset,
                    name: entry.name,
                    key: okey,
                    expected: entry.hash,
                    actual,
                    expected_len: entry.len,
                    actual_len: bytes.len() as u64,
                });
            }
            fetched.insert(entry.hash, parts.len());
            parts.push(SnapshotPart {
                name: entry.name,
                bytes,
                row_count: entry.row_count,
            });
        }
        Ok(Snapshot {
            offset,
            created_at_micros: manifest.created_at_micros,
            metadata: manifest.metadata,
            parts,
        })
    }

    /// The newest snapshot at or below `at_or_below` (any, if `None`) that
    /// fully verifies. Damaged snapshots are skipped and reported so recovery
    /// can fall back to an older one; a store I/O error is returned instead,
    /// since falling back on a transient outage would discard good progress.
    pub fn read_newest_valid(
        &self,
        at_or_below: Option<TxOffset>,
    ) -> Result<Recovered, SnapshotError> {
        let mut skipped = Vec::new();
        for offset in self.list()? {
            if at_or_below.is_some_and(|max| offset > max) {
                continue;
            }
            match self.read(offset) {
                Ok(snapshot) => {
                    return Ok(Recovered {
                        snapshot: Some(snapshot),
                        skipped,
                    })
                }
                Err(e) if e.snapshot_unusable() => skipped.push((offset, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(Recovered {
            snapshot: None,
            skipped,
        })
    }

    /// Keeps the newest `keep` snapshots whose manifests verify and deletes the
    /// rest, then deletes objects no remaining manifest references.
    ///
    /// Order is what makes this crash-safe: manifests are deleted before any
    /// object, and an object is deleted only if no manifest present references
    /// it, so a crash at any point leaves at worst unreferenced objects, which
    /// the next call removes.
    ///
    /// Manifests that fail to verify: those newer than the oldest kept snapshot
    /// stay in place and are reported (a bad read may be transient, and they do
    /// not count towards `keep`); older ones are deleted like any old manifest.
    /// While any present manifest cannot be read the object sweep is skipped,
    /// because the objects it references are unknown and could belong to a
    /// good snapshot seen through a bad read. Such a manifest ages out after
    /// `keep` newer snapshots, so the sweep resumes on its own.
    ///
    /// Only verifies manifests, not objects (that would download everything).
    pub fn retain(&self, keep: usize) -> Result<RetainReport, SnapshotError> {
        if keep == 0 {
            return Err(SnapshotError::RetainNothing { keep });
        }
        let _writer = self.lock_writer();
        let mut report = RetainReport::default();
        let mut referenced_by: BTreeMap<TxOffset, Manifest> = BTreeMap::new();
        let mut to_delete = Vec::new();
        for offset in self.list()? {
            if report.kept.len() >= keep {
                to_delete.push(offset);
                continue;
            }
            match self.read_manifest(offset) {
                Ok(m) => {
                    report.kept.push(offset);
                    referenced_by.insert(offset, m);
                }
                Err(e) if e.snapshot_unusable() => report.unreadable.push((offset, e)),
                Err(e) => return Err(e),
            }
        }

        // Oldest first, so an interrupted retention leaves a contiguous run of
        // the newest snapshots.
        for &offset in to_delete.iter().rev() {
            let key = manifest_key(offset);
            self.store.delete(&key).map_err(io_err(&key))?;
            report.manifests_deleted.push(offset);
        }

        if !report.unreadable.is_empty() {
            report.sweep_skipped = true;
            return Ok(report);
        }

        // Re-list: a manifest we did not see (another writer breaking the
        // single-writer rule) must still protect its objects.
        for offset in self.list()? {
            if referenced_by.contains_key(&offset) {
                continue;
            }
            match self.read_manifest(offset) {
                Ok(m) => {
                    referenced_by.insert(offset, m);
                }
                Err(e) if e.snapshot_unusable() => {
                    if !matches!(e, SnapshotError::NotFound { .. }) {
                        report.unreadable.push((offset, e));
                        report.sweep_skipped = true;
                        return Ok(report);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let live: HashSet<String> = referenced_by
            .values()
            .flat_map(|m| m.parts.iter().map(|p| object_key(&p.hash)))
            .collect();

        for key in self
            .store
            .list(OBJECTS_PREFIX)
            .map_err(io_err(OBJECTS_PREFIX))?
        {
            // Keys that are not ours (not a hash) are left alone.
            let ours = key
                .strip_prefix(OBJECTS_PREFIX)
                .and_then(ObjectHash::from_hex)
                .is_some();
            if ours && !live.contains(&key) {
                self.store.delete(&key).map_err(io_err(&key))?;
                report.objects_deleted += 1;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::snapshot::{DirBlobStore, MemoryBlobStore, Unreliable};
    use proptest::prelude::*;

    fn part(name: &str, bytes: &[u8], rows: u64) -> SnapshotPart {
        SnapshotPart {
            name: name.to_owned(),
            bytes: bytes.to_vec(),
            row_count: rows,
        }
    }

    fn refs(parts: &[SnapshotPart]) -> Vec<SnapshotPartRef<'_>> {
        parts.iter().map(SnapshotPart::as_part_ref).collect()
    }

    fn repo_over(store: Arc<dyn BlobStore>) -> (SnapshotRepo, ManualClock) {
        let clock = ManualClock::new(1_000);
        (SnapshotRepo::new(store, Arc::new(clock.clone())), clock)
    }

    fn three_tables() -> Vec<SnapshotPart> {
        vec![
            part("meta", b"schema", 0),
            part("users", b"alice,bob", 2),
            part("orders", &[7; 1000], 50),
        ]
    }

    fn object_count(store: &dyn BlobStore) -> usize {
        store.list(OBJECTS_PREFIX).expect("list objects").len()
    }

    // Protects: what is written is exactly what is read back, in memory.
    #[test]
    fn round_trip_memory() {
        let store = MemoryBlobStore::new();
        let (repo, clock) = repo_over(Arc::new(store.clone()));
        let parts = three_tables();
        clock.set(123_456);
        let w = repo
            .write_with_metadata(TxOffset(10), &refs(&parts), b"engine v1")
            .expect("write");
        assert_eq!(
            (w.objects_written, w.objects_reused, w.already_published),
            (3, 0, false)
        );
        assert!(w.bytes_written > 1006);
        assert_eq!(repo.list().expect("list"), vec![TxOffset(10)]);
        let s = repo.read(TxOffset(10)).expect("read");
        assert_eq!(s.offset, TxOffset(10));
        assert_eq!(s.created_at_micros, 123_456);
        assert_eq!(s.metadata, b"engine v1");
        assert_eq!(s.parts, parts);
        assert!(matches!(
            repo.read(TxOffset(11)),
            Err(SnapshotError::NotFound {
                offset: TxOffset(11),
                ..
            })
        ));
    }

    // Protects: round trip on disk, including through a freshly opened store (durable layout).
    #[test]
    fn round_trip_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let parts = three_tables();
        {
            let (repo, _) = repo_over(Arc::new(DirBlobStore::open(tmp.path()).expect("open")));
            repo.write(TxOffset(1), &refs(&parts)).expect("write");
            repo.write(TxOffset(u64::MAX), &refs(&parts[..1]))
                .expect("write max offset");
        }
        let (repo, _) = repo_over(Arc::new(DirBlobStore::open(tmp.path()).expect("reopen")));
        assert_eq!(
            repo.list().expect("list"),
            vec![TxOffset(u64::MAX), TxOffset(1)]
        );
        assert_eq!(repo.read(TxOffset(1)).expect("read").parts, parts);
        assert_eq!(
            repo.read(TxOffset(u64::MAX)).expect("read").parts,
            parts[..1]
        );
        assert!(tmp
            .path()
            .join("snapshots/00000000000000000001.manifest")
            .is_file());
    }

    // Protects: unchanged parts are not uploaded again; one changed table = one new object.
    #[test]
    fn dedup_writes_only_changed_parts() {
        let store = MemoryBlobStore::new();
        let (repo, _) = repo_over(Arc::new(store.clone()));
        let mut parts = three_tables();
        repo.write(TxOffset(1), &refs(&parts)).expect("write 1");
        parts[1].bytes = b"alice,bob,carol".to_vec();
        parts[1].row_count = 3;
        let w = repo.write(TxOffset(2), &refs(&parts)).expect("write 2");
        assert_eq!((w.objects_written, w.objects_reused), (1, 2));
        assert_eq!(object_count(&store), 4);
        // Identical bytes in two parts of one snapshot share one object too.
        let twins = vec![part("a", b"same", 1), part("b", b"same", 1)];
        let w = repo.write(TxOffset(3), &refs(&twins)).expect("write 3");
        assert_eq!((w.objects_written, w.objects_reused), (1, 0));
        assert_eq!(repo.read(TxOffset(3)).expect("read").parts, twins);
    }

    // Protects: a bit-flipped object is a typed CorruptObject error, never data,
    // and recovery falls back to the older snapshot.
    #[test]
    fn corrupt_object_detected_and_recovery_falls_back() {
        let store = Arc::new(Unreliable::new(MemoryBlobStore::new()));
        let (repo, _) = repo_over(store.clone());
        let mut parts = three_tables();
        repo.write(TxOffset(5), &refs(&parts)).expect("write 5");
        parts[2].bytes[0] = 8;
        repo.write(TxOffset(9), &refs(&parts)).expect("write 9");
        let bad = object_key(&ObjectHash::of(&parts[2].bytes));
        store.flip_bit(&bad, 3);
        match repo.read(TxOffset(9)) {
            Err(SnapshotError::CorruptObject {
                offset,
                name,
                key,
                expected,
                actual,
                expected_len,
                actual_len,
            }) => {
                assert_eq!(
                    (offset, name.as_str(), key.as_str()),
                    (TxOffset(9), "orders", bad.as_str())
                );
                assert_eq!(expected, ObjectHash::of(&parts[2].bytes));
                assert_ne!(actual, expected);
                assert_eq!((expected_len, actual_len), (1000, 1000));
            }
            other => panic!("expected CorruptObject, got {other:?}"),
        }
        let r = repo.read_newest_valid(None).expect("recover");
        assert_eq!(r.snapshot.expect("older snapshot").offset, TxOffset(5));
        assert_eq!(r.skipped.len(), 1);
        assert!(matches!(
            r.skipped[0],
            (TxOffset(9), SnapshotError::CorruptObject { .. })
        ));
    }

    // Protects: damage made by overwriting stored bytes (truncation) or deleting an
    // object is caught; the bound on read_newest_valid is honoured.
    #[test]
    fn overwritten_and_missing_objects_detected() {
        let store = MemoryBlobStore::new();
        let (repo, _) = repo_over(Arc::new(store.clone()));
        repo.write(TxOffset(1), &refs(&[part("t", b"one", 1)]))
            .expect("write");
        repo.write(TxOffset(2), &refs(&[part("t", b"two", 1)]))
            .expect("write");
        repo.write(TxOffset(3), &refs(&[part("t", b"three", 1)]))
            .expect("write");
        store.overwrite_raw(&object_key(&ObjectHash::of(b"three")), b"thr".to_vec());
        assert!(matches!(
            repo.read(TxOffset(3)),
            Err(SnapshotError::CorruptObject {
                expected_len: 5,
                actual_len: 3,
                ..
            })
        ));
        store
            .delete(&object_key(&ObjectHash::of(b"two")))
            .expect("delete");
        assert!(matches!(
            repo.read(TxOffset(2)),
            Err(SnapshotError::MissingObject {
                offset: TxOffset(2),
                ..
            })
        ));
        let r = repo.read_newest_valid(None).expect("recover");
        assert_eq!(r.snapshot.expect("snapshot 1").parts[0].bytes, b"one");
        assert_eq!(
            r.skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![TxOffset(3), TxOffset(2)]
        );
        let r = repo.read_newest_valid(Some(TxOffset(0))).expect("recover");
        assert!(r.snapshot.is_none() && r.skipped.is_empty());
    }

    // Protects: flipped, truncated or misplaced manifests are skipped by recovery
    // with the error reported, even when no snapshot at all is valid.
    #[test]
    fn corrupt_manifests_skipped_and_reported() {
        let store = Arc::new(Unreliable::new(MemoryBlobStore::new()));
        let (repo, _) = repo_over(store.clone());
        for i in 1..=4 {
            repo.write(TxOffset(i), &refs(&[part("t", &[i as u8], i)]))
                .expect("write");
        }
        store.flip_bit(&manifest_key(TxOffset(4)), 100);
        store.truncate(&manifest_key(TxOffset(3)), 40);
        // A manifest copied under another offset's key verifies but lies about its place.
        let m1 = store
            .inner()
            .get(&manifest_key(TxOffset(1)))
            .expect("get")
            .expect("present");
        store
            .inner()
            .put(&manifest_key(TxOffset(2)), &m1)
            .expect("put");
        let r = repo.read_newest_valid(None).expect("recover");
        assert_eq!(r.snapshot.expect("snapshot 1").offset, TxOffset(1));
        let reasons: Vec<_> = r
            .skipped
            .iter()
            .map(|(o, e)| match e {
                SnapshotError::CorruptManifest { offset, reason, .. } => {
                    assert_eq!(o, offset);
                    reason.clone()
                }
                other => panic!("expected CorruptManifest, got {other:?}"),
            })
            .collect();
        assert!(matches!(reasons[0], ManifestError::Checksum { .. }));
        assert!(matches!(
            reasons[1],
            ManifestError::TooShort { len: 40, .. }
        ));
        assert_eq!(
            reasons[2],
            ManifestError::OffsetMismatch {
                recorded: TxOffset(1),
                key_offset: TxOffset(2)
            }
        );
        store.truncate(&manifest_key(TxOffset(1)), 0);
        let r = repo.read_newest_valid(None).expect("recover");
        assert!(r.snapshot.is_none());
        assert_eq!(r.skipped.len(), 4);
    }

    // Protects: a store I/O error during recovery is returned, not treated as damage.
    #[test]
    fn io_error_is_not_skipped() {
        let store = Arc::new(Unreliable::new(MemoryBlobStore::new()));
        let (repo, _) = repo_over(store.clone());
        repo.write(TxOffset(1), &refs(&[part("t", b"a", 1)]))
            .expect("write");
        repo.write(TxOffset(2), &refs(&[part("t", b"b", 1)]))
            .expect("write");
        store.fail_get(&manifest_key(TxOffset(2)));
        assert!(matches!(
            repo.read_newest_valid(None),
            Err(SnapshotError::Io { .. })
        ));
    }

    // Protects: a put failing midway publishes nothing, the previous snapshot stays
    // readable, and a retry succeeds reusing what was already uploaded.
    #[test]
    fn put_failure_midway_publishes_nothing() {
        let store = Arc::new(Unreliable::new(MemoryBlobStore::new()));
        let (repo, _) = repo_over(store.clone());
        let old = vec![part("t", b"old", 1)];
        repo.write(TxOffset(1), &refs(&old)).expect("write 1");
        let new = three_tables();
        store.fail_nth_put(2); // second object of the new snapshot
        let err = repo.write(TxOffset(2), &refs(&new)).expect_err("must fail");
        assert!(
            matches!(&err, SnapshotError::Io { key, .. } if key.starts_with(OBJECTS_PREFIX)),
            "{err}"
        );
        assert_eq!(repo.list().expect("list"), vec![TxOffset(1)]);
        assert_eq!(repo.read(TxOffset(1)).expect("old readable").parts, old);
        assert_eq!(
            repo.read_newest_valid(None)
                .expect("recover")
                .snapshot
                .expect("old")
                .offset,
            TxOffset(1)
        );
        // Now fail the manifest put itself (objects 2 and 3 are new, the first exists).
        store.fail_nth_put(3);
        let err = repo.write(TxOffset(2), &refs(&new)).expect_err("must fail");
        assert!(
            matches!(&err, SnapshotError::Io { key, .. } if key == &manifest_key(TxOffset(2))),
            "{err}"
        );
        assert_eq!(repo.list().expect("list"), vec![TxOffset(1)]);
        let w = repo.write(TxOffset(2), &refs(&new)).expect("retry");
        assert_eq!((w.objects_written, w.objects_reused), (0, 3));
        assert_eq!(repo.read(TxOffset(2)).expect("read").parts, new);
    }

    // Protects: re-publishing identical contents is an idempotent no-op (safe
    // retry), different contents are a Conflict, and a corrupt manifest is replaced.
    #[test]
    fn republish_is_idempotent_or_conflict() {
        let store = MemoryBlobStore::new();
        let (repo, clock) = repo_over(Arc::new(store.clone()));
        let parts = three_tables();
        repo.write(TxOffset(4), &refs(&parts)).expect("write");
        clock.advance(50);
        let w = repo.write(TxOffset(4), &refs(&parts)).expect("same again");
        assert!(w.already_published);
        assert_eq!((w.objects_written, w.bytes_written), (0, 0));
        assert_eq!(
            repo.read(TxOffset(4)).expect("read").created_at_micros,
            1_000,
            "not rewritten"
        );
        let other = vec![part("meta", b"different", 0)];
        assert!(matches!(
            repo.write(TxOffset(4), &refs(&other)),
            Err(SnapshotError::Conflict { .. })
        ));
        store.overwrite_raw(&manifest_key(TxOffset(4)), b"garbage".to_vec());
        let w = repo
            .write(TxOffset(4), &refs(&other))
            .expect("replaces corrupt manifest");
        assert!(!w.already_published);
        assert_eq!(repo.read(TxOffset(4)).expect("read").parts, other);
    }

    // Protects: invalid part lists are refused before anything is stored.
    #[test]
    fn invalid_parts_rejected() {
        let store = MemoryBlobStore::new();
        let (repo, _) = repo_over(Arc::new(store.clone()));
        let dup = vec![part("t", b"1", 1), part("t", b"2", 1)];
        assert!(matches!(
            repo.write(TxOffset(1), &refs(&dup)),
            Err(SnapshotError::DuplicatePartName { offset: TxOffset(1), ref name }) if name == "t"
        ));
        let empty = vec![part("", b"1", 1)];
        assert!(matches!(
            repo.write(TxOffset(1), &refs(&empty)),
            Err(SnapshotError::InvalidPartName { .. })
        ));
        let long = vec![part(&"x".repeat(NAME_BYTES_MAX + 1), b"1", 1)];
        assert!(matches!(
            repo.write(TxOffset(1), &refs(&long)),
            Err(SnapshotError::InvalidPartName { .. })
        ));
        assert!(store.is_empty());
        // Zero parts is a valid (if odd) snapshot.
        repo.write(TxOffset(1), &[]).expect("empty snapshot");
        assert!(repo.read(TxOffset(1)).expect("read").parts.is_empty());
    }

    // Protects: list ignores stray keys and orders newest first.
    #[test]
    fn list_ignores_stray_keys() {
        let store = MemoryBlobStore::new();
        let (repo, _) = repo_over(Arc::new(store.clone()));
        repo.write(TxOffset(2), &[]).expect("write");
        repo.write(TxOffset(10), &[]).expect("write");
        for stray in [
            "snapshots/2.manifest",
            "snapshots/00000000000000000003.manifest.tmp",
            "snapshots/readme",
            "snapshots/0000000000000000000x.manifest",
            "snapshots/99999999999999999999.manifest",
        ] {
            store.put(stray, b"x").expect("put");
        }
        assert_eq!(repo.list().expect("list"), vec![TxOffset(10), TxOffset(2)]);
    }

    // Protects: retention keeps the newest N, removes unreferenced objects, and keeps
    // objects shared with kept snapshots; stray non-hash keys are left alone.
    #[test]
    fn retain_keeps_newest_and_sweeps() {
        let store = MemoryBlobStore::new();
        let (repo, _) = repo_over(Arc::new(store.clone()));
        let shared = part("meta", b"shared schema", 0);
        for i in 1..=5u8 {
            repo.write(
                TxOffset(u64::from(i)),
                &refs(&[shared.clone(), part("t", &[i; 10], 1)]),
            )
            .expect("write");
        }
        store.put("objects/not-a-hash", b"x").expect("put");
        assert_eq!(object_count(&store), 7);
        assert!(matches!(
            repo.retain(0),
            Err(SnapshotError::RetainNothing { keep: 0 })
        ));
        let r = repo.retain(2).expect("retain");
        assert_eq!(r.kept, vec![TxOffset(5), TxOffset(4)]);
        assert_eq!(
            r.manifests_deleted,
            vec![TxOffset(1), TxOffset(2), TxOffset(3)]
        );
        assert_eq!(r.objects_deleted, 3);
        assert!(!r.sweep_skipped && r.unreadable.is_empty());
        assert_eq!(repo.list().expect("list"), vec![TxOffset(5), TxOffset(4)]);
        assert_eq!(object_count(&store), 4); // shared, t4, t5, the stray
        for o in [4, 5] {
            assert_eq!(
                repo.read(TxOffset(o)).expect("kept readable").parts[0],
                shared
            );
        }
        // Idempotent.
        let r = repo.retain(2).expect("retain again");
        assert_eq!((r.manifests_deleted.len(), r.objects_deleted), (0, 0));
        // Garbage from a failed write is collected by the next retain.
        let store_u = Arc::new(Unreliable::new(store.clone()));
        let (repo_u, _) = repo_over(store_u.clone());
        store_u.fail_nth_put(2);
        assert!(repo_u
            .write(
                TxOffset(6),
                &refs(&[part("t", b"orphan", 1), part("u", b"x", 1)])
            )
            .is_err());
        assert_eq!(repo_u.retain(2).expect("retain").objects_deleted, 1);
    }

    // Protects: an unreadable manifest newer than the cutoff is kept, not counted,
    // and blocks the object sweep (its objects might belong to a good snapshot
    // seen through a bad read); once the read is healthy the sweep resumes.
    #[test]
    fn retain_does_not_sweep_past_unreadable_manifest() {
        let store = Arc::new(Unreliable::new(MemoryBlobStore::new()));
        let (repo, _) = repo_over(store.clone());
        for i in 1..=4u8 {
            repo.write(TxOffset(u64::from(i)), &refs(&[part("t", &[i], 1)]))
                .expect("write");
        }
        store.flip_bit(&manifest_key(TxOffset(4)), 0);
        let r = repo.retain(2).expect("retain");
        assert_eq!(r.kept, vec![TxOffset(3), TxOffset(2)]);
        assert_eq!(r.unreadable.len(), 1);
        assert_eq!(r.manifests_deleted, vec![TxOffset(1)]);
        assert!(r.sweep_skipped);
        assert_eq!(object_count(store.inner()), 4, "nothing swept");
        store.clear();
        assert_eq!(
            repo.read(TxOffset(4)).expect("transient damage gone").parts[0].bytes,
            vec![4]
        );
        let r = repo.retain(2).expect("retain");
        assert_eq!(r.manifests_deleted, vec![TxOffset(2)]);
        assert_eq!(r.objects_deleted, 2);
        assert_eq!(object_count(store.inner()), 2);
    }

    // Protects: a background writer and concurrent readers never observe a listed
    // snapshot that fails to read (publication is atomic from a reader's view).
    #[test]
    fn concurrent_write_and_read() {
        let store = MemoryBlobStore::new();
        let (repo, _) = repo_over(Arc::new(store));
        let repo = Arc::new(repo);
        let writer = {
            let repo = repo.clone();
            std::thread::spawn(move || {
                for i in 1..=40u64 {
                    let parts = vec![part("meta", b"m", 0), part("t", &i.to_le_bytes(), i)];
                    repo.write(TxOffset(i), &refs(&parts)).expect("write");
                    if i % 7 == 0 {
                        repo.retain(3).expect("retain");
                    }
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let repo = repo.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        for off in repo.list().expect("list") {
                            match repo.read(off) {
                                Ok(s) => assert_eq!(s.parts[1].bytes, off.0.to_le_bytes()),
                                // Retired by retention between list and read.
                                Err(SnapshotError::NotFound { .. }) => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        writer.join().expect("writer");
        for r in readers {
            r.join().expect("reader");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Write the next offset with these (name index, content index) parts.
        Write(Vec<(u8, u8)>),
        Retain(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec((0u8..6, 0u8..5), 0..5).prop_map(Op::Write),
            1 => (1usize..4).prop_map(Op::Retain),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        // Protects: across random writes (contents often repeated) and retains,
        // every listed snapshot reads back exactly what was written, the list
        // matches the model, and retention leaves no unreferenced object behind.
        #[test]
        fn model_check(ops in proptest::collection::vec(op(), 1..20)) {
            let store = MemoryBlobStore::new();
            let (repo, clock) = repo_over(Arc::new(store.clone()));
            let mut model: BTreeMap<TxOffset, Vec<SnapshotPart>> = BTreeMap::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Write(spec) => {
                        let mut parts = Vec::new();
                        let mut names = HashSet::new();
                        for (n, c) in spec {
                            if names.insert(n) {
                                let bytes = vec![c; usize::from(c) * 3];
                                parts.push(part(&format!("table{n}"), &bytes, u64::from(c)));
                            }
                        }
                        clock.advance(1);
                        repo.write(TxOffset(next), &refs(&parts)).expect("write");
                        model.insert(TxOffset(next), parts);
                        next += 1 + next % 3; // offsets with gaps
                    }
                    Op::Retain(keep) => {
                        repo.retain(keep).expect("retain");
                        while model.len() > keep {
                            let oldest = *model.keys().next().expect("non-empty");
                            model.remove(&oldest);
                        }
                        let live: HashSet<ObjectHash> =
                            model.values().flatten().map(|p| ObjectHash::of(&p.bytes)).collect();
                        prop_assert_eq!(object_count(&store), live.len());
                    }
                }
                let listed = repo.list().expect("list");
                let expected: Vec<TxOffset> = model.keys().rev().copied().collect();
                prop_assert_eq!(&listed, &expected);
                for off in listed {
                    let s = repo.read(off).expect("read");
                    prop_assert_eq!(&s.parts, &model[&off]);
                }
            }
        }
    }
}
