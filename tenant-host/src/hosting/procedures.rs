//! The host's procedure pool: procedure calls run here, off the databases'
//! lanes, because they may sleep or wait on HTTP for up to their deadline.
//!
//! Owns: [`ProcedurePool`] — a bounded queue of procedure jobs shared by every
//! database of the process and up to [`PROCEDURE_THREADS_COUNT_MAX`] threads
//! (started as jobs arrive, kept once started, named by number only: nothing a
//! client sends reaches a thread name), and [`ProcedureSlots`], one database's
//! count of procedure calls queued or running, capped at
//! [`PROCEDURES_RUNNING_COUNT_MAX`].
//! Does not own: what a procedure does (`hosting`, the runtime), or the
//! lanes of reducer calls (`hosting::pool`).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use orrery_api::limits::{
    PROCEDURES_QUEUED_COUNT_MAX, PROCEDURES_RUNNING_COUNT_MAX, PROCEDURE_THREADS_COUNT_MAX,
};

use super::pool::{Job, Overloaded, ShuttingDown, SubmitError};

/// Threads and a bounded queue for procedure calls of every database.
pub struct ProcedurePool {
    shared: Arc<Shared>,
    threads_max: usize,
    queued_max: usize,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Jobs that panicked (the thread survives; the panic is counted).
    panics: AtomicU64,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads started (each lives until shutdown).
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    stopping: bool,
}

impl Default for ProcedurePool {
    fn default() -> ProcedurePool {
        ProcedurePool::new(PROCEDURE_THREADS_COUNT_MAX, PROCEDURES_QUEUED_COUNT_MAX)
    }
}

impl ProcedurePool {
    /// A pool of at most `threads_max` threads (at least one) and
    /// `queued_max` waiting jobs (at least one). No thread starts until a
    /// job needs one.
    pub fn new(threads_max: usize, queued_max: usize) -> ProcedurePool {
        ProcedurePool {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                panics: AtomicU64::new(0),
            }),
            threads_max: threads_max.max(1),
            queued_max: queued_max.max(1),
        }
    }

    /// Queues `job`; a thread of the pool runs it. Refused when the queue
    /// is full or the pool is shutting down; a failure to start a thread
    /// leaves the job to the threads already running.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let mut state = lock(&self.shared.state);
        if state.stopping {
            return Err(ShuttingDown.into());
        }
        if state.jobs.len() >= self.queued_max {
            return Err(Overloaded {
                queued: state.jobs.len(),
            }
            .into());
        }
        state.jobs.push_back(job);
        // Idle threads not yet woken are claimed by jobs already queued.
        if state.idle >= state.jobs.len() {
            drop(state);
            self.shared.wake.notify_one();
            return Ok(());
        }
        if state.threads < self.threads_max {
            let index = state.threads;
            let shared = self.shared.clone();
            let started = std::thread::Builder::new()
                .name(format!("procedure-{index}"))
                .spawn(move || work(&shared));
            match started {
                Ok(_) => state.threads += 1,
                Err(e) if state.threads == 0 => {
                    // No thread will ever run it: take it back.
                    state.jobs.pop_back();
                    tracing::error!("cannot start a procedure thread: {e}");
                    return Err(Overloaded { queued: 0 }.into());
                }
                Err(e) => tracing::warn!("cannot start procedure thread {index}: {e}"),
            }
        }
        Ok(())
    }

    /// Threads started so far.
    pub fn threads(&self) -> usize {
        lock(&self.shared.state).threads
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        lock(&self.shared.state).jobs.len()
    }

    /// Jobs that panicked.
    pub fn panics(&self) -> u64 {
        self.shared.panics.load(Ordering::Relaxed)
    }

    /// Stops accepting jobs; the threads finish the jobs already queued and
    /// exit. Does not wait for them: a procedure may run until its deadline,
    /// and shutting down does not wait for procedures (their transactions
    /// are committed or rolled back by themselves).
    pub fn shutdown(&self) {
        lock(&self.shared.state).stopping = true;
        self.shared.wake.notify_all();
    }
}

impl Drop for ProcedurePool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut state = lock(&shared.state);
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break job;
                }
                if state.stopping {
                    return;
                }
                state.idle += 1;
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(|poison| poison.into_inner());
                state.idle -= 1;
            }
        };
        // A panicking procedure must not take the thread (and every
        // procedure it would run later) down with it.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            shared.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One database's procedure calls queued or running, at most
/// [`PROCEDURES_RUNNING_COUNT_MAX`].
#[derive(Default)]
pub(crate) struct ProcedureSlots {
    taken: Arc<AtomicUsize>,
}

impl ProcedureSlots {
    /// Takes a slot for one call, or says the database has too many. The
    /// slot is given back when the returned guard is dropped.
    pub(crate) fn take(&self) -> Result<SlotGuard, Overloaded> {
        let taken = self.taken.fetch_add(1, Ordering::AcqRel);
        if taken >= PROCEDURES_RUNNING_COUNT_MAX {
            self.taken.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded { queued: taken });
        }
        Ok(SlotGuard(self.taken.clone()))
    }

    /// Calls queued or running now.
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }
}

/// A taken slot; given back on drop (also when the call panics, or when its
/// job is dropped without running).
pub(crate) struct SlotGuard(Arc<AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    //! The pool runs every job on a bounded set of numbered threads, refuses
    //! past its queue bound, survives panics; slots cap one database.

    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_run_on_at_most_the_bounded_threads() {
        let pool = ProcedurePool::new(2, 64);
        let (done_tx, done_rx) = mpsc::sync_channel(64);
        let (gate_tx, gate_rx) = mpsc::sync_channel::<()>(0);
        let gate = Arc::new(Mutex::new(gate_rx));
        for _ in 0..10 {
            let done = done_tx.clone();
            let gate = gate.clone();
            pool.submit(Box::new(move || {
                // Each job waits for its turn, so both threads are busy.
                lock(&gate).recv().expect("the test opens the gate");
                let name = std::thread::current().name().map(str::to_owned);
                done.send(name).expect("the test waits");
            }))
            .unwrap();
        }
        assert_eq!(pool.threads(), 2, "no more threads than the bound");
        for _ in 0..10 {
            gate_tx.send(()).unwrap();
        }
        for _ in 0..10 {
            let name = done_rx.recv().unwrap().expect("pool threads are named");
            assert!(name == "procedure-0" || name == "procedure-1", "{name}");
        }
        assert_eq!(pool.threads(), 2);
    }

    #[test]
    fn a_full_queue_refuses_and_a_panic_leaves_the_thread_serving() {
        let pool = ProcedurePool::new(1, 2);
        let (gate_tx, gate_rx) = mpsc::sync_channel::<()>(0);
        let (started_tx, started_rx) = mpsc::sync_channel::<()>(1);
        pool.submit(Box::new(move || {
            started_tx.send(()).unwrap();
            gate_rx.recv().unwrap();
            panic!("a procedure job panics");
        }))
        .unwrap();
        started_rx.recv().unwrap();
        let (done_tx, done_rx) = mpsc::sync_channel(4);
        for _ in 0..2 {
            let done = done_tx.clone();
            pool.submit(Box::new(move || done.send(()).unwrap()))
                .unwrap();
        }
        assert_eq!(
            pool.submit(Box::new(|| {})),
            Err(SubmitError::Overloaded(Overloaded { queued: 2 }))
        );
        gate_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        done_rx.recv().unwrap();
        assert_eq!(pool.panics(), 1);
        pool.shutdown();
        assert_eq!(
            pool.submit(Box::new(|| {})),
            Err(SubmitError::ShuttingDown(ShuttingDown))
        );
    }

    #[test]
    fn slots_cap_one_database_and_come_back_on_drop() {
        let slots = ProcedureSlots::default();
        let guards: Vec<SlotGuard> = (0..PROCEDURES_RUNNING_COUNT_MAX)
            .map(|_| slots.take().expect("under the cap"))
            .collect();
        assert!(slots.take().is_err());
        assert_eq!(slots.taken(), PROCEDURES_RUNNING_COUNT_MAX);
        drop(guards);
        assert_eq!(slots.taken(), 0);
        assert!(slots.take().is_ok());
    }
}
