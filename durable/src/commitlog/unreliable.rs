//! Fault-injecting [`SegmentStore`] wrapper, for tests.
//!
//! Owns: a per-wrapper fault schedule (fail the Nth append, fail the Nth
//! sync, tear the Nth append, flip a bit on read) and call counters, which
//! also make it the "counting store" of the group-commit tests. Does not
//! own: any durability model; that is the wrapped store's.
//!
//! Entry points: [`Unreliable::new`], the `fail_*` / `tear_*` / `flip_*`
//! schedule setters, [`Unreliable::appends`], [`Unreliable::syncs`].
//!
//! Invariants: deterministic, no global state: the schedule lives in the
//! wrapper (shared by its clones and by the handles it returned). Counters
//! are 1-based and count every call across all segments of this wrapper,
//! including calls that were made to fail.

use super::store::{SegmentFile, SegmentStore};
use orrery_api::TxOffset;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Plan {
    appends: u64,
    syncs: u64,
    creates: u64,
    fail_append: Option<u64>,
    fail_sync: Option<u64>,
    /// (nth append, bytes actually written before the error)
    tear_append: Option<(u64, usize)>,
    /// (segment, byte position, bit 0..8)
    flip_on_read: Option<(TxOffset, u64, u8)>,
}

/// Wraps a store and fails on the schedule the test sets.
#[derive(Debug, Clone)]
pub struct Unreliable<S: SegmentStore> {
    inner: Arc<S>,
    plan: Arc<Mutex<Plan>>,
}

impl<S: SegmentStore> Unreliable<S> {
    /// Wraps `inner` with an empty schedule (it behaves like `inner` and counts).
    pub fn new(inner: S) -> Unreliable<S> {
        Unreliable {
            inner: Arc::new(inner),
            plan: Arc::default(),
        }
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Makes the `n`-th append (1-based, counted over this wrapper's lifetime) fail.
    pub fn fail_append_nth(&self, n: u64) {
        self.plan().fail_append = Some(n);
    }

    /// Makes the `n`-th sync fail.
    pub fn fail_sync_nth(&self, n: u64) {
        self.plan().fail_sync = Some(n);
    }

    /// Makes the `n`-th append write only its first `keep` bytes, then fail.
    pub fn tear_append_nth(&self, n: u64, keep: usize) {
        self.plan().tear_append = Some((n, keep));
    }

    /// Flips bit `bit` of byte `position` whenever segment `segment` is read.
    pub fn flip_bit_on_read(&self, segment: TxOffset, position: u64, bit: u8) {
        assert!(bit < 8, "bit index out of range");
        self.plan().flip_on_read = Some((segment, position, bit));
    }

    /// Appends seen so far (including failed ones).
    pub fn appends(&self) -> u64 {
        self.plan().appends
    }

    /// Syncs seen so far (including failed ones).
    pub fn syncs(&self) -> u64 {
        self.plan().syncs
    }

    /// Segment creations seen so far.
    pub fn creates(&self) -> u64 {
        self.plan().creates
    }

    fn wrap(&self, inner: Box<dyn SegmentFile>, first: TxOffset) -> Box<dyn SegmentFile> {
        Box::new(UnreliableFile {
            inner,
            plan: self.plan.clone(),
            first,
        })
    }
}

impl<S: SegmentStore> SegmentStore for Unreliable<S> {
    fn list(&self) -> io::Result<Vec<TxOffset>> {
        self.inner.list()
    }

    fn read(&self, first: TxOffset) -> io::Result<Vec<u8>> {
        let mut bytes = self.inner.read(first)?;
        if let Some((seg, pos, bit)) = self.plan().flip_on_read {
            if seg == first {
                if let Some(b) = usize::try_from(pos).ok().and_then(|p| bytes.get_mut(p)) {
                    *b ^= 1 << bit;
                }
            }
        }
        Ok(bytes)
    }

    fn create(&self, first: TxOffset) -> io::Result<Box<dyn SegmentFile>> {
        self.plan().creates += 1;
        let f = self.inner.create(first)?;
        Ok(self.wrap(f, first))
    }

    fn open_append(&self, first: TxOffset, valid_len: u64) -> io::Result<Box<dyn SegmentFile>> {
        let f = self.inner.open_append(first, valid_len)?;
        Ok(self.wrap(f, first))
    }

    fn remove(&self, first: TxOffset) -> io::Result<()> {
        self.inner.remove(first)
    }
}

struct UnreliableFile {
    inner: Box<dyn SegmentFile>,
    plan: Arc<Mutex<Plan>>,
    first: TxOffset,
}

impl SegmentFile for UnreliableFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let (n, fail, tear) = {
            let mut p = self.plan.lock().unwrap_or_else(|e| e.into_inner());
            p.appends += 1;
            let n = p.appends;
            (
                n,
                p.fail_append == Some(n),
                p.tear_append.filter(|&(t, _)| t == n),
            )
        };
        if fail {
            return Err(io::Error::other(format!(
                "injected failure of append #{n} to segment {}",
                self.first
            )));
        }
        if let Some((_, keep)) = tear {
            self.inner.append(&bytes[..keep.min(bytes.len())])?;
            return Err(io::Error::other(format!(
                "injected torn append #{n} to segment {}",
                self.first
            )));
        }
        self.inner.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        let (n, fail) = {
            let mut p = self.plan.lock().unwrap_or_else(|e| e.into_inner());
            p.syncs += 1;
            (p.syncs, p.fail_sync == Some(p.syncs))
        };
        if fail {
            return Err(io::Error::other(format!(
                "injected failure of sync #{n} of segment {}",
                self.first
            )));
        }
        self.inner.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commitlog::MemorySegmentStore;

    // Protects that scheduled faults fire exactly at the chosen call and only there.
    #[test]
    fn schedule_fires_at_the_nth_call() {
        let u = Unreliable::new(MemorySegmentStore::new());
        u.fail_append_nth(2);
        u.tear_append_nth(3, 2);
        u.fail_sync_nth(1);
        let mut f = u.create(TxOffset(0)).expect("create");
        f.append(b"aaa").expect("1st append");
        assert!(f.append(b"bbb").is_err());
        assert!(f.append(b"ccc").is_err());
        f.append(b"ddd").expect("4th append");
        assert!(f.sync().is_err());
        f.sync().expect("2nd sync");
        assert_eq!(u.read(TxOffset(0)).expect("read"), b"aaaccddd");
        assert_eq!((u.appends(), u.syncs(), u.creates()), (4, 2, 1));
        u.flip_bit_on_read(TxOffset(0), 0, 0);
        assert_eq!(u.read(TxOffset(0)).expect("read"), b"`aaccddd");
    }
}
