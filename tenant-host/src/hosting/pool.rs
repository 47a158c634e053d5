//! The bounded worker pool: calls for different databases run in parallel on
//! a fixed set of threads, calls for one database run one at a time, in
//! submission order.
//!
//! Owns: [`WorkerPool`] (the threads and the queue of lanes ready to run) and
//! [`Lane`] (one database's queue of jobs, bounded). A lane is on the ready
//! queue at most once, so one database never occupies more than one worker;
//! a worker runs at most [`JOBS_PER_TURN`] jobs of a lane before putting it at
//! the back of the ready queue, so a busy database cannot starve the others.
//! Does not own: what a job does (`hosting`), or limits on how long one job
//! may run (the runtime's fuel and deadline bound every guest call).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Jobs one worker runs from a lane before letting other lanes go first.
pub const JOBS_PER_TURN: usize = 64;

/// A unit of work for one database.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// The lane's queue is full: the database has more calls waiting than its
/// bound allows. The job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the database has {queued} calls waiting, its limit; try again later")]
pub struct Overloaded {
    pub queued: usize,
}

/// The pool is shutting down and accepts no more jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the host is shutting down")]
pub struct ShuttingDown;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    #[error(transparent)]
    ShuttingDown(#[from] ShuttingDown),
}

/// One database's serial queue.
pub struct Lane {
    state: Mutex<LaneState>,
    queued_max: usize,
    /// Jobs that panicked (the worker survives; the panic is counted).
    panics: AtomicU64,
}

struct LaneState {
    jobs: VecDeque<Job>,
    /// On the ready queue or being run by a worker.
    scheduled: bool,
}

impl Lane {
    /// Jobs waiting (not counting one being run).
    pub fn queued(&self) -> usize {
        lock(&self.state).jobs.len()
    }

    /// Jobs of this lane that panicked.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

struct Shared {
    ready: Mutex<VecDeque<Arc<Lane>>>,
    wake: Condvar,
    stopping: AtomicBool,
}

/// A fixed set of worker threads serving lanes.
pub struct WorkerPool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    workers: usize,
}

impl WorkerPool {
    /// Starts `workers` threads (at least one).
    pub fn new(workers: usize) -> WorkerPool {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            ready: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let threads = (0..workers)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("db-worker-{i}"))
                    .spawn(move || work(&shared))
                    .expect("spawning a worker thread")
            })
            .collect();
        WorkerPool {
            shared,
            threads: Mutex::new(threads),
            workers,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// A new lane whose queue holds at most `queued_max` waiting jobs.
    pub fn lane(&self, queued_max: usize) -> Arc<Lane> {
        Arc::new(Lane {
            state: Mutex::new(LaneState {
                jobs: VecDeque::new(),
                scheduled: false,
            }),
            queued_max: queued_max.max(1),
            panics: AtomicU64::new(0),
        })
    }

    /// Queues `job` on `lane`; it runs after the lane's earlier jobs, never
    /// at the same time as another job of the lane.
    pub fn submit(&self, lane: &Arc<Lane>, job: Job) -> Result<(), SubmitError> {
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err(ShuttingDown.into());
        }
        let mut state = lock(&lane.state);
        if state.jobs.len() >= lane.queued_max {
            return Err(Overloaded {
                queued: state.jobs.len(),
            }
            .into());
        }
        state.jobs.push_back(job);
        if !state.scheduled {
            state.scheduled = true;
            drop(state);
            lock(&self.shared.ready).push_back(lane.clone());
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Stops accepting jobs, lets the workers finish every queued job, and
    /// joins them.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn work(shared: &Shared) {
    loop {
        let lane = {
            let mut ready = lock(&shared.ready);
            loop {
                if let Some(lane) = ready.pop_front() {
                    break lane;
                }
                if shared.stopping.load(Ordering::Acquire) {
                    return;
                }
                ready = shared
                    .wake
                    .wait(ready)
                    .unwrap_or_else(|poison| poison.into_inner());
            }
        };
        for _ in 0..JOBS_PER_TURN {
            let Some(job) = lock(&lane.state).jobs.pop_front() else {
                break;
            };
            // A panicking job must not take the worker (and every database
            // it would serve later) down with it.
            if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                lane.panics.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut state = lock(&lane.state);
        if state.jobs.is_empty() {
            state.scheduled = false;
        } else {
            drop(state);
            let mut ready = lock(&shared.ready);
            ready.push_back(lane);
            // Alone in the queue, this worker takes the lane again right
            // away: waking another would only move the lane between threads.
            let others_wait = ready.len() > 1;
            drop(ready);
            if others_wait {
                shared.wake.notify_one();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    #[test]
    fn one_lane_runs_in_order_and_never_concurrently() {
        let pool = WorkerPool::new(4);
        let lane = pool.lane(10_000);
        let running = Arc::new(AtomicBool::new(false));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (done, finished) = mpsc::channel();
        for i in 0..2_000 {
            let running = running.clone();
            let order = order.clone();
            let done = done.clone();
            pool.submit(
                &lane,
                Box::new(move || {
                    assert!(
                        !running.swap(true, Ordering::SeqCst),
                        "two jobs of a lane at once"
                    );
                    order.lock().unwrap().push(i);
                    running.store(false, Ordering::SeqCst);
                    done.send(()).unwrap();
                }),
            )
            .unwrap();
        }
        for _ in 0..2_000 {
            finished.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..2_000).collect::<Vec<_>>());
        assert_eq!(lane.panics(), 0);
    }

    #[test]
    fn a_stuck_lane_does_not_stall_another() {
        let pool = WorkerPool::new(2);
        let slow = pool.lane(100);
        let fast = pool.lane(100);
        let (release, blocked) = mpsc::channel::<()>();
        pool.submit(
            &slow,
            Box::new(move || {
                let _ = blocked.recv_timeout(Duration::from_secs(20));
            }),
        )
        .unwrap();
        let (done, finished) = mpsc::channel();
        let started = Instant::now();
        for _ in 0..100 {
            let done = done.clone();
            pool.submit(&fast, Box::new(move || done.send(()).unwrap()))
                .unwrap();
        }
        for _ in 0..100 {
            finished.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        release.send(()).unwrap();
    }

    #[test]
    fn full_lane_refuses_and_panics_are_contained() {
        let pool = WorkerPool::new(1);
        let lane = pool.lane(2);
        let (release, blocked) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        pool.submit(
            &lane,
            Box::new(move || {
                started_tx.send(()).unwrap();
                let _ = blocked.recv_timeout(Duration::from_secs(20));
            }),
        )
        .unwrap();
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        pool.submit(&lane, Box::new(|| panic!("job panics on purpose")))
            .unwrap();
        let (done, finished) = mpsc::channel();
        pool.submit(&lane, Box::new(move || done.send(()).unwrap()))
            .unwrap();
        assert_eq!(
            pool.submit(&lane, Box::new(|| {})),
            Err(SubmitError::Overloaded(Overloaded { queued: 2 }))
        );
        release.send(()).unwrap();
        finished.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(lane.panics(), 1);
        pool.shutdown();
        assert_eq!(
            pool.submit(&lane, Box::new(|| {})),
            Err(SubmitError::ShuttingDown(ShuttingDown))
        );
    }
}
