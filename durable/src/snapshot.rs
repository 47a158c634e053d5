//! Content-addressed, atomically published database snapshots.
//!
//! A snapshot is the full state of one database at a transaction offset, handed
//! to this module as a list of named opaque parts. Each part's bytes are stored
//! once under their BLAKE3 hash (`objects/<hex>`); a small manifest
//! (`snapshots/<offset:020>.manifest`) written last publishes the snapshot.
//!
//! Owns: the storage layout, the manifest format ([`manifest`]), the publication
//! and retention protocols ([`SnapshotRepo`]), and the [`BlobStore`] abstraction
//! with its local-disk, in-memory and fault-injecting implementations.
//! Does not own: what a part means. It does not know what a table is, how rows
//! are encoded, or when a snapshot should be taken; the engine decides those and
//! hands over finished bytes.
//!
//! Entry points: [`SnapshotRepo::new`], [`SnapshotRepo::write`],
//! [`SnapshotRepo::read`], [`SnapshotRepo::read_newest_valid`],
//! [`SnapshotRepo::retain`]; [`DirBlobStore::open`], [`MemoryBlobStore::new`],
//! [`Unreliable::new`].
//!
//! Invariants:
//! - A manifest is only ever put after every object it references is present,
//!   and an object is only deleted once no manifest present references it. So a
//!   listed, verifying manifest always describes a complete snapshot.
//! - Reading never returns bytes whose BLAKE3 hash and length differ from what
//!   the manifest recorded; every mismatch is a typed [`SnapshotError`].
//!
//! The byte layouts and the crash analysis live in `docs/design/snapshot.md`.

mod blob;
mod dir;
mod error;
pub mod manifest;
mod memory;
mod repo;
mod unreliable;

pub use blob::{validate_key, BlobStore, KEY_BYTES_MAX};
pub use dir::DirBlobStore;
pub use error::{ManifestError, SnapshotError};
pub use manifest::{Manifest, ManifestPart, ObjectHash};
pub use memory::MemoryBlobStore;
pub use repo::{
    manifest_key, object_key, parse_manifest_key, Recovered, RetainReport, Snapshot, SnapshotPart,
    SnapshotPartRef, SnapshotRepo, SnapshotWritten,
};
pub use unreliable::Unreliable;
