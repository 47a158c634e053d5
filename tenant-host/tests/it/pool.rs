//! The worker pool and its lanes: order within a lane, isolation between
//! lanes, queue limits and panics (`tenant_host::hosting::pool`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::sync::mpsc;
use std::time::{Duration, Instant};
use tenant_host::hosting::pool::*;

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

/// Blocks the pool's single worker until the returned sender is used,
/// so jobs queued meanwhile all wait together.
fn gate(pool: &WorkerPool) -> mpsc::Sender<()> {
    let (open, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let lane = pool.lane(1);
    pool.submit(
        &lane,
        Box::new(move || {
            started_tx.send(()).unwrap();
            let _ = gate.recv_timeout(Duration::from_secs(20));
        }),
    )
    .unwrap();
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    open
}

// Protects the time slice: a lane whose jobs use up the turn's time
// lets a waiting lane go before its next job, long before the job count
// would end the turn.
#[test]
fn a_lane_yields_when_its_time_slice_is_used() {
    let pool = WorkerPool::with_policy(
        1,
        PoolPolicy {
            turn_time_max: Duration::ZERO,
            ..PoolPolicy::default()
        },
    );
    let open = gate(&pool);
    let busy = pool.lane(100);
    let other = pool.lane(100);
    let order = Arc::new(Mutex::new(Vec::new()));
    let (done, finished) = mpsc::channel();
    for (lane, name, jobs) in [(&busy, "busy", 10), (&other, "other", 1)] {
        for i in 0..jobs {
            let order = order.clone();
            let done = done.clone();
            pool.submit(
                lane,
                Box::new(move || {
                    order.lock().unwrap().push((name, i));
                    done.send(()).unwrap();
                }),
            )
            .unwrap();
        }
    }
    open.send(()).unwrap();
    for _ in 0..11 {
        finished.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    let order = order.lock().unwrap();
    assert_eq!(
        order[..3],
        [("busy", 0), ("other", 0), ("busy", 1)],
        "{order:?}"
    );
}

// Protects the workers kept for quick lanes: with two workers and two
// slow lanes each running a long job, a quick lane's job still runs
// (slow lanes hold at most one worker), and the second slow job waits.
#[test]
fn slow_lanes_leave_a_worker_for_quick_ones() {
    let pool = WorkerPool::with_policy(
        2,
        PoolPolicy {
            // Every job counts as slow: which lane is slow is then
            // decided by the test, not by a clock.
            slow_job_min: Duration::ZERO,
            ..PoolPolicy::default()
        },
    );
    let slow = [pool.lane(10), pool.lane(10)];
    let (done, finished) = mpsc::channel();
    for lane in &slow {
        let done = done.clone();
        pool.submit(lane, Box::new(move || done.send(()).unwrap()))
            .unwrap();
    }
    for _ in 0..2 {
        finished.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    // A lane is marked slow when its job returns, just after the job
    // sent its message: wait for the mark rather than race it.
    let marked_by = Instant::now() + Duration::from_secs(10);
    while !slow.iter().all(|lane| lane.is_slow()) {
        assert!(
            Instant::now() < marked_by,
            "the lanes were never marked slow"
        );
        std::thread::yield_now();
    }

    let started = Arc::new(AtomicU64::new(0));
    let (first_started, first) = mpsc::channel::<()>();
    let mut releases = Vec::new();
    for lane in &slow {
        let (release, held) = mpsc::channel::<()>();
        releases.push(release);
        let started = started.clone();
        let first_started = first_started.clone();
        let done = done.clone();
        pool.submit(
            lane,
            Box::new(move || {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = first_started.send(());
                let _ = held.recv_timeout(Duration::from_secs(20));
                done.send(()).unwrap();
            }),
        )
        .unwrap();
    }
    first.recv_timeout(Duration::from_secs(10)).unwrap();
    let quick = pool.lane(10);
    let (quick_done, quick_finished) = mpsc::channel();
    pool.submit(&quick, Box::new(move || quick_done.send(()).unwrap()))
        .unwrap();
    let served = quick_finished.recv_timeout(Duration::from_secs(10));
    let slow_running = started.load(Ordering::SeqCst);
    for release in releases {
        release.send(()).unwrap();
    }
    for _ in 0..2 {
        finished.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    assert!(
        served.is_ok(),
        "the quick lane waited while slow lanes held every worker"
    );
    assert_eq!(slow_running, 1, "slow lanes held both workers");
}
