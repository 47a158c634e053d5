//! The commit log: an append-only, segmented, checksummed log of opaque
//! transaction payloads, one record per transaction offset, with group
//! commit on a dedicated thread.
//!
//! Owns: [`CommitLog`] (open with verification and torn-tail repair, append,
//! durability tracking, replay, segment listing and removal) and its options.
//! Reading the durable log in pieces and segment images ([`CommitLog::read_durable`],
//! [`decode_segment_image`]), which shipping copies elsewhere.
//! Does not own: what payloads mean (the engine encodes transactions),
//! snapshots, or where copies go; I/O goes through the
//! [`SegmentStore`] trait so those layers and fault-injecting tests can plug in.
//!
//! Entry points: [`CommitLog::open`], [`CommitLog::append`],
//! [`CommitLog::wait_durable`], [`CommitLog::flush`], [`CommitLog::replay`].
//! Byte format and crash analysis: docs/design/commitlog.md.
//!
//! Invariants: offsets are dense and increasing, across segments too; a
//! durable offset implies all lower ones are durable; after a store failure
//! the log stays failed until it is reopened.

mod error;
mod format;
mod frames;
mod memory;
mod recovery;
mod stats;
mod store;
mod unreliable;
mod writer;

pub use error::{
    AppendError, DurabilityError, FailedOp, FailureCause, OpenError, Payload, RemoveError,
    ReplayError,
};
pub use format::{HeaderFault, RecordFault};
pub use frames::{decode_segment_image, DurableFrames, ImageError, LogPosition};
pub use memory::MemorySegmentStore;
pub use stats::{SyncStatsSnapshot, SYNC_BUCKETS};
pub use store::{FileSegmentStore, SegmentFile, SegmentStore};
pub use unreliable::Unreliable;

use format::{decode_header, encode_header, HEADER_LEN};
use orrery_api::limits::{
    COMMITLOG_QUEUE_TXS_MAX, COMMITLOG_RECORD_BYTES_MAX, COMMITLOG_SEGMENT_BYTES_DEFAULT,
};
use orrery_api::TxOffset;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use writer::{Shared, State, Writer};

/// Tuning and test switches for [`CommitLog::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLogOptions {
    /// A segment is sealed once the next record would take it past this
    /// size (a single record larger than this still gets a segment of its own).
    pub segment_bytes_max: u64,
    /// Records queued for the group-commit thread before `append` waits.
    /// Values below 1 are treated as 1.
    pub queue_txs_max: usize,
    /// Offset of the first record when the store is empty (a database
    /// restored from a snapshot at `N` starts its log at `N + 1`). Opening a
    /// non-empty log that ends below this is an error.
    pub start_offset: TxOffset,
    /// TEST ONLY — A DELIBERATE BUG. The group-commit thread skips every
    /// `sync` but still advances the durable watermark, so acknowledged
    /// records can be lost on a crash. It exists so the engine's crash test
    /// can prove it detects a missing fsync. Never set it anywhere else.
    pub skip_fsync_canary: bool,
}

impl Default for CommitLogOptions {
    fn default() -> CommitLogOptions {
        CommitLogOptions {
            segment_bytes_max: COMMITLOG_SEGMENT_BYTES_DEFAULT,
            queue_txs_max: COMMITLOG_QUEUE_TXS_MAX,
            start_offset: TxOffset(0),
            skip_fsync_canary: false,
        }
    }
}

/// One segment as the log currently sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Offset of its first record (and its name).
    pub first: TxOffset,
    /// Offset of its last record written so far, if it has any.
    pub last: Option<TxOffset>,
    /// Bytes written so far, header included.
    pub bytes: u64,
    /// Sealed segments are synced and never written again; the one unsealed
    /// segment is the active one.
    pub sealed: bool,
}

/// Bytes cut from the tail of the last segment at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailCut {
    pub segment: TxOffset,
    /// Byte position the segment was truncated to.
    pub position: u64,
    /// How many bytes were removed.
    pub bytes: u64,
}

/// What `open` found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Offset the next append gets.
    pub next_offset: TxOffset,
    /// Last record in the log at open.
    pub last_record: Option<TxOffset>,
    pub tail_cut: Option<TailCut>,
    pub segments: usize,
}

/// Durability news for listeners registered with [`CommitLog::on_durable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurableEvent {
    /// Every offset up to and including this one is durable.
    Durable(TxOffset),
    /// The log failed; nothing more will become durable.
    Failed(FailureCause),
}

/// An open commit log. Share it behind an `Arc`; all methods take `&self`.
pub struct CommitLog {
    shared: Arc<Shared>,
    store: Arc<dyn SegmentStore>,
    writer: Option<JoinHandle<()>>,
    report: OpenReport,
    /// Serialises `remove_segments_below` so two callers never race on the
    /// same file.
    remove_lock: Mutex<()>,
}

impl std::fmt::Debug for CommitLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLog")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl CommitLog {
    /// Opens the log in `store`: verifies every segment and record, cuts a
    /// torn tail of the last segment (reported in [`CommitLog::open_report`]),
    /// makes the kept bytes durable, and starts the group-commit thread.
    /// Everything present after open is durable.
    pub fn open(
        store: Arc<dyn SegmentStore>,
        options: CommitLogOptions,
    ) -> Result<CommitLog, OpenError> {
        let (segments, next, last_record, tail_cut, active) = match recovery::scan(&*store)? {
            None => {
                let first = options.start_offset;
                let mut file = store.create(first).map_err(|source| OpenError::Create {
                    segment: first,
                    source,
                })?;
                let header = encode_header(first);
                file.append(&header)
                    .and_then(|()| file.sync())
                    .map_err(|source| OpenError::WriteHeader {
                        segment: first,
                        source,
                    })?;
                let seg = SegmentInfo {
                    first,
                    last: None,
                    bytes: HEADER_LEN as u64,
                    sealed: false,
                };
                (vec![seg], first, None, None, file)
            }
            Some(mut scan) => {
                if scan.next < options.start_offset {
                    return Err(OpenError::EndsBeforeStart {
                        next: scan.next,
                        start_offset: options.start_offset,
                    });
                }
                let seg = scan
                    .segments
                    .last_mut()
                    .expect("a scan has at least one segment");
                let mut file = store.open_append(seg.first, seg.bytes).map_err(|source| {
                    OpenError::OpenAppend {
                        segment: seg.first,
                        valid_len: seg.bytes,
                        source,
                    }
                })?;
                if seg.bytes < HEADER_LEN as u64 {
                    // Torn header (crash during rotation): write it anew.
                    let header = encode_header(seg.first);
                    file.append(&header)
                        .and_then(|()| file.sync())
                        .map_err(|source| OpenError::WriteHeader {
                            segment: seg.first,
                            source,
                        })?;
                    seg.bytes = HEADER_LEN as u64;
                }
                (
                    scan.segments,
                    scan.next,
                    scan.last_record,
                    scan.tail_cut,
                    file,
                )
            }
        };
        let active_info = segments
            .last()
            .expect("there is always an active segment")
            .clone();
        let base = segments[0].first;
        let report = OpenReport {
            next_offset: next,
            last_record,
            tail_cut,
            segments: segments.len(),
        };
        let shared = Arc::new(Shared::new(
            State {
                next,
                queue: VecDeque::new(),
                durable: last_record,
                failed: None,
                closing: false,
                writer_exited: false,
                waiting: 0,
                segments,
                listeners: Vec::new(),
            },
            options.queue_txs_max.max(1),
            base,
        ));
        let writer = Writer {
            store: store.clone(),
            shared: shared.clone(),
            active,
            active_first: active_info.first,
            active_bytes: active_info.bytes,
            active_last: active_info.last,
            segment_bytes_max: options.segment_bytes_max,
            skip_sync: options.skip_fsync_canary,
        };
        let handle = std::thread::Builder::new()
            .name("commitlog".to_owned())
            .spawn(move || writer.run())
            .map_err(|source| OpenError::Spawn { source })?;
        Ok(CommitLog {
            shared,
            store,
            writer: Some(handle),
            report,
            remove_lock: Mutex::new(()),
        })
    }

    /// What open found and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// How many syncs the group-commit thread has done since open, and how
    /// long they took (syncs at open and skipped syncs are not counted).
    pub fn sync_stats(&self) -> SyncStatsSnapshot {
        self.shared.syncs.snapshot()
    }

    /// Assigns the next offset to `payload` and queues it for the
    /// group-commit thread, waiting while the queue is full. Offsets follow
    /// call order. Returns before the record is durable: see
    /// [`CommitLog::wait_durable`].
    pub fn append(&self, payload: Vec<u8>) -> Result<TxOffset, AppendError> {
        let len = payload.len() as u64;
        if len > COMMITLOG_RECORD_BYTES_MAX {
            return Err(AppendError::TooLarge {
                payload: Payload(payload),
                len,
            });
        }
        let mut st = self.shared.lock();
        loop {
            if let Some(cause) = &st.failed {
                return Err(AppendError::Failed {
                    payload: Payload(payload),
                    cause: cause.clone(),
                });
            }
            if st.closing || st.writer_exited {
                return Err(AppendError::Closed {
                    payload: Payload(payload),
                });
            }
            if st.queue.len() < self.shared.queue_max {
                break;
            }
            st = self
                .shared
                .space
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        let offset = st.next;
        st.next = offset.next();
        // The writer only waits on `work` after seeing an empty queue under
        // this lock, so only the append that makes the queue non-empty needs
        // to wake it; later ones ride along (a notify is a futex syscall).
        let was_empty = st.queue.is_empty();
        st.queue.push_back((offset, payload));
        drop(st);
        if was_empty {
            self.shared.work.notify_one();
        }
        Ok(offset)
    }

    /// Highest offset known durable (all lower ones are durable too).
    pub fn durable_offset(&self) -> Option<TxOffset> {
        self.shared.lock().durable
    }

    /// The sticky failure, if the log has failed.
    pub fn failure(&self) -> Option<FailureCause> {
        self.shared.lock().failed.clone()
    }

    /// Blocks until `offset` is durable, or returns why it never will be.
    pub fn wait_durable(&self, offset: TxOffset) -> Result<(), DurabilityError> {
        let mut st = self.shared.lock();
        loop {
            if st.durable.is_some_and(|d| d >= offset) {
                return Ok(());
            }
            if offset >= st.next || offset < self.shared.base {
                return Err(DurabilityError::NotAppended {
                    offset,
                    next: st.next,
                });
            }
            if let Some(cause) = &st.failed {
                return Err(DurabilityError::Failed {
                    offset,
                    cause: cause.clone(),
                });
            }
            if st.writer_exited {
                return Err(DurabilityError::Closed { offset });
            }
            st.waiting += 1;
            st = self
                .shared
                .durable
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
            st.waiting -= 1;
        }
    }

    /// Registers a listener called on the log thread after every batch made
    /// durable and once on failure. It must be quick and must not block on
    /// this log (e.g. it may wake an async task, not call `wait_durable`).
    /// Only events after registration are delivered.
    pub fn on_durable(&self, listener: Box<dyn Fn(DurableEvent) + Send + Sync>) {
        self.shared.lock().listeners.push(Arc::from(listener));
    }

    /// Waits until everything appended so far is durable; returns the
    /// durable offset.
    pub fn flush(&self) -> Result<Option<TxOffset>, DurabilityError> {
        let target = {
            let st = self.shared.lock();
            if st.next == self.shared.base {
                return Ok(st.durable);
            }
            TxOffset(st.next.0 - 1)
        };
        self.wait_durable(target)?;
        Ok(self.durable_offset())
    }

    /// Flushes, stops the group-commit thread and joins it.
    pub fn close(self) -> Result<Option<TxOffset>, DurabilityError> {
        self.flush()
        // Drop stops and joins the thread.
    }

    /// Calls `f` for every durable record with offset `>= from`, in order,
    /// verifying checksums again on the way. Records appended but not yet
    /// durable when the call starts are not visited.
    pub fn replay<E>(
        &self,
        from: TxOffset,
        mut f: impl FnMut(TxOffset, &[u8]) -> Result<(), E>,
    ) -> Result<(), ReplayError<E>> {
        let (segments, durable) = {
            let st = self.shared.lock();
            (st.segments.clone(), st.durable)
        };
        let Some(upto) = durable else { return Ok(()) };
        if from > upto {
            return Ok(());
        }
        let first_retained = segments[0].first;
        if from < first_retained {
            return Err(ReplayError::NotRetained {
                from,
                first_retained,
            });
        }
        for seg in &segments {
            let Some(seg_last) = seg.last else { continue };
            if seg_last < from || seg.first > upto {
                continue;
            }
            // Every record up to here must be present and intact.
            let must_reach = seg_last.min(upto);
            let bytes = self
                .store
                .read(seg.first)
                .map_err(|source| ReplayError::Read {
                    segment: seg.first,
                    source,
                })?;
            decode_header(&bytes, seg.first).map_err(|fault| ReplayError::BadHeader {
                segment: seg.first,
                fault,
            })?;
            let mut failure = None;
            let walk = recovery::walk_records(&bytes, seg.first, |offset, payload| {
                if offset >= from {
                    if let Err(error) = f(offset, payload) {
                        failure = Some(ReplayError::Callback { offset, error });
                        return false;
                    }
                }
                offset < must_reach
            });
            if let Some(e) = failure {
                return Err(e);
            }
            if walk.last.is_none_or(|l| l < must_reach) {
                let fault = walk.fault.unwrap_or(RecordFault::Truncated {
                    needed: format::RECORD_HEADER_LEN as u64,
                    available: 0,
                });
                return Err(ReplayError::Corrupt {
                    segment: seg.first,
                    position: walk.end as u64,
                    expected: walk.expected,
                    fault,
                });
            }
        }
        Ok(())
    }

    /// The segments, oldest first; the last one is the active one.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared.lock().segments.clone()
    }

    /// Deletes sealed segments all of whose records are below `offset`
    /// (e.g. covered by a snapshot). Never touches the active segment, and
    /// only removes a prefix, so the retained log stays contiguous. Returns
    /// the first offsets of the removed segments.
    pub fn remove_segments_below(&self, offset: TxOffset) -> Result<Vec<TxOffset>, RemoveError> {
        let _serial = self.remove_lock.lock().unwrap_or_else(|p| p.into_inner());
        let victims: Vec<TxOffset> = self
            .shared
            .lock()
            .segments
            .iter()
            .take_while(|s| s.sealed && s.last.is_some_and(|l| l < offset))
            .map(|s| s.first)
            .collect();
        for &first in &victims {
            self.store.remove(first).map_err(|source| RemoveError::Io {
                segment: first,
                source,
            })?;
            let mut st = self.shared.lock();
            assert_eq!(
                st.segments[0].first, first,
                "segments are removed oldest first"
            );
            st.segments.remove(0);
        }
        Ok(victims)
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
        if let Some(handle) = self.writer.take() {
            // A panicked writer has already marked itself exited; there is
            // nothing more to report from a destructor.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn opts(segment_bytes_max: u64) -> CommitLogOptions {
        CommitLogOptions {
            segment_bytes_max,
            ..CommitLogOptions::default()
        }
    }

    /// A deterministic payload whose length and bytes depend on `i`.
    fn payload(i: u64) -> Vec<u8> {
        let len = (i * 7 % 23) as usize;
        (0..len)
            .map(|j| (i as u8).wrapping_mul(31).wrapping_add(j as u8))
            .collect()
    }

    fn open_mem(store: &MemorySegmentStore, o: CommitLogOptions) -> Result<CommitLog, OpenError> {
        CommitLog::open(Arc::new(store.clone()), o)
    }

    fn collect(log: &CommitLog, from: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        log.replay(TxOffset(from), |o, p| {
            out.push((o.0, p.to_vec()));
            Ok::<(), ()>(())
        })
        .expect("replay");
        out
    }

    fn expected(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, payload(i))).collect()
    }

    fn append_n(log: &CommitLog, range: std::ops::Range<u64>) {
        for i in range {
            assert_eq!(log.append(payload(i)).expect("append"), TxOffset(i));
        }
    }

    /// Copies every segment of `store` into a fresh store.
    fn copy_store(store: &MemorySegmentStore) -> MemorySegmentStore {
        let copy = MemorySegmentStore::new();
        for first in store.list().expect("list") {
            copy.set_bytes(first, store.read(first).expect("read"));
        }
        copy
    }

    /// A store wrapper whose sync takes a while, like a real fsync, so
    /// concurrent appenders pile up behind it.
    struct SlowSync<S: SegmentStore>(S);
    struct SlowFile(Box<dyn SegmentFile>);
    impl<S: SegmentStore> SegmentStore for SlowSync<S> {
        fn list(&self) -> io::Result<Vec<TxOffset>> {
            self.0.list()
        }
        fn read(&self, first: TxOffset) -> io::Result<Vec<u8>> {
            self.0.read(first)
        }
        fn create(&self, first: TxOffset) -> io::Result<Box<dyn SegmentFile>> {
            Ok(Box::new(SlowFile(self.0.create(first)?)))
        }
        fn open_append(&self, first: TxOffset, valid_len: u64) -> io::Result<Box<dyn SegmentFile>> {
            Ok(Box::new(SlowFile(self.0.open_append(first, valid_len)?)))
        }
        fn remove(&self, first: TxOffset) -> io::Result<()> {
            self.0.remove(first)
        }
    }
    impl SegmentFile for SlowFile {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.0.append(bytes)
        }
        fn sync(&mut self) -> io::Result<()> {
            // sleep-ok: a simulated fsync latency, the behaviour under test
            // (appenders pile up behind a slow sync); nothing waits on it.
            std::thread::sleep(std::time::Duration::from_micros(500));
            self.0.sync()
        }
    }

    // Protects the basic contract: what goes in comes out, in order, across many segment rotations and a reopen.
    #[test]
    fn round_trip_across_rotations() {
        let store = MemorySegmentStore::new();
        let log = open_mem(&store, opts(120)).expect("open");
        append_n(&log, 0..300);
        assert_eq!(log.flush().expect("flush"), Some(TxOffset(299)));
        let segs = log.segments();
        assert!(
            segs.len() > 10,
            "tiny segments must rotate often, got {}",
            segs.len()
        );
        for w in segs.windows(2) {
            assert!(w[0].sealed);
            assert_eq!(
                w[0].last.expect("sealed segments hold records").next(),
                w[1].first
            );
        }
        assert!(!segs.last().expect("active").sealed);
        assert_eq!(collect(&log, 0), expected(0..300));
        assert_eq!(collect(&log, 123), expected(123..300));
        log.close().expect("close");
        let log = open_mem(&store, opts(120)).expect("reopen");
        assert_eq!(log.open_report().tail_cut, None);
        assert_eq!(log.segments(), segs);
        assert_eq!(collect(&log, 0), expected(0..300));
    }

    // Protects that offsets continue after a reopen instead of restarting or skipping.
    #[test]
    fn reopen_continues_offsets() {
        let store = MemorySegmentStore::new();
        let log = open_mem(&store, opts(200)).expect("open");
        append_n(&log, 0..10);
        log.close().expect("close");
        let log = open_mem(&store, opts(200)).expect("reopen");
        assert_eq!(log.open_report().next_offset, TxOffset(10));
        assert_eq!(log.durable_offset(), Some(TxOffset(9)));
        append_n(&log, 10..25);
        log.flush().expect("flush");
        assert_eq!(collect(&log, 0), expected(0..25));
    }

    // Protects torn-tail repair: cutting the last record at every byte, or adding garbage or zeros, never loses earlier records and never fails open.
    #[test]
    fn torn_tail_is_cut_at_every_position() {
        let store = MemorySegmentStore::new();
        let log = open_mem(&store, opts(300)).expect("open");
        let n = 40;
        append_n(&log, 0..n);
        log.close().expect("close");
        let last_seg = *store.list().expect("list").last().expect("segments");
        let full = store.read(last_seg).expect("read");
        let last_start = full.len() - format::framed_len(payload(n - 1).len());

        for cut in last_start..full.len() {
            let copy = copy_store(&store);
            copy.set_bytes(last_seg, full[..cut].to_vec());
            let log = open_mem(&copy, opts(300)).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let report = log.open_report().clone();
            assert_eq!(report.next_offset, TxOffset(n - 1), "cut at {cut}");
            let want_cut = (cut > last_start).then(|| TailCut {
                segment: last_seg,
                position: last_start as u64,
                bytes: (cut - last_start) as u64,
            });
            assert_eq!(report.tail_cut, want_cut);
            assert_eq!(
                copy.read(last_seg).expect("read").len(),
                last_start,
                "file truncated"
            );
            assert_eq!(log.append(payload(n - 1)).expect("append"), TxOffset(n - 1));
            log.flush().expect("flush");
            assert_eq!(collect(&log, 0), expected(0..n));
        }

        let mut rng = 99u64;
        let garbage: Vec<u8> = (0..100)
            .map(|_| memory::splitmix64(&mut rng) as u8)
            .collect();
        for tail in [vec![0u8; 4096], garbage, vec![0xff; 3]] {
            let copy = copy_store(&store);
            copy.set_bytes(last_seg, [&full[..], &tail[..]].concat());
            let log = open_mem(&copy, opts(300)).expect("open with junk tail");
            let cut = log.open_report().tail_cut.clone().expect("junk is cut");
            assert_eq!(
                (cut.position, cut.bytes),
                (full.len() as u64, tail.len() as u64)
            );
            assert_eq!(collect(&log, 0), expected(0..n));
        }
    }

    // Protects that damage to a non-final record of the active segment is an error naming the place, not a silent cut.
    #[test]
    fn flipped_bit_in_middle_of_last_segment_is_an_error() {
        let store = MemorySegmentStore::new();
        let log = open_mem(&store, opts(10_000)).expect("open");
        append_n(&log, 0..20);
        log.close().expect("close");
        // Record 5's payload: header + 5 frames before it + its own frame header.
        let pos: usize = HEADER_LEN
            + (0..5)
                .map(|i| format::framed_len(payload(i).len()))
                .sum::<usize>();
        let mut bytes = store.read(TxOffset(0)).expect("read");
        bytes[pos + format::RECORD_HEADER_LEN] ^= 0x10;
        store.set_bytes(TxOffset(0), bytes);
        match open_mem(&store, opts(10_000)) {
            Err(OpenError::Corrupt {
                segment,
                position,
                expected,
                fault,
            }) => {
                assert_eq!(
                    (segment, position, expected),
                    (TxOffset(0), pos as u64, TxOffset(5))
                );
                assert!(matches!(fault, RecordFault::ChecksumMismatch { .. }));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    // Protects that any damage in a sealed segment (even its last record, or its header) is an error, never a cut.
    #[test]
    fn flipped_bit_in_sealed_segment_is_an_error() {
        let mem = MemorySegmentStore::new();
        let log = open_mem(&mem, opts(150)).expect("open");
        append_n(&log, 0..60);
        log.close().expect("close");
        let firsts = mem.list().expect("list");
        assert!(firsts.len() >= 3);
        let sealed = firsts[1];
        let len = mem.read(sealed).expect("read").len() as u64;
        for (position, want_header) in [(len - 1, false), (HEADER_LEN as u64 + 2, false), (3, true)]
        {
            let u = Unreliable::new(mem.clone());
            u.flip_bit_on_read(sealed, position, 5);
            match CommitLog::open(Arc::new(u), opts(150)) {
                Err(OpenError::Corrupt { segment, .. }) if !want_header => {
                    assert_eq!(segment, sealed)
                }
                Err(OpenError::BadHeader { segment, .. }) if want_header => {
                    assert_eq!(segment, sealed)
                }
                other => panic!("flip at {position}: expected a typed error, got {other:?}"),
            }
        }
    }

    // Protects recovery of a crash during rotation: an empty or torn-header last segment is repaired.
    #[test]
    fn torn_header_of_new_segment_is_repaired() {
        let store = MemorySegmentStore::new();
        let log = open_mem(&store, opts(150)).expect("open");
        append_n(&log, 0..30);
        log.close().expect("close");
        let next = TxOffset(30);
        for torn in [Vec::new(), encode_header(next)[..11].to_vec()] {
            let copy = copy_store(&store);
            copy.set_bytes(next, torn.clone());
            let log = open_mem(&copy, opts(150)).expect("open");
            assert_eq!(log.open_report().next_offset, next);
            assert_eq!(
                log.open_report().tail_cut.as_ref().map(|c| c.bytes),
                (!torn.is_empty()).then_some(11)
            );
            append_n(&log, 30..35);
            log.close().expect("close");
            let log = open_mem(&copy, opts(150)).expect("reopen");
            assert_eq!(collect(&log, 0), expected(0..35));
        }
    }

    // Protects the durability promise: after a power cut, every acknowledged offset survives and the log is a prefix of what was appended.
    #[test]
    fn crash_with_many_seeds_keeps_durable_prefix() {
        for seed in 0..150u64 {
            let store = MemorySegmentStore::new();
            let log = open_mem(&store, opts(100 + seed % 400)).expect("open");
            let mut rng = seed;
            let total = 20 + memory::splitmix64(&mut rng) % 80;
            for i in 0..total {
                log.append(payload(i)).expect("append");
                if memory::splitmix64(&mut rng) % 10 == 9 {
                    log.flush().expect("flush");
                }
            }
            let durable = log.durable_offset();
            store.crash(seed);
            drop(log); // its handles are dead now; it fails quietly
            let log = open_mem(&store, opts(100 + seed % 400))
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let got = collect(&log, 0);
            assert!(got.len() as u64 <= total);
            assert_eq!(
                got,
                expected(0..got.len() as u64),
                "seed {seed}: not a prefix"
            );
            if let Some(d) = durable {
                assert!(
                    got.len() as u64 > d.0,
                    "seed {seed}: durable offset {d} lost"
                );
            }
        }
    }

    // Protects sticky failure after a failed fsync: no retry, appends refused with the payload, waiters error, reopen recovers.
    #[test]
    fn sticky_failure_after_failed_sync() {
        let u = Unreliable::new(MemorySegmentStore::new());
        let log = CommitLog::open(Arc::new(u.clone()), opts(10_000)).expect("open");
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        log.on_durable(Box::new(move |e| ev.lock().expect("events").push(e)));
        append_n(&log, 0..5);
        log.flush().expect("flush");
        let syncs_before = u.syncs();
        u.fail_sync_nth(syncs_before + 1);
        let off = log
            .append(payload(5))
            .expect("queued before the failure is known");
        assert!(
            matches!(log.wait_durable(off), Err(DurabilityError::Failed { offset, .. }) if offset == off)
        );
        assert_eq!(log.durable_offset(), Some(TxOffset(4)));
        let err = log
            .append(b"refused".to_vec())
            .expect_err("failed log refuses appends");
        assert!(
            matches!(err, AppendError::Failed { ref cause, .. } if cause.op == FailedOp::Sync && cause.first_lost == off)
        );
        assert_eq!(err.into_payload(), b"refused");
        assert!(log.flush().is_err());
        assert_eq!(
            u.syncs(),
            syncs_before + 1,
            "a failed fsync is never retried"
        );
        assert_eq!(log.durable_offset(), Some(TxOffset(4)));
        drop(log); // joins the log thread, so its listener calls are done
        assert!(matches!(
            events.lock().expect("events").last(),
            Some(DurableEvent::Failed(_))
        ));
        u.inner().crash(3);
        let log = CommitLog::open(Arc::new(u.inner().clone()), opts(10_000)).expect("reopen");
        let got = collect(&log, 0);
        assert!(got.len() >= 5);
        assert_eq!(got, expected(0..got.len() as u64));
        assert_eq!(
            log.append(payload(got.len() as u64))
                .expect("append works again"),
            TxOffset(got.len() as u64)
        );
    }

    /// A store wrapper whose syncs wait until the test opens a gate.
    #[derive(Clone)]
    struct Gate<S: SegmentStore + Clone> {
        inner: S,
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }
    struct GateFile(Box<dyn SegmentFile>, Arc<(Mutex<bool>, std::sync::Condvar)>);
    impl<S: SegmentStore + Clone> Gate<S> {
        fn set(&self, open: bool) {
            *self.open.0.lock().expect("gate") = open;
            self.open.1.notify_all();
        }
    }
    impl<S: SegmentStore + Clone> SegmentStore for Gate<S> {
        fn list(&self) -> io::Result<Vec<TxOffset>> {
            self.inner.list()
        }
        fn read(&self, first: TxOffset) -> io::Result<Vec<u8>> {
            self.inner.read(first)
        }
        fn create(&self, first: TxOffset) -> io::Result<Box<dyn SegmentFile>> {
            Ok(Box::new(GateFile(
                self.inner.create(first)?,
                self.open.clone(),
            )))
        }
        fn open_append(&self, first: TxOffset, valid_len: u64) -> io::Result<Box<dyn SegmentFile>> {
            Ok(Box::new(GateFile(
                self.inner.open_append(first, valid_len)?,
                self.open.clone(),
            )))
        }
        fn remove(&self, first: TxOffset) -> io::Result<()> {
            self.inner.remove(first)
        }
    }
    impl SegmentFile for GateFile {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.0.append(bytes)
        }
        fn sync(&mut self) -> io::Result<()> {
            let (lock, cv) = &*self.1;
            let mut open = lock.lock().expect("gate");
            while !*open {
                open = cv.wait(open).expect("gate");
            }
            drop(open);
            self.0.sync()
        }
    }

    // Protects that threads already blocked in wait_durable are woken with an error when the sync they wait for fails.
    #[test]
    fn blocked_waiters_get_the_failure() {
        let u = Unreliable::new(MemorySegmentStore::new());
        let gate = Gate {
            inner: u.clone(),
            open: Arc::new((Mutex::new(true), std::sync::Condvar::new())),
        };
        let log = Arc::new(CommitLog::open(Arc::new(gate.clone()), opts(10_000)).expect("open"));
        append_n(&log, 0..3);
        log.flush().expect("flush");
        gate.set(false);
        u.fail_sync_nth(u.syncs() + 1);
        let off = log.append(payload(3)).expect("append");
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || log.wait_durable(off))
            })
            .collect();
        // All three are blocked in wait_durable before the sync fails.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while log.shared.lock().waiting < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the waiters never blocked"
            );
            // sleep-ok: the pause of a poll with a deadline.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        gate.set(true);
        for w in waiters {
            assert!(matches!(
                w.join().expect("waiter"),
                Err(DurabilityError::Failed { .. })
            ));
        }
        assert_eq!(log.durable_offset(), Some(TxOffset(2)));
        log.wait_durable(TxOffset(2))
            .expect("offsets durable before the failure stay durable");
    }

    // Protects sticky failure after a failed or torn append, and that reopening cuts the torn bytes.
    #[test]
    fn sticky_failure_after_failed_or_torn_append() {
        for tear in [None, Some(0), Some(7), Some(20)] {
            let u = Unreliable::new(MemorySegmentStore::new());
            let log = CommitLog::open(Arc::new(u.clone()), opts(10_000)).expect("open");
            append_n(&log, 0..5);
            log.flush().expect("flush");
            match tear {
                None => u.fail_append_nth(u.appends() + 1),
                Some(keep) => u.tear_append_nth(u.appends() + 1, keep),
            }
            let off = log.append(payload(5)).expect("queued");
            assert!(log.wait_durable(off).is_err());
            assert!(matches!(
                log.append(payload(6)),
                Err(AppendError::Failed { .. })
            ));
            assert_eq!(log.durable_offset(), Some(TxOffset(4)));
            drop(log);
            let log = CommitLog::open(Arc::new(u.inner().clone()), opts(10_000)).expect("reopen");
            assert_eq!(collect(&log, 0), expected(0..5), "tear {tear:?}");
            let cut = log.open_report().tail_cut.as_ref().map(|c| c.bytes);
            assert_eq!(
                cut,
                tear.filter(|&k| k > 0).map(|k| k as u64),
                "tear {tear:?}"
            );
            append_n(&log, 5..8);
            log.flush().expect("flush");
        }
    }

    // Protects that group commit really batches: many concurrent committers share few fsyncs.
    #[test]
    fn group_commit_batches_syncs() {
        let u = Unreliable::new(MemorySegmentStore::new());
        let log = Arc::new(
            CommitLog::open(Arc::new(SlowSync(u.clone())), opts(64 * 1024)).expect("open"),
        );
        let syncs_before = u.syncs();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..1250u64 {
                        let off = log.append(format!("{t}:{i}").into_bytes()).expect("append");
                        if let Some(&prev) = mine.last() {
                            assert!(off > prev, "offsets follow call order");
                        }
                        mine.push(off);
                        // Like a committing transaction: wait for durability.
                        log.wait_durable(off).expect("durable");
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<TxOffset> = threads
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        all.sort();
        assert_eq!(
            all,
            (0..10_000).map(TxOffset).collect::<Vec<_>>(),
            "offsets are dense and unique"
        );
        let syncs = u.syncs() - syncs_before;
        assert!(
            syncs * 3 < 10_000,
            "expected batching, got {syncs} syncs for 10000 appends"
        );
        let mut n = 0;
        log.replay(TxOffset(0), |o, _| {
            assert_eq!(o.0, n);
            n += 1;
            Ok::<(), ()>(())
        })
        .expect("replay");
        assert_eq!(n, 10_000);
    }

    // Protects starting a fresh log at a snapshot's offset, and refusing a log that ends before the start offset.
    #[test]
    fn start_offset_for_empty_store() {
        let store = MemorySegmentStore::new();
        let o = CommitLogOptions {
            start_offset: TxOffset(100),
            ..opts(10_000)
        };
        let log = open_mem(&store, o.clone()).expect("open");
        assert_eq!(log.durable_offset(), None);
        assert_eq!(log.flush().expect("flush"), None);
        assert!(matches!(
            log.wait_durable(TxOffset(50)),
            Err(DurabilityError::NotAppended { .. })
        ));
        assert_eq!(log.append(b"a".to_vec()).expect("append"), TxOffset(100));
        assert_eq!(log.flush().expect("flush"), Some(TxOffset(100)));
        log.close().expect("close");
        assert_eq!(store.list().expect("list"), vec![TxOffset(100)]);
        let log = open_mem(
            &store,
            CommitLogOptions {
                start_offset: TxOffset(50),
                ..opts(10_000)
            },
        )
        .expect("reopen");
        assert_eq!(log.append(b"b".to_vec()).expect("append"), TxOffset(101));
        log.close().expect("close");
        match open_mem(
            &store,
            CommitLogOptions {
                start_offset: TxOffset(500),
                ..opts(10_000)
            },
        ) {
            Err(OpenError::EndsBeforeStart { next, start_offset }) => {
                assert_eq!((next, start_offset), (TxOffset(102), TxOffset(500)))
            }
            other => panic!("expected EndsBeforeStart, got {other:?}"),
        }
    }

    // Protects segment retention: only sealed segments wholly below the offset go, the log stays contiguous and reopenable.
    #[test]
    fn remove_segments_below_keeps_what_is_needed() {
        let store = MemorySegmentStore::new();
        let log = open_mem(&store, opts(150)).expect("open");
        append_n(&log, 0..100);
        log.flush().expect("flush");
        let removed = log.remove_segments_below(TxOffset(50)).expect("remove");
        assert!(!removed.is_empty());
        let segs = log.segments();
        assert!(segs[0].first <= TxOffset(50) && segs[0].last.expect("records") >= TxOffset(50));
        assert_eq!(
            store.list().expect("list"),
            segs.iter().map(|s| s.first).collect::<Vec<_>>()
        );
        assert_eq!(collect(&log, 50), expected(50..100));
        assert!(matches!(
            log.replay(TxOffset(0), |_, _| Ok::<(), ()>(())),
            Err(ReplayError::NotRetained { .. })
        ));
        log.remove_segments_below(TxOffset(u64::MAX))
            .expect("remove all sealed");
        let segs = log.segments();
        assert_eq!(segs.len(), 1, "the active segment always stays");
        assert!(!segs[0].sealed);
        let first = segs[0].first;
        log.close().expect("close");
        let log = open_mem(&store, opts(150)).expect("reopen");
        assert_eq!(collect(&log, first.0), expected(first.0..100));
        assert_eq!(log.append(payload(100)).expect("append"), TxOffset(100));
    }

    // Protects the canary: skip_fsync_canary really skips syncs (so the engine crash test can catch it) yet reports durability.
    #[test]
    fn canary_skips_syncs_and_can_lose_acknowledged_data() {
        for canary in [false, true] {
            let u = Unreliable::new(MemorySegmentStore::new());
            let o = CommitLogOptions {
                skip_fsync_canary: canary,
                ..opts(200)
            };
            let log = CommitLog::open(Arc::new(u.clone()), o).expect("open");
            let before = u.syncs();
            append_n(&log, 0..50);
            assert_eq!(log.flush().expect("flush"), Some(TxOffset(49)));
            assert_eq!(u.syncs() == before, canary, "canary={canary}");
        }
        // With the canary on, some crash loses an acknowledged record.
        let lost = (0..20u64).any(|seed| {
            let store = MemorySegmentStore::new();
            let o = CommitLogOptions {
                skip_fsync_canary: true,
                ..opts(200)
            };
            let log = open_mem(&store, o).expect("open");
            append_n(&log, 0..50);
            log.flush().expect("flush");
            store.crash(seed);
            drop(log);
            match open_mem(&store, opts(200)) {
                Ok(log) => collect(&log, 0).len() < 50,
                Err(_) => true,
            }
        });
        assert!(lost, "the canary must be observable by a crash test");
    }

    // Protects the bounded queue and the listener path: a queue of one still makes progress and listeners see every batch.
    #[test]
    fn tiny_queue_and_listeners() {
        let store = MemorySegmentStore::new();
        let log = open_mem(
            &store,
            CommitLogOptions {
                queue_txs_max: 1,
                ..opts(500)
            },
        )
        .expect("open");
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        log.on_durable(Box::new(move |e| {
            if let DurableEvent::Durable(o) = e {
                s.fetch_max(o.0, Ordering::SeqCst);
            }
        }));
        append_n(&log, 0..200);
        log.flush().expect("flush");
        assert_eq!(collect(&log, 0), expected(0..200));
        // Listeners run on the log thread after the watermark is published;
        // closing joins that thread, so every call has happened by then.
        log.close().expect("close");
        assert_eq!(seen.load(Ordering::SeqCst), 199);
    }

    // Protects the record size limit: oversized payloads are refused and handed back, the log stays usable.
    #[test]
    fn oversized_payload_is_refused() {
        let log = open_mem(&MemorySegmentStore::new(), opts(1000)).expect("open");
        let big = vec![0u8; COMMITLOG_RECORD_BYTES_MAX as usize + 1];
        let err = log.append(big).expect_err("too large");
        assert!(matches!(err, AppendError::TooLarge { .. }));
        assert_eq!(
            err.into_payload().len() as u64,
            COMMITLOG_RECORD_BYTES_MAX + 1
        );
        assert_eq!(log.append(b"ok".to_vec()).expect("append"), TxOffset(0));
    }

    // Protects the replay callback contract: its error stops replay and comes back with the offset.
    #[test]
    fn replay_callback_error_stops() {
        let log = open_mem(&MemorySegmentStore::new(), opts(100)).expect("open");
        append_n(&log, 0..30);
        log.flush().expect("flush");
        let mut visited = 0;
        let r = log.replay(TxOffset(3), |o, _| {
            visited += 1;
            if o == TxOffset(17) {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert!(matches!(
            r,
            Err(ReplayError::Callback {
                offset: TxOffset(17),
                error: "stop"
            })
        ));
        assert_eq!(visited, 15);
    }

    // Protects the real file store end to end: rotation, reopen, and a torn tail left on disk.
    #[test]
    fn file_store_end_to_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || {
            let store = FileSegmentStore::open(dir.path()).expect("store");
            CommitLog::open(Arc::new(store), opts(256)).expect("open")
        };
        let log = open();
        append_n(&log, 0..40);
        log.close().expect("close");
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(files.len() > 2);
        let last = files.last().expect("files");
        let len = std::fs::metadata(last).expect("meta").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(last)
            .expect("open")
            .set_len(len - 3)
            .expect("truncate");
        let log = open();
        assert_eq!(log.open_report().next_offset, TxOffset(39));
        append_n(&log, 39..45);
        log.close().expect("close");
        assert_eq!(collect(&open(), 0), expected(0..45));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        // Protects crash safety for arbitrary payload sizes, segment sizes, flush points and crash seeds.
        #[test]
        fn prop_crash_leaves_durable_prefix(
            sizes in proptest::collection::vec(0usize..300, 1..80),
            flushes in proptest::collection::vec(any::<bool>(), 80),
            segment in 64u64..1024,
            seed in any::<u64>(),
        ) {
            let store = MemorySegmentStore::new();
            let log = open_mem(&store, opts(segment)).expect("open");
            let payloads: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| vec![i as u8; n]).collect();
            for (i, p) in payloads.iter().enumerate() {
                prop_assert_eq!(log.append(p.clone()).expect("append"), TxOffset(i as u64));
                if flushes[i] {
                    log.flush().expect("flush");
                }
            }
            let durable = log.durable_offset();
            store.crash(seed);
            drop(log);
            let log = open_mem(&store, opts(segment)).expect("reopen after crash");
            let got = collect(&log, 0);
            prop_assert!(got.len() <= payloads.len());
            for (i, (o, p)) in got.iter().enumerate() {
                prop_assert_eq!(*o, i as u64);
                prop_assert_eq!(p, &payloads[i]);
            }
            if let Some(d) = durable {
                prop_assert!(got.len() as u64 > d.0);
            }
            // And the log keeps going after recovery.
            let next = got.len() as u64;
            prop_assert_eq!(log.append(b"after".to_vec()).expect("append"), TxOffset(next));
            prop_assert_eq!(log.flush().expect("flush"), Some(TxOffset(next)));
        }
    }
}
