//! The minimal key/value storage contract the snapshot store is built on.
//!
//! Owns: the [`BlobStore`] trait and the key rules shared by every
//! implementation ([`validate_key`]).
//! Does not own: any layout. Keys are opaque here; `SnapshotRepo` decides that
//! objects live under `objects/` and manifests under `snapshots/`.
//!
//! The contract is deliberately what an S3-like object store offers and no
//! more: whole-object atomic PUT, GET, DELETE, and a sorted LIST that sees every
//! completed PUT. There is no rename and no append, so the publication protocol
//! cannot depend on them.
//!
//! Invariant: a key accepted by [`validate_key`] is a relative `/`-separated
//! path with no empty, `.`-prefixed or `..` segment, so it can never name a
//! location outside the store's root nor collide with a temp file (whose name
//! starts with `.`).

use std::io;

/// Atomic whole-object storage. See the module docs for the contract.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `key`, replacing any previous value. Atomic: after
    /// success the key holds exactly these bytes; after a crash it holds either
    /// the old value (or nothing) or exactly these bytes, never a mix.
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    /// The value under `key`, or `None` if absent.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Whether `key` holds a value.
    fn exists(&self, key: &str) -> io::Result<bool>;
    /// Every key starting with `prefix` (a plain string prefix), sorted
    /// ascending by byte order.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// Removes `key`. Removing an absent key succeeds.
    fn delete(&self, key: &str) -> io::Result<()>;
}

/// Longest key accepted, in bytes. Well under S3's 1024-byte limit and common
/// file-system path limits.
pub const KEY_BYTES_MAX: usize = 512;

/// Checks the key rules shared by all stores; see the module invariant.
pub fn validate_key(key: &str) -> io::Result<()> {
    let bad = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid blob key {key:?}: {why}"),
        ))
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > KEY_BYTES_MAX {
        return bad("too long");
    }
    if key.starts_with('/') {
        return bad("absolute");
    }
    if key.contains('\\') || key.contains('\0') {
        return bad("backslash or NUL");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("empty segment");
        }
        if segment == ".." {
            return bad("parent segment");
        }
        // Also rejects "." and keeps the `.`-prefixed namespace free for
        // DirBlobStore's temp files, which therefore never show up in `list`.
        if segment.starts_with('.') {
            return bad("segment starts with '.'");
        }
    }
    Ok(())
}

/// Validates a list prefix: everything up to its last `/` must be a valid key
/// (the directory part); the tail is a partial name and may be anything but
/// `.`-prefixed parent references.
pub(crate) fn validate_prefix(prefix: &str) -> io::Result<()> {
    match prefix.rfind('/') {
        None => Ok(()),
        Some(i) => validate_key(&prefix[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects: keys that could escape the store root or collide with temp files are refused.
    #[test]
    fn key_rules() {
        for good in [
            "a",
            "objects/abc",
            "snapshots/00000000000000000001.manifest",
            "a/b/c",
        ] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/../b",
            "a/./b",
            ".tmp",
            "a/.hidden",
            "a\\b",
        ] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("snapshots/").is_ok());
        assert!(validate_prefix("../").is_err());
    }
}
