//! Error types of the snapshot store.
//!
//! Owns: [`SnapshotError`] (what a repository operation can fail with) and
//! [`ManifestError`] (why a manifest's bytes were rejected).
//! Does not own: deciding what to do about an error; recovery code decides
//! whether to fall back, retry or stop.
//!
//! Invariant: every variant names the key or offset it is about, so a log line
//! alone is enough to find the damaged object. There is deliberately no
//! catch-all variant.

use orrery_api::TxOffset;

use super::manifest::ObjectHash;

/// Failure of a [`super::SnapshotRepo`] operation.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The blob store failed; the operation may be retried.
    #[error("blob store I/O failed on key {key:?}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },

    /// Two parts of one snapshot share a name.
    #[error("snapshot {offset}: duplicate part name {name:?}")]
    DuplicatePartName { offset: TxOffset, name: String },

    /// A part name is empty or longer than [`super::manifest::NAME_BYTES_MAX`].
    #[error("snapshot {offset}: invalid part name {name:?}: {reason}")]
    InvalidPartName {
        offset: TxOffset,
        name: String,
        reason: &'static str,
    },

    /// More parts or metadata than the manifest format can describe.
    #[error("snapshot {offset}: {what} is too large ({len})")]
    TooLarge {
        offset: TxOffset,
        what: &'static str,
        len: u64,
    },

    /// A different snapshot is already published at this offset.
    #[error(
        "snapshot {offset}: a manifest with different contents is already published at {key:?}"
    )]
    Conflict { offset: TxOffset, key: String },

    /// No manifest exists for this offset (never written, or retired by retention).
    #[error("snapshot {offset}: no manifest at {key:?}")]
    NotFound { offset: TxOffset, key: String },

    /// The manifest exists but its bytes were rejected.
    #[error("snapshot {offset}: corrupt manifest {key:?}: {reason}")]
    CorruptManifest {
        offset: TxOffset,
        key: String,
        reason: ManifestError,
    },

    /// An object referenced by the manifest is absent.
    #[error("snapshot {offset}: part {name:?} is missing its object {key:?}")]
    MissingObject {
        offset: TxOffset,
        name: String,
        key: String,
    },

    /// An object's bytes do not match the hash or length in the manifest.
    #[error(
        "snapshot {offset}: part {name:?} object {key:?} is corrupt: \
         expected {expected} ({expected_len} bytes), found {actual} ({actual_len} bytes)"
    )]
    CorruptObject {
        offset: TxOffset,
        name: String,
        key: String,
        expected: ObjectHash,
        actual: ObjectHash,
        expected_len: u64,
        actual_len: u64,
    },

    /// `retain(0)` would delete every snapshot, leaving nothing to recover from.
    #[error("retain must keep at least one snapshot (asked to keep {keep})")]
    RetainNothing { keep: usize },
}

impl SnapshotError {
    /// True for errors that mean "this snapshot is damaged or gone",
    /// as opposed to a failing medium or a bad request. Recovery skips such a
    /// snapshot and tries an older one; an I/O error is instead reported,
    /// because falling back on a transient outage would silently lose progress.
    pub fn snapshot_unusable(&self) -> bool {
        matches!(
            self,
            SnapshotError::CorruptManifest { .. }
                | SnapshotError::MissingObject { .. }
                | SnapshotError::CorruptObject { .. }
                | SnapshotError::NotFound { .. }
        )
    }
}

/// Why manifest bytes were rejected by [`super::manifest::Manifest::decode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("only {len} bytes, shorter than the smallest manifest ({min})")]
    TooShort { len: usize, min: usize },
    #[error("bad magic {found:02x?}")]
    BadMagic { found: [u8; 8] },
    #[error("checksum mismatch: stored {stored}, computed {computed}")]
    Checksum {
        stored: ObjectHash,
        computed: ObjectHash,
    },
    #[error("unsupported format version {found}")]
    UnsupportedVersion { found: u32 },
    #[error(
        "field {field} at byte {at} runs past the end ({needed} bytes needed, {remaining} left)"
    )]
    Truncated {
        field: &'static str,
        at: usize,
        needed: u64,
        remaining: usize,
    },
    #[error("{count} unexpected bytes after the last part")]
    TrailingBytes { count: usize },
    #[error("part {index}: name is not UTF-8")]
    NameNotUtf8 { index: u32 },
    #[error("part {index}: name is empty")]
    EmptyName { index: u32 },
    #[error("part name {name:?} appears twice")]
    DuplicateName { name: String },
    #[error("manifest records offset {recorded} but is stored under offset {key_offset}")]
    OffsetMismatch {
        recorded: TxOffset,
        key_offset: TxOffset,
    },
}
