//! The bounded worker pool: calls for different databases run in parallel on
//! a fixed set of threads, calls for one database run one at a time, in
//! submission order.
//!
//! Owns: [`WorkerPool`] (the threads and the queue of lanes ready to run),
//! [`Lane`] (one database's queue of jobs, bounded) and [`PoolPolicy`] (how
//! long a lane's turn lasts and how many workers slow lanes may hold).
//! A lane is on the ready queue at most once, so one database never occupies
//! more than one worker. A worker runs a lane's jobs for one turn: at most
//! [`limits::LANE_TURN_JOBS_MAX`] jobs and, at the end of the job that crosses
//! it, [`limits::LANE_TURN_MICROS_MAX`] of job time (a time slice); then the
//! lane goes to the back of the ready queue, so a busy database cannot starve
//! the others. Jobs are never preempted.
//! A lane whose last job ran at least [`limits::LANE_SLOW_JOB_MICROS`] is
//! slow; slow lanes together hold at most `workers -
//! [`limits::POOL_WORKERS_RESERVED_FOR_QUICK_LANES`]` workers at once (a
//! worker whose current job has run that long counts as held), so a database
//! with quick calls finds a worker while others run long calls back to back.
//! Does not own: what a job does (`hosting`), or limits on how long one job
//! may run (the runtime's fuel and deadline bound every guest call).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use orrery_api::limits;

/// A unit of work for one database.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// How workers share themselves between lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPolicy {
    /// Jobs a worker runs from a lane before letting other lanes go first.
    pub turn_jobs_max: usize,
    /// Job time after which a worker lets other lanes go first (checked
    /// after each job: a job is never interrupted).
    pub turn_time_max: Duration,
    /// A job at least this long marks its lane slow until its next job
    /// runs quicker.
    pub slow_job_min: Duration,
    /// Workers slow lanes may not take (when the pool has more workers than
    /// this; a smaller pool lets slow lanes use every worker).
    pub workers_reserved_for_quick: usize,
}

impl Default for PoolPolicy {
    fn default() -> PoolPolicy {
        PoolPolicy {
            turn_jobs_max: limits::LANE_TURN_JOBS_MAX,
            turn_time_max: Duration::from_micros(limits::LANE_TURN_MICROS_MAX),
            slow_job_min: Duration::from_micros(limits::LANE_SLOW_JOB_MICROS),
            workers_reserved_for_quick: limits::POOL_WORKERS_RESERVED_FOR_QUICK_LANES,
        }
    }
}

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
    /// The lane's last job ran at least [`PoolPolicy::slow_job_min`].
    slow: AtomicBool,
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

    /// Whether the lane's last job was slow (see [`PoolPolicy::slow_job_min`]).
    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Relaxed)
    }
}

/// What one worker is doing, readable by the others without a lock.
#[derive(Default)]
struct WorkerSlot {
    /// When its current job started, in microseconds since the pool's
    /// epoch, plus one; zero when it runs no lane.
    job_started: AtomicU64,
    /// The lane it runs was slow when the worker took it.
    lane_slow: AtomicBool,
}

struct Shared {
    ready: Mutex<VecDeque<Arc<Lane>>>,
    wake: Condvar,
    stopping: AtomicBool,
    policy: PoolPolicy,
    epoch: Instant,
    slots: Box<[WorkerSlot]>,
    /// Workers slow lanes may hold at once.
    slow_workers_max: usize,
}

impl Shared {
    fn micros_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Workers other than `me` held by a slow lane: one taken while slow, or
    /// one whose current job has already run as long as a slow job.
    fn slow_workers_besides(&self, me: usize) -> usize {
        let now = self.micros_since_epoch();
        let slow_micros = u64::try_from(self.policy.slow_job_min.as_micros()).unwrap_or(u64::MAX);
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, slot)| {
                let started = slot.job_started.load(Ordering::Acquire);
                *i != me
                    && started != 0
                    && (slot.lane_slow.load(Ordering::Acquire)
                        || now.saturating_sub(started - 1) >= slow_micros)
            })
            .count()
    }

    /// The position of the first ready lane worker `me` may take: a quick
    /// lane always, a slow one while slow lanes hold fewer workers than
    /// they may.
    fn pick(&self, ready: &VecDeque<Arc<Lane>>, me: usize) -> Option<usize> {
        let mut slow_held = None;
        ready.iter().position(|lane| {
            !lane.is_slow()
                || *slow_held.get_or_insert_with(|| self.slow_workers_besides(me))
                    < self.slow_workers_max
        })
    }
}

/// A fixed set of worker threads serving lanes.
pub struct WorkerPool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    workers: usize,
}

impl WorkerPool {
    /// Starts `workers` threads (at least one) with the default policy.
    pub fn new(workers: usize) -> WorkerPool {
        WorkerPool::with_policy(workers, PoolPolicy::default())
    }

    /// Starts `workers` threads (at least one) sharing themselves between
    /// lanes as `policy` says.
    pub fn with_policy(workers: usize, policy: PoolPolicy) -> WorkerPool {
        let workers = workers.max(1);
        let policy = PoolPolicy {
            turn_jobs_max: policy.turn_jobs_max.max(1),
            ..policy
        };
        let slow_workers_max = if workers > policy.workers_reserved_for_quick {
            workers - policy.workers_reserved_for_quick
        } else {
            workers
        };
        let shared = Arc::new(Shared {
            ready: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            policy,
            epoch: Instant::now(),
            slots: (0..workers).map(|_| WorkerSlot::default()).collect(),
            slow_workers_max,
        });
        let threads = (0..workers)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("db-worker-{i}"))
                    .spawn(move || work(&shared, i))
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

    pub fn policy(&self) -> &PoolPolicy {
        &self.shared.policy
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
            slow: AtomicBool::new(false),
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

fn work(shared: &Shared, me: usize) {
    let slot = &shared.slots[me];
    loop {
        let lane = {
            let mut ready = lock(&shared.ready);
            loop {
                if let Some(at) = shared.pick(&ready, me) {
                    let lane = ready.remove(at).expect("picked from the queue");
                    // Marked under the queue's lock, so a worker picking
                    // next counts this one.
                    slot.lane_slow.store(lane.is_slow(), Ordering::Release);
                    slot.job_started
                        .store(shared.micros_since_epoch() + 1, Ordering::Release);
                    break lane;
                }
                // Lanes left waiting are slow ones a busy worker will free a
                // place for, and wake us when it does.
                if ready.is_empty() && shared.stopping.load(Ordering::Acquire) {
                    return;
                }
                ready = shared
                    .wake
                    .wait(ready)
                    .unwrap_or_else(|poison| poison.into_inner());
            }
        };
        let held_slow = run_turn(shared, slot, &lane);
        let mut state = lock(&lane.state);
        let mut ready = lock(&shared.ready);
        slot.job_started.store(0, Ordering::Release);
        slot.lane_slow.store(false, Ordering::Release);
        if state.jobs.is_empty() {
            state.scheduled = false;
            drop(state);
        } else {
            drop(state);
            ready.push_back(lane);
        }
        if held_slow && !ready.is_empty() {
            // A place for slow lanes is free: a worker that passed one over
            // may take it now.
            drop(ready);
            shared.wake.notify_all();
        } else if ready.len() > 1 {
            // Alone in the queue, this worker takes the lane again right
            // away: waking another would only move the lane between threads.
            drop(ready);
            shared.wake.notify_one();
        }
    }
}

/// Runs one turn of `lane`: jobs until its queue is empty, the turn's job
/// count or its time slice is used up. Returns whether the worker counted
/// as held by a slow lane at the end.
fn run_turn(shared: &Shared, slot: &WorkerSlot, lane: &Lane) -> bool {
    let policy = &shared.policy;
    let turn_started = Instant::now();
    let mut held_slow = slot.lane_slow.load(Ordering::Acquire);
    for _ in 0..policy.turn_jobs_max {
        let Some(job) = lock(&lane.state).jobs.pop_front() else {
            break;
        };
        let started = Instant::now();
        slot.job_started
            .store(shared.micros_since_epoch() + 1, Ordering::Release);
        // A panicking job must not take the worker (and every database
        // it would serve later) down with it.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            lane.panics.fetch_add(1, Ordering::Relaxed);
        }
        let slow = started.elapsed() >= policy.slow_job_min;
        lane.slow.store(slow, Ordering::Relaxed);
        held_slow |= slow;
        if turn_started.elapsed() >= policy.turn_time_max {
            break;
        }
    }
    held_slow
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
