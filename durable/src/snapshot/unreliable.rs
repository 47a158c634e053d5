//! A fault-injecting [`BlobStore`] wrapper for tests.
//!
//! Owns: a deterministic fault plan, set by the test, applied to calls passing
//! through to an inner store.
//! Does not own: randomness. Faults happen exactly where the test says, so a
//! failing test reproduces every time.
//!
//! Entry points: [`Unreliable::new`], [`Unreliable::fail_nth_put`],
//! [`Unreliable::flip_bit`], [`Unreliable::truncate`], [`Unreliable::fail_get`].
//!
//! Invariant: a failed put never reaches the inner store (it models a PUT that
//! was rejected or lost before being applied), and read faults only change what
//! `get` returns, never what is stored, so clearing the plan restores the truth.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Mutex, MutexGuard};

use super::blob::BlobStore;

#[derive(Debug, Default)]
struct Plan {
    /// Number of `put` calls seen so far (including failed ones).
    puts_seen: u64,
    /// 1-based indices of `put` calls that must fail.
    failing_puts: BTreeSet<u64>,
    /// key → bit index to flip in values returned by `get` (modulo the length in bits).
    flips: BTreeMap<String, u64>,
    /// key → length to cut values returned by `get` to.
    truncations: BTreeMap<String, usize>,
    /// keys whose `get` fails with an I/O error.
    failing_gets: BTreeSet<String>,
}

/// Wraps a store and injects the faults a test asks for.
#[derive(Debug)]
pub struct Unreliable<B: BlobStore> {
    inner: B,
    plan: Mutex<Plan>,
}

impl<B: BlobStore> Unreliable<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            plan: Mutex::new(Plan::default()),
        }
    }

    /// The wrapped store, to inspect or seed it behind the faults.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        // Plans are plain data; a panicking test thread cannot leave them inconsistent.
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the `n`th `put` call from now fail (1 = the next one).
    pub fn fail_nth_put(&self, n: u64) {
        assert!(n >= 1, "put calls are counted from 1");
        let mut p = self.plan();
        let at = p.puts_seen + n;
        p.failing_puts.insert(at);
    }

    /// Every later `get(key)` returns the value with bit `bit` flipped
    /// (bit 0 = least significant bit of byte 0; wraps around the value's length).
    pub fn flip_bit(&self, key: &str, bit: u64) {
        self.plan().flips.insert(key.to_owned(), bit);
    }

    /// Every later `get(key)` returns at most the first `len` bytes.
    pub fn truncate(&self, key: &str, len: usize) {
        self.plan().truncations.insert(key.to_owned(), len);
    }

    /// Every later `get(key)` fails with an I/O error.
    pub fn fail_get(&self, key: &str) {
        self.plan().failing_gets.insert(key.to_owned());
    }

    /// Removes every planned fault.
    pub fn clear(&self) {
        let mut p = self.plan();
        let seen = p.puts_seen;
        *p = Plan {
            puts_seen: seen,
            ..Plan::default()
        };
    }

    /// Number of `put` calls seen so far.
    pub fn puts_seen(&self) -> u64 {
        self.plan().puts_seen
    }
}

impl<B: BlobStore> BlobStore for Unreliable<B> {
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let fail = {
            let mut p = self.plan();
            p.puts_seen += 1;
            let n = p.puts_seen;
            p.failing_puts.remove(&n)
        };
        if fail {
            return Err(io::Error::other(format!("injected failure of put {key:?}")));
        }
        self.inner.put(key, bytes)
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let (flip, trunc, fail) = {
            let p = self.plan();
            (
                p.flips.get(key).copied(),
                p.truncations.get(key).copied(),
                p.failing_gets.contains(key),
            )
        };
        if fail {
            return Err(io::Error::other(format!("injected failure of get {key:?}")));
        }
        let Some(mut value) = self.inner.get(key)? else {
            return Ok(None);
        };
        if let Some(len) = trunc {
            value.truncate(len);
        }
        if let Some(bit) = flip {
            let bits = value.len() as u64 * 8;
            if bits > 0 {
                let bit = bit % bits;
                value[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
        }
        Ok(Some(value))
    }

    fn exists(&self, key: &str) -> io::Result<bool> {
        self.inner.exists(key)
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        self.inner.delete(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::MemoryBlobStore;

    // Protects: faults land exactly where planned and never alter stored bytes.
    #[test]
    fn faults_are_deterministic() {
        let u = Unreliable::new(MemoryBlobStore::new());
        u.fail_nth_put(2);
        u.put("a", b"\x00\x00").expect("first put passes");
        assert!(u.put("b", b"x").is_err());
        assert!(
            !u.exists("b").expect("exists"),
            "failed put must not be applied"
        );
        u.put("b", b"x").expect("third put passes");
        u.flip_bit("a", 9);
        assert_eq!(u.get("a").expect("get"), Some(vec![0, 2]));
        u.truncate("a", 1);
        // Truncation applies first; the flip then wraps onto the one remaining byte.
        assert_eq!(u.get("a").expect("get"), Some(vec![2]));
        u.fail_get("b");
        assert!(u.get("b").is_err());
        u.clear();
        assert_eq!(u.get("a").expect("get"), Some(vec![0, 0]));
        assert_eq!(u.puts_seen(), 3);
    }
}
