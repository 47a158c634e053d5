//! Counters of the group-commit thread's syncs: how many, and how long they
//! took, in a small fixed-bucket histogram of plain atomics.
//!
//! Owns: [`SyncStats`] (recorded by the writer thread) and
//! [`SyncStatsSnapshot`] (what [`super::CommitLog::sync_stats`] returns).
//! Does not own: exporting them anywhere; readers turn snapshots into
//! whatever format they serve.
//!
//! Invariants: `buckets[i]` counts syncs with `duration <= SYNC_BUCKETS[i]`
//! and above the previous bound (the last slot counts everything slower than
//! the last bound); the snapshot's `count` is the sum of its buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the sync duration buckets.
pub const SYNC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const SLOTS: usize = 15;
const _: () = assert!(SLOTS == SYNC_BUCKETS.len() + 1);

/// Live sync counters; all methods take `&self`.
#[derive(Debug, Default)]
pub(crate) struct SyncStats {
    buckets: [AtomicU64; SLOTS],
    sum_nanos: AtomicU64,
}

impl SyncStats {
    /// Counts one successful sync that took `took`.
    pub(crate) fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = SYNC_BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(SYNC_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SyncStatsSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        SyncStatsSnapshot {
            count: buckets.iter().sum(),
            buckets,
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// The commit log's syncs so far (since open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatsSnapshot {
    /// Syncs completed.
    pub count: u64,
    /// Total time spent in them.
    pub sum: Duration,
    /// Per-bucket (not cumulative) counts: `buckets[i]` for durations up to
    /// [`SYNC_BUCKETS`]`[i]`, the last one for slower syncs.
    pub buckets: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_into_the_right_bucket() {
        let s = SyncStats::default();
        s.record(Duration::from_micros(50));
        s.record(Duration::from_micros(100));
        s.record(Duration::from_millis(3));
        s.record(Duration::from_secs(10));
        let snap = s.snapshot();
        assert_eq!(snap.count, 4);
        assert_eq!(snap.buckets.len(), SYNC_BUCKETS.len() + 1);
        assert_eq!(snap.buckets[0], 2);
        assert_eq!(snap.buckets[5], 1, "3 ms is in the 5 ms bucket");
        assert_eq!(snap.buckets[SYNC_BUCKETS.len()], 1);
        assert_eq!(
            snap.sum,
            Duration::from_micros(150) + Duration::from_millis(3) + Duration::from_secs(10)
        );
    }
}
