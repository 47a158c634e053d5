//! In-memory [`SegmentStore`] that models durability, for tests.
//!
//! Owns: per-segment "live" bytes (what a read returns now) and the length of
//! the durable prefix (what survives a power cut), and [`MemorySegmentStore::crash`],
//! which simulates the power cut. Does not own: fault injection on individual
//! calls (see `unreliable`).
//!
//! Entry points: [`MemorySegmentStore::new`], [`MemorySegmentStore::crash`].
//!
//! Invariants: `durable_len <= live.len()` for every segment; a crash never
//! shortens a segment below its durable length. Handles opened before a
//! crash are dead afterwards (their calls fail), as a process's file
//! descriptors do not survive a power cut.

use super::store::{SegmentFile, SegmentStore};
use orrery_api::TxOffset;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Segment {
    live: Vec<u8>,
    durable_len: usize,
}

#[derive(Debug, Default)]
struct Inner {
    segments: BTreeMap<u64, Segment>,
    /// Incremented by every crash; handles remember the epoch they were born in.
    epoch: u64,
}

/// Shared, cheaply cloneable in-memory store (clones see the same segments).
#[derive(Debug, Clone, Default)]
pub struct MemorySegmentStore {
    inner: Arc<Mutex<Inner>>,
}

/// splitmix64: tiny, deterministic, good enough to pick torn lengths.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl MemorySegmentStore {
    /// An empty store.
    pub fn new() -> MemorySegmentStore {
        MemorySegmentStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain byte vectors behind,
        // which are still coherent; tests should see their own failure.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulates a power cut: every segment keeps its durable bytes plus a
    /// seeded random prefix (possibly empty, possibly all) of its unsynced
    /// tail, i.e. a torn write. Handles opened before the crash go dead.
    pub fn crash(&self, seed: u64) {
        let mut inner = self.lock();
        let mut rng = seed;
        inner.epoch += 1;
        for seg in inner.segments.values_mut() {
            let unsynced = seg.live.len() - seg.durable_len;
            // Bias towards the interesting extremes: all lost or all kept.
            let keep = match splitmix64(&mut rng) % 4 {
                0 => 0,
                1 => unsynced,
                _ => (splitmix64(&mut rng) % (unsynced as u64 + 1)) as usize,
            };
            let len = seg.durable_len + keep;
            seg.live.truncate(len);
            // What is on the medium after the cut is what the next boot reads.
            seg.durable_len = len;
        }
    }

    /// Durable length of a segment (tests).
    pub fn durable_len(&self, first: TxOffset) -> Option<usize> {
        self.lock().segments.get(&first.0).map(|s| s.durable_len)
    }

    /// Overwrites the live and durable content of a segment (tests that
    /// plant corruption). Creates the segment if missing.
    pub fn set_bytes(&self, first: TxOffset, bytes: Vec<u8>) {
        let mut inner = self.lock();
        let seg = inner.segments.entry(first.0).or_default();
        seg.durable_len = bytes.len();
        seg.live = bytes;
    }
}

fn not_found(first: TxOffset) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("segment {first} does not exist"),
    )
}

impl SegmentStore for MemorySegmentStore {
    fn list(&self) -> io::Result<Vec<TxOffset>> {
        Ok(self.lock().segments.keys().map(|&k| TxOffset(k)).collect())
    }

    fn read(&self, first: TxOffset) -> io::Result<Vec<u8>> {
        self.lock()
            .segments
            .get(&first.0)
            .map(|s| s.live.clone())
            .ok_or_else(|| not_found(first))
    }

    fn create(&self, first: TxOffset) -> io::Result<Box<dyn SegmentFile>> {
        let mut inner = self.lock();
        if inner.segments.contains_key(&first.0) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("segment {first} exists"),
            ));
        }
        inner.segments.insert(first.0, Segment::default());
        Ok(Box::new(MemoryFile {
            store: self.clone(),
            first,
            epoch: inner.epoch,
        }))
    }

    fn open_append(&self, first: TxOffset, valid_len: u64) -> io::Result<Box<dyn SegmentFile>> {
        let mut inner = self.lock();
        let epoch = inner.epoch;
        let seg = inner
            .segments
            .get_mut(&first.0)
            .ok_or_else(|| not_found(first))?;
        let len =
            usize::try_from(valid_len).map_err(|_| io::Error::other("length out of range"))?;
        seg.live.truncate(len);
        seg.durable_len = seg.live.len();
        Ok(Box::new(MemoryFile {
            store: self.clone(),
            first,
            epoch,
        }))
    }

    fn remove(&self, first: TxOffset) -> io::Result<()> {
        self.lock()
            .segments
            .remove(&first.0)
            .map(|_| ())
            .ok_or_else(|| not_found(first))
    }
}

struct MemoryFile {
    store: MemorySegmentStore,
    first: TxOffset,
    epoch: u64,
}

impl MemoryFile {
    fn with_segment<T>(&self, f: impl FnOnce(&mut Segment) -> T) -> io::Result<T> {
        let mut inner = self.store.lock();
        if inner.epoch != self.epoch {
            return Err(io::Error::other("handle predates a simulated crash"));
        }
        let seg = inner
            .segments
            .get_mut(&self.first.0)
            .ok_or_else(|| not_found(self.first))?;
        Ok(f(seg))
    }
}

impl SegmentFile for MemoryFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.with_segment(|s| s.live.extend_from_slice(bytes))
    }

    fn sync(&mut self) -> io::Result<()> {
        self.with_segment(|s| s.durable_len = s.live.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the crash model: durable bytes survive, the rest is a prefix of the unsynced tail.
    #[test]
    fn crash_keeps_durable_and_a_prefix_of_the_rest() {
        let mut saw_partial = false;
        for seed in 0..200 {
            let store = MemorySegmentStore::new();
            let mut f = store.create(TxOffset(0)).expect("create");
            f.append(b"durable").expect("append");
            f.sync().expect("sync");
            f.append(b"-unsynced-tail").expect("append");
            store.crash(seed);
            let got = store.read(TxOffset(0)).expect("read");
            assert!(got.len() >= 7);
            assert_eq!(&got[..], &b"durable-unsynced-tail"[..got.len()]);
            saw_partial |= got.len() > 7 && got.len() < 21;
            assert!(
                f.append(b"x").is_err(),
                "old handle must be dead after a crash"
            );
        }
        assert!(saw_partial, "some seeds must tear inside the tail");
    }

    // Protects that open_append makes the truncated length durable.
    #[test]
    fn open_append_truncates_durably() {
        let store = MemorySegmentStore::new();
        let mut f = store.create(TxOffset(3)).expect("create");
        f.append(b"abcdef").expect("append");
        let _f = store.open_append(TxOffset(3), 4).expect("open_append");
        assert_eq!(store.durable_len(TxOffset(3)), Some(4));
        store.crash(1);
        assert_eq!(store.read(TxOffset(3)).expect("read"), b"abcd");
    }
}
