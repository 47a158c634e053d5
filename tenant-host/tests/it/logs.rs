//! `tenant_host::logs`: the per-database module log (ring, file, tail, follow).

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use orrery_module::{LogRecord, LOG_LEVEL_PANIC};
use tenant_host::logs::{
    FollowEvent, LogEntry, LogLevel, LogOptions, ModuleLog, LOG_FILE_NAME, ROTATED_LOG_FILE_NAME,
};

fn record(level: u8, message: &str) -> LogRecord {
    LogRecord {
        level,
        target: "chat".to_owned(),
        filename: "src/lib.rs".to_owned(),
        line: 42,
        message: message.to_owned(),
        function: "send_message".to_owned(),
        timestamp_micros: 1_700_000_000_000_000,
    }
}

fn info(message: &str) -> LogRecord {
    record(2, message)
}

fn messages(entries: &[LogEntry]) -> Vec<String> {
    entries.iter().map(|e| e.message.clone()).collect()
}

fn options() -> LogOptions {
    LogOptions {
        ring_records: 100,
        ..LogOptions::default()
    }
}

fn recv_entry(follow: &mut tenant_host::logs::Follow) -> LogEntry {
    match follow.recv_timeout(Duration::from_secs(5)) {
        Ok(FollowEvent::Entry(entry)) => entry,
        other => panic!("expected an entry, got {other:?}"),
    }
}

#[test]
fn ring_keeps_only_the_newest_records() {
    let log = ModuleLog::in_memory(LogOptions {
        ring_records: 5,
        ..LogOptions::default()
    });
    for i in 0..12 {
        log.append(&[info(&format!("m{i}"))]);
    }
    let tail = log.tail(100);
    assert_eq!(messages(&tail), ["m7", "m8", "m9", "m10", "m11"]);
    assert_eq!(
        tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [7, 8, 9, 10, 11]
    );
    assert_eq!(log.next_seq(), 12);
}

#[test]
fn ring_byte_cap_evicts_old_records_but_keeps_the_newest() {
    let log = ModuleLog::in_memory(LogOptions {
        ring_records: 1000,
        ring_bytes: 10_000,
        ..LogOptions::default()
    });
    let big = "x".repeat(3000);
    for _ in 0..10 {
        log.append(&[info(&big)]);
    }
    let tail = log.tail(1000);
    assert!(tail.len() <= 3, "{} records kept", tail.len());
    assert_eq!(tail.last().map(|e| e.seq), Some(9));
    // A single record larger than the cap is still kept.
    log.append(&[info(&"y".repeat(20_000))]);
    assert_eq!(log.tail(1000).len(), 1);
}

#[test]
fn tail_returns_the_newest_records_oldest_first() {
    let log = ModuleLog::in_memory(options());
    assert!(log.tail(10).is_empty());
    log.append(&[info("a"), info("b"), info("c")]);
    log.append(&[record(0, "d")]);
    assert_eq!(messages(&log.tail(2)), ["c", "d"]);
    assert_eq!(messages(&log.tail(10)), ["a", "b", "c", "d"]);
    assert!(log.tail(0).is_empty());
    let d = &log.tail(1)[0];
    assert_eq!(d.level, LogLevel::Error);
    assert_eq!(
        (d.target.as_str(), d.file.as_str(), d.line),
        ("chat", "src/lib.rs", 42)
    );
    assert_eq!(d.function, "send_message");
    assert_eq!(d.ts, 1_700_000_000_000_000);
}

#[test]
fn follow_gets_the_tail_then_new_records_in_order() {
    let log = Arc::new(ModuleLog::in_memory(options()));
    log.append(&[info("old0"), info("old1"), info("old2")]);
    let mut follow = log.follow(2);
    assert_eq!(recv_entry(&mut follow).message, "old1");
    assert_eq!(recv_entry(&mut follow).message, "old2");
    // Nothing else is queued: a zero timeout answers at once.
    assert_eq!(
        follow.recv_timeout(Duration::ZERO),
        Err(RecvTimeoutError::Timeout)
    );

    let writer = {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            for i in 0..50 {
                log.append(&[info(&format!("new{i}"))]);
            }
        })
    };
    for i in 0..50 {
        let entry = recv_entry(&mut follow);
        assert_eq!(entry.message, format!("new{i}"));
        assert_eq!(entry.seq, 3 + i);
    }
    writer.join().unwrap();
    assert_eq!(follow.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn slow_follower_gets_a_skip_marker_and_never_blocks_the_writer() {
    let log = Arc::new(ModuleLog::in_memory(LogOptions {
        follow_buffer: 4,
        ..options()
    }));
    let mut follow = log.follow(0);
    let (done, finished) = mpsc::channel();
    {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            for i in 0..10_000 {
                log.append(&[info(&format!("m{i}"))]);
            }
            done.send(()).unwrap();
        });
    }
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the writer was blocked by a follower that never reads");

    let got: Vec<String> = (0..4).map(|_| recv_entry(&mut follow).message).collect();
    assert_eq!(got, ["m0", "m1", "m2", "m3"]);
    assert_eq!(follow.try_recv(), Ok(FollowEvent::Skipped(9_996)));
    assert_eq!(follow.try_recv(), Err(TryRecvError::Empty));

    // Once it has room again it receives new records after the marker.
    log.append(&[info("fresh")]);
    assert_eq!(recv_entry(&mut follow).message, "fresh");
}

#[test]
fn skip_marker_sits_between_queued_and_later_records() {
    let log = ModuleLog::in_memory(LogOptions {
        follow_buffer: 2,
        ..options()
    });
    let mut follow = log.follow(0);
    log.append(&[info("a"), info("b"), info("c"), info("d")]);
    assert_eq!(recv_entry(&mut follow).message, "a");
    log.append(&[info("e")]);
    assert_eq!(recv_entry(&mut follow).message, "b");
    assert_eq!(follow.try_recv(), Ok(FollowEvent::Skipped(2)));
    assert_eq!(recv_entry(&mut follow).message, "e");
}

#[test]
fn dropping_the_log_ends_follow_and_dropped_followers_are_forgotten() {
    let log = ModuleLog::in_memory(options());
    let gone = log.follow(0);
    let mut follow = log.follow(0);
    assert_eq!(log.followers(), 2);
    drop(gone);
    log.append(&[info("last")]);
    assert_eq!(log.followers(), 1);
    drop(log);
    assert_eq!(recv_entry(&mut follow).message, "last");
    assert_eq!(
        follow.recv_timeout(Duration::from_secs(1)),
        Err(RecvTimeoutError::Disconnected)
    );
}

/// Wakes the thread that polls, and records that it did.
struct Unpark {
    thread: thread::Thread,
    woken: std::sync::atomic::AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A minimal executor: polls `future` on this thread, parking between
/// polls. It polls again only when the future's waker was called, so a
/// future that forgets to wake fails here (after 10 s) instead of being
/// rescued by a timed re-poll.
fn block_on<F: Future>(future: F) -> F::Output {
    block_on_then(future, |_| {})
}

/// [`block_on`], calling `after_first_poll(pending)` once after the first
/// poll with whether it was pending.
fn block_on_then<F: Future>(future: F, after_first_poll: impl FnOnce(bool)) -> F::Output {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        woken: false.into(),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut after_first_poll = Some(after_first_poll);
    loop {
        let poll = future.as_mut().poll(&mut cx);
        if let Some(hook) = after_first_poll.take() {
            hook(poll.is_pending());
        }
        if let Poll::Ready(out) = poll {
            return out;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !unpark
            .woken
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            assert!(Instant::now() < deadline, "the future never woke its waker");
            thread::park_timeout(Duration::from_secs(1));
        }
    }
}

#[test]
fn follow_is_usable_from_async_code() {
    let log = Arc::new(ModuleLog::in_memory(options()));
    let mut follow = log.follow(0);
    // The first receive is pending before anything is appended (the append
    // starts only then), so the append must wake it.
    let mut writer = None;
    let first = block_on_then(follow.recv(), |pending| {
        assert!(pending, "nothing was appended yet");
        let log = Arc::clone(&log);
        writer = Some(thread::spawn(move || {
            log.append(&[info("async one"), info("async two")])
        }));
    });
    let second = block_on(follow.recv());
    writer.expect("started").join().unwrap();
    let text = |event: Option<FollowEvent>| match event {
        Some(FollowEvent::Entry(e)) => e.message,
        other => panic!("expected an entry, got {other:?}"),
    };
    assert_eq!(text(first), "async one");
    assert_eq!(text(second), "async two");
    drop(log);
    assert_eq!(block_on(follow.recv()), None);
}

#[test]
fn reopen_restores_the_tail_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = ModuleLog::open(dir.path(), options()).unwrap();
        log.append(&[info("before0"), info("before1")]);
        log.append(&[record(LOG_LEVEL_PANIC, "boom")]);
    }
    let log = ModuleLog::open(dir.path(), options()).unwrap();
    let tail = log.tail(10);
    assert_eq!(messages(&tail), ["before0", "before1", "boom"]);
    assert_eq!(tail[2].level, LogLevel::Panic);
    assert_eq!(tail[2].seq, 2);
    assert_eq!(tail[0].function, "send_message");
    log.append(&[info("after")]);
    assert_eq!(log.tail(1)[0].seq, 3);
    assert_eq!(log.io_errors(), 0);
    assert_eq!(log.skipped_lines(), 0);

    // The ring bound applies to what is read back too.
    drop(log);
    let small = ModuleLog::open(
        dir.path(),
        LogOptions {
            ring_records: 2,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(messages(&small.tail(10)), ["boom", "after"]);
}

#[test]
fn every_append_reaches_the_file_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = ModuleLog::open(dir.path(), options()).unwrap();
    log.append(&[info("one"), record(LOG_LEVEL_PANIC, "two")]);
    // Readable without dropping or flushing the log.
    let text = fs::read_to_string(dir.path().join(LOG_FILE_NAME)).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["message"], "one");
    assert_eq!(lines[0]["level"], "info");
    assert_eq!(lines[0]["file"], "src/lib.rs");
    assert_eq!(lines[0]["line"], 42);
    assert_eq!(lines[1]["level"], "panic");
    assert_eq!(lines[1]["seq"], 1);
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn rotation_keeps_the_files_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let max = 4096;
    let log = ModuleLog::open(
        dir.path(),
        LogOptions {
            max_file_bytes: max,
            ..options()
        },
    )
    .unwrap();
    for i in 0..2000 {
        log.append(&[info(&format!("record number {i}"))]);
        assert!(file_len(&dir.path().join(LOG_FILE_NAME)) <= max);
        assert!(file_len(&dir.path().join(ROTATED_LOG_FILE_NAME)) <= max);
    }
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(log.io_errors(), 0);

    // The newest records survive a restart across the rotation boundary.
    drop(log);
    let log = ModuleLog::open(
        dir.path(),
        LogOptions {
            max_file_bytes: max,
            ..options()
        },
    )
    .unwrap();
    let on_disk: usize = [LOG_FILE_NAME, ROTATED_LOG_FILE_NAME]
        .iter()
        .map(|name| {
            fs::read_to_string(dir.path().join(name))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    let tail = log.tail(100);
    assert_eq!(tail.len(), on_disk.min(100));
    assert!(on_disk > 30, "both files are read back: {on_disk} lines");
    assert_eq!(tail.last().unwrap().message, "record number 1999");
    assert!(tail.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[test]
fn oversized_message_is_truncated_with_a_marker() {
    let dir = tempfile::tempdir().unwrap();
    let log = ModuleLog::open(dir.path(), options()).unwrap();
    let limit = LogOptions::default().field_max_bytes;
    // Multi-byte characters: the cut must land on a character boundary.
    let huge = "é".repeat(limit);
    log.append(&[info(&huge), info("small")]);
    let tail = log.tail(2);
    let message = &tail[0].message;
    assert!(message.len() < limit + 64, "{} bytes kept", message.len());
    assert!(message.ends_with("[truncated]"));
    assert!(message.starts_with("éé"));
    assert_eq!(tail[1].message, "small");
    assert!(file_len(&dir.path().join(LOG_FILE_NAME)) < (limit + 1024) as u64);
}

#[test]
fn corrupt_lines_are_skipped_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = ModuleLog::open(dir.path(), options()).unwrap();
        log.append(&[info("good0")]);
    }
    let path = dir.path().join(LOG_FILE_NAME);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("this is not json\n{\"seq\": \"x\"}\n\n");
    fs::write(&path, &text).unwrap();
    {
        let log = ModuleLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.skipped_lines(), 2);
        log.append(&[info("good1")]);
    }
    // A torn last line (a crash mid-write) is skipped and later records still parse.
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":99,\"ts\":1,\"lev");
    fs::write(&path, &text).unwrap();
    {
        let log = ModuleLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.skipped_lines(), 3);
        log.append(&[info("good2")]);
    }
    let log = ModuleLog::open(dir.path(), options()).unwrap();
    assert_eq!(messages(&log.tail(10)), ["good0", "good1", "good2"]);
    assert_eq!(
        log.tail(10).iter().map(|e| e.seq).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[test]
fn io_error_is_counted_and_the_ring_keeps_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("db1");
    let log = ModuleLog::open(
        &logs,
        LogOptions {
            max_file_bytes: 200,
            ..options()
        },
    )
    .unwrap();
    log.append(&[info("written")]);
    // Rotation (rename) and reopening fail once the directory is gone.
    fs::remove_dir_all(&logs).unwrap();
    for i in 0..5 {
        log.append(&[info(&format!("after the directory went {i:0>200}"))]);
    }
    assert!(log.io_errors() >= 1);
    assert_eq!(log.tail(10).len(), 6);
    assert!(log.tail(1)[0]
        .message
        .starts_with("after the directory went"));
}

#[test]
fn host_messages_and_panics_are_recorded() {
    let log = ModuleLog::in_memory(options());
    log.append_host(
        LogLevel::Error,
        "transfer",
        "reducer transfer failed: no funds",
    );
    log.append(&[record(LOG_LEVEL_PANIC, "index out of bounds")]);
    let tail = log.tail(2);
    assert_eq!(tail[0].level, LogLevel::Error);
    assert_eq!(tail[0].function, "transfer");
    assert_eq!(tail[0].message, "reducer transfer failed: no funds");
    assert!(tail[0].ts > 1_600_000_000_000_000);
    assert_eq!(tail[1].level, LogLevel::Panic);
    assert_eq!(tail[1].level.as_str(), "panic");
    assert_eq!(LogLevel::from_abi(4), LogLevel::Trace);
}

#[test]
fn concurrent_appends_keep_each_batch_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        ring_records: 100_000,
        follow_buffer: 4096,
        ..options()
    };
    let log = Arc::new(ModuleLog::open(dir.path(), opts.clone()).unwrap());
    let mut follow = log.follow(0);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for b in 0..100 {
                    let batch: Vec<LogRecord> =
                        (0..5).map(|i| info(&format!("{t}/{b}/{i}"))).collect();
                    log.append(&batch);
                }
            })
        })
        .collect();
    let started = Instant::now();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(60));

    let check = |entries: &[LogEntry]| {
        assert_eq!(entries.len(), 2000);
        assert!(entries.iter().enumerate().all(|(i, e)| e.seq == i as u64));
        let mut next_batch: HashMap<String, usize> = HashMap::new();
        for chunk in entries.chunks(5) {
            let parts: Vec<Vec<&str>> = chunk
                .iter()
                .map(|e| e.message.split('/').collect())
                .collect();
            let (t, b) = (parts[0][0], parts[0][1]);
            for (i, p) in parts.iter().enumerate() {
                assert_eq!((p[0], p[1], p[2]), (t, b, i.to_string().as_str()));
            }
            let expected = next_batch.entry(t.to_owned()).or_default();
            assert_eq!(b, expected.to_string(), "batches of one thread in order");
            *expected += 1;
        }
    };
    check(&log.tail(usize::MAX));
    let followed: Vec<LogEntry> = (0..2000).map(|_| recv_entry(&mut follow)).collect();
    check(&followed);
    drop(follow);
    drop(log);
    let reopened = ModuleLog::open(dir.path(), opts).unwrap();
    check(&reopened.tail(usize::MAX));
}
