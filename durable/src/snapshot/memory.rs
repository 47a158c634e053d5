//! An in-memory [`BlobStore`] for tests and for embedding without a disk.
//!
//! Owns: a shared sorted map from key to bytes.
//! Does not own: durability; everything is lost when the last clone is dropped.
//!
//! Entry point: [`MemoryBlobStore::new`]. Invariant: clones share one map, so a
//! test can keep a handle and inspect or damage what the code under test wrote.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::blob::{validate_key, validate_prefix, BlobStore};

/// Cloneable in-memory blob store; clones share state.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    map: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemoryBlobStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every operation is a single map call), so poisoning is ignored.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the stored bytes without validation: lets tests simulate
    /// damage done by the medium.
    pub fn overwrite_raw(&self, key: &str, bytes: Vec<u8>) {
        self.lock().insert(key.to_owned(), bytes);
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl BlobStore for MemoryBlobStore {
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        validate_key(key)?;
        self.lock().insert(key.to_owned(), bytes.to_vec());
        Ok(())
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        validate_key(key)?;
        Ok(self.lock().get(key).cloned())
    }

    fn exists(&self, key: &str) -> io::Result<bool> {
        validate_key(key)?;
        Ok(self.lock().contains_key(key))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        validate_prefix(prefix)?;
        Ok(self
            .lock()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        validate_key(key)?;
        self.lock().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects: the basic contract (put/get/exists/list by prefix/delete of missing key).
    #[test]
    fn contract() {
        let s = MemoryBlobStore::new();
        s.put("b/2", b"two").expect("put");
        s.put("a/1", b"one").expect("put");
        s.put("b/1", b"one").expect("put");
        s.put("bb", b"x").expect("put");
        assert_eq!(s.get("a/1").expect("get"), Some(b"one".to_vec()));
        assert_eq!(s.get("zz").expect("get"), None);
        assert!(s.exists("b/2").expect("exists"));
        assert_eq!(s.list("b/").expect("list"), vec!["b/1", "b/2"]);
        assert_eq!(s.list("b").expect("list"), vec!["b/1", "b/2", "bb"]);
        s.delete("b/1").expect("delete");
        s.delete("b/1").expect("delete missing is ok");
        assert_eq!(s.list("").expect("list"), vec!["a/1", "b/2", "bb"]);
        assert!(s.put("../x", b"").is_err());
    }
}
