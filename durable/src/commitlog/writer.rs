//! The group-commit thread and the state it shares with callers.
//!
//! Owns: [`Shared`] (queue, offset counter, durable watermark, sticky failure,
//! segment table, listeners) and [`Writer`], the body of the dedicated
//! thread that turns queued payloads into synced records. Does not own:
//! opening, scanning or replay (see the parent module and `recovery`).
//!
//! Entry points: [`Writer::run`] (thread body), [`Shared::lock`].
//!
//! Invariants: offsets in the queue are dense and increasing (they are
//! assigned and enqueued in one critical section); the durable watermark only
//! moves forward, and only after a successful sync covering every record up
//! to it, so a durable offset implies all lower ones are durable. Once
//! `failed` is set it is never cleared.

use super::error::{FailedOp, FailureCause};
use super::format::{encode_header, encode_record, framed_len, HEADER_LEN};
use super::stats::SyncStats;
use super::store::{SegmentFile, SegmentStore};
use super::{DurableEvent, SegmentInfo};
use orrery_api::TxOffset;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A listener told about durability progress and failure.
pub(crate) type Listener = Arc<dyn Fn(DurableEvent) + Send + Sync>;

/// Appended bytes are handed to the store in chunks of about this size, so a
/// large batch does not need one buffer the size of the whole batch.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

pub(crate) struct State {
    /// Next offset `append` will assign.
    pub(crate) next: TxOffset,
    pub(crate) queue: VecDeque<(TxOffset, Vec<u8>)>,
    pub(crate) durable: Option<TxOffset>,
    pub(crate) failed: Option<FailureCause>,
    /// Set by drop: the writer drains the queue, then exits.
    pub(crate) closing: bool,
    /// Set when the writer thread is gone, whatever the reason (incl. panic).
    pub(crate) writer_exited: bool,
    /// Threads blocked in `wait_durable` (a seam: tests wait on it instead
    /// of sleeping until their waiters block).
    pub(crate) waiting: usize,
    pub(crate) segments: Vec<SegmentInfo>,
    pub(crate) listeners: Vec<Listener>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// The writer waits here for work or closing.
    pub(crate) work: Condvar,
    /// Appenders wait here for queue room or failure.
    pub(crate) space: Condvar,
    /// Durability waiters wait here for watermark progress, failure or exit.
    pub(crate) durable: Condvar,
    pub(crate) queue_max: usize,
    /// Lowest offset this log has ever covered (first retained segment's
    /// first offset at open, or the start offset of a new log).
    pub(crate) base: TxOffset,
    /// The writer's syncs: count and durations.
    pub(crate) syncs: SyncStats,
}

impl Shared {
    pub(crate) fn new(state: State, queue_max: usize, base: TxOffset) -> Shared {
        Shared {
            state: Mutex::new(state),
            work: Condvar::new(),
            space: Condvar::new(),
            durable: Condvar::new(),
            queue_max,
            base,
            syncs: SyncStats::default(),
        }
    }

    /// Every mutation of `State` is a few field writes that leave it
    /// coherent, so a poisoned lock (a panicking listener, say) is still
    /// safe to use; waiters then see `writer_exited` instead of a cascade of
    /// panics.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify_everyone(&self) {
        self.work.notify_all();
        self.space.notify_all();
        self.durable.notify_all();
    }
}

/// Marks the writer as gone when the thread ends, including by panic, so
/// nobody waits forever for a watermark that will not move.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.lock().writer_exited = true;
        self.0.notify_everyone();
    }
}

pub(crate) struct Writer {
    pub(crate) store: Arc<dyn SegmentStore>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) active: Box<dyn SegmentFile>,
    pub(crate) active_first: TxOffset,
    /// Bytes appended to the active segment (header included).
    pub(crate) active_bytes: u64,
    pub(crate) active_last: Option<TxOffset>,
    pub(crate) segment_bytes_max: u64,
    /// Test-only deliberate bug, see `CommitLogOptions::skip_fsync_canary`.
    pub(crate) skip_sync: bool,
}

/// Bytes encoded but not yet handed to the store, and what they contain.
struct Pending {
    buf: Vec<u8>,
    last: Option<TxOffset>,
}

impl Writer {
    /// Thread body: take everything queued, write it, sync once, publish.
    pub(crate) fn run(mut self) {
        let _guard = ExitGuard(self.shared.clone());
        loop {
            let batch: Vec<(TxOffset, Vec<u8>)> = {
                let mut st = self.shared.lock();
                while st.queue.is_empty() && !st.closing {
                    st = self.shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if st.queue.is_empty() {
                    return; // closing and drained
                }
                st.queue.drain(..).collect()
            };
            self.shared.space.notify_all();
            let first_lost = batch[0].0;
            match self.write_batch(batch) {
                Ok(last) => {
                    let listeners = {
                        let mut st = self.shared.lock();
                        assert!(
                            st.durable.is_none_or(|d| d < last),
                            "durable watermark must only move forward"
                        );
                        st.durable = Some(last);
                        st.listeners.clone()
                    };
                    self.shared.durable.notify_all();
                    for l in &listeners {
                        l(DurableEvent::Durable(last));
                    }
                }
                Err((op, segment, err)) => {
                    let cause = FailureCause::new(op, segment, first_lost, &err);
                    let listeners = {
                        let mut st = self.shared.lock();
                        st.failed = Some(cause.clone());
                        // These offsets were assigned but will never be
                        // written; their waiters get the failure.
                        st.queue.clear();
                        st.listeners.clone()
                    };
                    self.shared.notify_everyone();
                    for l in &listeners {
                        l(DurableEvent::Failed(cause.clone()));
                    }
                    // Sticky: no retry. An fsync that failed may have dropped
                    // dirty pages, so a later "successful" fsync proves nothing.
                    return;
                }
            }
        }
    }

    // Crash case analysis for the commit path below (details in
    // docs/design/commitlog.md):
    // - crash during or after `append`, before `sync`: the batch is not yet
    //   acknowledged; the medium holds any prefix of it (torn tail), which
    //   open cuts back to the last intact record. Nobody was told "durable".
    // - crash after `sync`, before the watermark moves: the batch is durable
    //   but unacknowledged; open keeps it. Keeping more than was acknowledged
    //   is allowed, losing less is not.
    // - crash during rotation: the old segment was synced before the new one
    //   is created, so only the new (last) segment can be empty or have a
    //   torn header; open treats that as a torn tail and rewrites the header.
    // - a failed append or sync: sticky failure, the watermark stays put.

    /// Writes one batch and makes it durable. Returns the last offset.
    fn write_batch(
        &mut self,
        batch: Vec<(TxOffset, Vec<u8>)>,
    ) -> Result<TxOffset, (FailedOp, TxOffset, std::io::Error)> {
        let mut pending = Pending {
            buf: Vec::new(),
            last: None,
        };
        let mut last = None;
        for (offset, payload) in batch {
            let framed = framed_len(payload.len()) as u64;
            let has_records = self.active_last.is_some() || pending.last.is_some();
            if has_records
                && self.active_bytes + pending.buf.len() as u64 + framed > self.segment_bytes_max
            {
                self.write_pending(&mut pending)?;
                // Seal: the old segment must be durable before a newer one
                // exists, so that only the last segment can ever be torn.
                self.sync()?;
                self.rotate(offset)?;
            }
            encode_record(offset, &payload, &mut pending.buf);
            pending.last = Some(offset);
            last = Some(offset);
            if pending.buf.len() >= WRITE_CHUNK_BYTES {
                self.write_pending(&mut pending)?;
            }
        }
        self.write_pending(&mut pending)?;
        self.sync()?;
        Ok(last.expect("batches are never empty"))
    }

    fn write_pending(
        &mut self,
        pending: &mut Pending,
    ) -> Result<(), (FailedOp, TxOffset, std::io::Error)> {
        if pending.buf.is_empty() {
            return Ok(());
        }
        self.active
            .append(&pending.buf)
            .map_err(|e| (FailedOp::Append, self.active_first, e))?;
        self.active_bytes += pending.buf.len() as u64;
        self.active_last = pending.last.or(self.active_last);
        pending.buf.clear();
        pending.last = None;
        let mut st = self.shared.lock();
        let seg = st
            .segments
            .last_mut()
            .expect("there is always an active segment");
        assert_eq!(
            seg.first, self.active_first,
            "segment table out of step with the writer"
        );
        seg.bytes = self.active_bytes;
        seg.last = self.active_last;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), (FailedOp, TxOffset, std::io::Error)> {
        if self.skip_sync {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.active
            .sync()
            .map_err(|e| (FailedOp::Sync, self.active_first, e))?;
        self.shared.syncs.record(started.elapsed());
        Ok(())
    }

    /// Seals the (already synced) active segment and starts one at `first`.
    fn rotate(&mut self, first: TxOffset) -> Result<(), (FailedOp, TxOffset, std::io::Error)> {
        let file = self
            .store
            .create(first)
            .map_err(|e| (FailedOp::Create, first, e))?;
        {
            let mut st = self.shared.lock();
            let seg = st
                .segments
                .last_mut()
                .expect("there is always an active segment");
            seg.sealed = true;
            st.segments.push(SegmentInfo {
                first,
                last: None,
                bytes: 0,
                sealed: false,
            });
        }
        self.active = file;
        self.active_first = first;
        self.active_bytes = 0;
        self.active_last = None;
        // The header goes out with the first records and is covered by the
        // batch's single sync.
        let header = encode_header(first);
        self.active
            .append(&header)
            .map_err(|e| (FailedOp::Append, first, e))?;
        self.active_bytes = HEADER_LEN as u64;
        self.shared
            .lock()
            .segments
            .last_mut()
            .expect("just pushed")
            .bytes = self.active_bytes;
        Ok(())
    }
}
