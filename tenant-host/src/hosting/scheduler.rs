//! The timer queue behind schedule tables (module-abi §8.6).
//!
//! Owns: [`Scheduler`], one thread per host holding every pending timer of
//! every database, and the decoding of `ScheduleAt` values ([`ScheduleAt`]).
//! A timer names a database, a schedule table and a schedule id; arming the
//! same (database, table, id) again replaces the pending timer, and a timer
//! whose database is gone is dropped. When a timer is due the scheduler hands
//! it to the database ([`Firing`]), which re-reads the row on its own lane
//! before calling anything.
//! Does not own: what firing means (`hosting`), or when rows change (the
//! database arms timers after each commit and when it is loaded).

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use orrery_api::limits::SCHEDULER_CLOCK_RECHECK_MS;
use spacetimedb_sats::AlgebraicValue;
use storage::clock::Clock;
use storage::TableId;

/// A decoded `ScheduleAt` column value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleAt {
    /// Run every `micros` (the absolute value of the stored duration).
    Interval { micros: i64 },
    /// Run once at this instant, in µs since the Unix epoch.
    Time { micros: i64 },
}

/// Intervals shorter than this run at this period, so that a zero interval
/// cannot keep a database's lane busy forever.
pub const INTERVAL_MICROS_MIN: i64 = 1_000;

impl ScheduleAt {
    /// Decodes the sum `ScheduleAt { Interval(TimeDuration), Time(Timestamp) }`:
    /// tag 0 or 1 around a one-field product holding an `i64` of µs.
    pub fn from_value(value: &AlgebraicValue) -> Option<ScheduleAt> {
        let AlgebraicValue::Sum(sum) = value else {
            return None;
        };
        let AlgebraicValue::Product(inner) = &*sum.value else {
            return None;
        };
        let Some(AlgebraicValue::I64(micros)) = inner.elements.first() else {
            return None;
        };
        match sum.tag {
            0 => Some(ScheduleAt::Interval {
                micros: micros.checked_abs().unwrap_or(i64::MAX),
            }),
            1 => Some(ScheduleAt::Time { micros: *micros }),
            _ => None,
        }
    }

    /// When a row inserted (or updated) at `now` is first due.
    pub fn first_due(self, now: i64) -> i64 {
        match self {
            ScheduleAt::Interval { micros } => now.saturating_add(micros.max(INTERVAL_MICROS_MIN)),
            ScheduleAt::Time { micros } => micros,
        }
    }
}

/// The next instant strictly after `now` on the grid `due + k·period`
/// (missed ticks are skipped, not replayed).
pub fn next_on_grid(due: i64, period: i64, now: i64) -> i64 {
    let period = period.max(INTERVAL_MICROS_MIN);
    if due > now {
        return due;
    }
    let behind = now.saturating_sub(due);
    let steps = behind / period + 1;
    due.saturating_add(steps.saturating_mul(period))
}

/// What a database does with a due timer. Implemented by the database so
/// the scheduler does not know about modules.
pub trait Firing: Send + Sync + 'static {
    /// Called on the scheduler thread; must only queue work, not run it.
    fn fire(self: Arc<Self>, timer: Timer);
}

/// One pending run of a schedule row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub table: TableId,
    pub schedule_id: u64,
    /// When it is due, µs since the Unix epoch.
    pub due_micros: i64,
    /// The row's `ScheduleAt` when the timer was armed; the database skips
    /// the run if the row now says something else.
    pub at: ScheduleAt,
}

type Key = (u64, TableId, u64);

struct Entry {
    due_micros: i64,
    generation: u64,
    key: Key,
    timer: Timer,
    database: Weak<dyn Firing>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so the max-heap pops the earliest timer first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due_micros, other.generation).cmp(&(self.due_micros, self.generation))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    /// The live generation of each key; heap entries with another one are stale.
    live: HashMap<Key, u64>,
    next_generation: u64,
}

struct Shared {
    /// The host's clock: timers fall due by it.
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    wake: Condvar,
    stopping: AtomicBool,
}

/// The host's timer thread and queue.
pub struct Scheduler {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Scheduler {
    /// Starts the timer thread, reading time from `clock` (the host's).
    pub fn start(clock: Arc<dyn Clock>) -> Scheduler {
        let shared = Arc::new(Shared {
            clock,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("scheduler".into())
                .spawn(move || run(&shared))
                .expect("spawning the scheduler thread")
        };
        Scheduler {
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Arms (or re-arms) the timer of `(database_key, timer.table,
    /// timer.schedule_id)`, replacing any pending one.
    pub fn arm(&self, database_key: u64, database: Weak<dyn Firing>, timer: Timer) {
        let key = (database_key, timer.table, timer.schedule_id);
        let mut state = lock(&self.shared.state);
        state.next_generation += 1;
        let generation = state.next_generation;
        state.live.insert(key, generation);
        let earliest = state
            .heap
            .peek()
            .is_none_or(|e| timer.due_micros < e.due_micros);
        state.heap.push(Entry {
            due_micros: timer.due_micros,
            generation,
            key,
            timer,
            database,
        });
        drop(state);
        if earliest {
            self.shared.wake.notify_one();
        }
    }

    /// Cancels the pending timer of one schedule row, if any.
    pub fn cancel(&self, database_key: u64, table: TableId, schedule_id: u64) {
        lock(&self.shared.state)
            .live
            .remove(&(database_key, table, schedule_id));
    }

    /// Cancels every timer of a database (it is being unloaded or replaced).
    pub fn cancel_database(&self, database_key: u64) {
        let mut state = lock(&self.shared.state);
        state.live.retain(|key, _| key.0 != database_key);
        state.heap.retain(|entry| entry.key.0 != database_key);
    }

    /// Timers pending for a database.
    pub fn pending(&self, database_key: u64) -> usize {
        lock(&self.shared.state)
            .live
            .keys()
            .filter(|key| key.0 == database_key)
            .count()
    }

    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(shared: &Shared) {
    let mut state = lock(&shared.state);
    loop {
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let now = shared.clock.now_micros();
        let Some(top) = state.heap.peek() else {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(|poison| poison.into_inner());
            continue;
        };
        if state.live.get(&top.key) != Some(&top.generation) {
            state.heap.pop();
            continue;
        }
        if top.due_micros > now {
            // Capped, so that a clock that jumps (a stepped wall clock, a
            // test's manual clock) is read again soon.
            let wait = Duration::from_micros((top.due_micros - now) as u64)
                .min(Duration::from_millis(SCHEDULER_CLOCK_RECHECK_MS));
            state = shared
                .wake
                .wait_timeout(state, wait)
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
            continue;
        }
        let entry = state.heap.pop().expect("peeked above");
        state.live.remove(&entry.key);
        drop(state);
        if let Some(database) = entry.database.upgrade() {
            database.fire(entry.timer);
        }
        state = lock(&shared.state);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
