//! The timer wheel of scheduled reducers, on a manual clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::sync::mpsc;
use storage::clock::ManualClock;
use storage::TableId;
use tenant_host::hosting::scheduler::{
    next_on_grid, Firing, ScheduleAt, Scheduler, Timer, INTERVAL_MICROS_MIN,
};

struct Recorder(Mutex<mpsc::Sender<Timer>>);

impl Firing for Recorder {
    fn fire(self: Arc<Self>, timer: Timer) {
        let _ = self.0.lock().unwrap().send(timer);
    }
}

fn timer(id: u64, due_micros: i64) -> Timer {
    Timer {
        table: TableId(1),
        schedule_id: id,
        due_micros,
        at: ScheduleAt::Time { micros: due_micros },
    }
}

/// A scheduler on a manual clock at [`T0`] and the clock, which only
/// moves when a test moves it, so nothing fires while timers are armed.
fn manual() -> (Scheduler, ManualClock) {
    let clock = ManualClock::new(T0);
    (Scheduler::start(Arc::new(clock.clone())), clock)
}

const T0: i64 = 1_700_000_000_000_000;

/// The schedule ids `rx` receives up to and including `last`.
fn received_until(rx: &mpsc::Receiver<Timer>, last: u64) -> Vec<u64> {
    let mut got = Vec::new();
    while got.last() != Some(&last) {
        let timer = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the timer fires once the clock has passed it");
        got.push(timer.schedule_id);
    }
    got
}

// Protects the heap order, re-arming and cancelling. A sentinel due last
// proves that nothing else fires: timers leave the heap in due order, so
// a stale or cancelled timer that fired would arrive before it.
#[test]
fn fires_in_due_order_and_rearming_replaces() {
    let (scheduler, clock) = manual();
    let (tx, rx) = mpsc::channel();
    let recorder: Arc<dyn Firing> = Arc::new(Recorder(Mutex::new(tx)));
    scheduler.arm(7, Arc::downgrade(&recorder), timer(1, T0 + 60_000));
    scheduler.arm(7, Arc::downgrade(&recorder), timer(2, T0 + 20_000));
    scheduler.arm(7, Arc::downgrade(&recorder), timer(3, T0 + 40_000));
    // Re-arming id 3 later replaces its first timer.
    scheduler.arm(7, Arc::downgrade(&recorder), timer(3, T0 + 80_000));
    scheduler.cancel(7, TableId(1), 1);
    scheduler.arm(7, Arc::downgrade(&recorder), timer(99, T0 + 90_000));
    assert_eq!(scheduler.pending(7), 3);
    clock.set(T0 + 100_000);
    assert_eq!(received_until(&rx, 99), vec![2, 3, 99]);
    assert_eq!(scheduler.pending(7), 0);
}

// Protects: a timer whose database is gone is dropped, not fired. The
// sentinel of a live database is due later, so it arrives first and
// alone only if the dropped one was discarded.
#[test]
fn dropped_database_timers_are_discarded() {
    let (scheduler, clock) = manual();
    let (tx, rx) = mpsc::channel();
    let dropped: Arc<dyn Firing> = Arc::new(Recorder(Mutex::new(tx.clone())));
    let live: Arc<dyn Firing> = Arc::new(Recorder(Mutex::new(tx)));
    scheduler.arm(1, Arc::downgrade(&dropped), timer(1, T0 + 30_000));
    scheduler.arm(2, Arc::downgrade(&live), timer(99, T0 + 60_000));
    drop(dropped);
    clock.set(T0 + 100_000);
    assert_eq!(received_until(&rx, 99), vec![99]);
}

#[test]
fn grid_skips_missed_ticks() {
    assert_eq!(next_on_grid(1_000_000, 100_000, 900_000), 1_000_000);
    assert_eq!(next_on_grid(1_000_000, 100_000, 1_000_000), 1_100_000);
    assert_eq!(next_on_grid(1_000_000, 100_000, 1_350_000), 1_400_000);
    assert_eq!(next_on_grid(0, 0, 0), INTERVAL_MICROS_MIN);
    assert_eq!(ScheduleAt::Interval { micros: 5_000 }.first_due(10), 5_010);
    assert_eq!(ScheduleAt::Time { micros: 42 }.first_due(10), 42);
}
