//! Module logs of one database: a bounded in-memory ring, an on-disk JSON
//! lines file, tails and live follow streams (module-abi §8.9).
//!
//! Owns: [`ModuleLog`] (sequence numbers, the ring bounded by record count and
//! bytes, truncation of oversized fields, `module.log` with one rotated
//! predecessor `module.log.1`, refilling the ring from disk on reopen) and
//! [`Follow`] (a bounded queue per follower that reports skipped records
//! instead of blocking the writer).
//! Does not own: producing records (`orrery_module::host` collects them per call),
//! deciding which database a log belongs to, who may read it, or any
//! per-tenant rate limit upstream of [`ModuleLog::append`].
//!
//! Locking: `state` (ring, sequence, followers) is taken before `file`; an
//! append assigns sequence numbers, fills the ring and feeds followers under
//! `state`, takes `file`, then releases `state` before touching the disk, so
//! readers never wait for disk and batches reach the file in sequence order.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::future::poll_fn;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use orrery_api::limits;
use orrery_module::{LogRecord, LOG_LEVEL_PANIC};

/// The name of the current log file inside a database's log directory.
pub const LOG_FILE_NAME: &str = "module.log";
/// The name of the rotated (previous) log file.
pub const ROTATED_LOG_FILE_NAME: &str = "module.log.1";

/// Appended to a field cut at [`LogOptions::field_max_bytes`].
const TRUNCATION_MARKER: &str = "… [truncated]";

/// Bytes counted per ring entry on top of its strings.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// Bounds of one database's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// The ring keeps at most this many records (at least 1 is kept).
    pub ring_records: usize,
    /// The ring keeps at most about this many bytes (strings + a fixed
    /// overhead per record); the newest record is always kept.
    pub ring_bytes: usize,
    /// Message, target, file name and function longer than this are cut (at a
    /// character boundary) and end with a truncation marker.
    pub field_max_bytes: usize,
    /// `module.log` is rotated to `module.log.1` before a batch would make it
    /// larger than this.
    pub max_file_bytes: u64,
    /// Records a follower may have queued before later ones are skipped.
    pub follow_buffer: usize,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            ring_records: limits::MODULE_LOG_RING_ENTRIES_MAX,
            ring_bytes: limits::MODULE_LOG_RING_BYTES_MAX,
            field_max_bytes: limits::MODULE_LOG_FIELD_BYTES_MAX,
            max_file_bytes: limits::MODULE_LOG_FILE_BYTES_MAX,
            follow_buffer: limits::MODULE_LOG_FOLLOW_ENTRIES_MAX,
        }
    }
}

/// The level of a log entry, written as a lowercase word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
    Panic,
}

impl LogLevel {
    /// The level for the bindings' encoding (0 error … 4 trace, 101 panic);
    /// an unknown code is recorded as `Info`.
    pub fn from_abi(level: u8) -> LogLevel {
        match level {
            0 => LogLevel::Error,
            1 => LogLevel::Warn,
            2 => LogLevel::Info,
            3 => LogLevel::Debug,
            4 => LogLevel::Trace,
            LOG_LEVEL_PANIC => LogLevel::Panic,
            _ => LogLevel::Info,
        }
    }

    /// The lowercase name (`"panic"` for a module panic).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
            LogLevel::Panic => "panic",
        }
    }
}

/// One stored log record; also the shape of a line of `module.log`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Strictly increasing within a database, across restarts.
    pub seq: u64,
    /// Host wall clock when the record was written, µs since the Unix epoch.
    pub ts: i64,
    pub level: LogLevel,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub line: u32,
    /// The reducer running when the record was written; empty outside calls
    /// and for most host records.
    #[serde(default)]
    pub function: String,
    pub message: String,
}

impl LogEntry {
    fn ring_bytes(&self) -> usize {
        ENTRY_OVERHEAD_BYTES
            + self.target.len()
            + self.file.len()
            + self.function.len()
            + self.message.len()
    }
}

/// What a follower receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowEvent {
    Entry(LogEntry),
    /// This many records were written while the follower's queue was full;
    /// the next entry comes after them.
    Skipped(u64),
}

/// The log of one database. `Send + Sync`; share it behind an `Arc`.
pub struct ModuleLog {
    options: LogOptions,
    state: Mutex<State>,
    /// `None` for an in-memory log.
    file: Option<Mutex<LogFile>>,
    io_errors: AtomicU64,
    skipped_lines: u64,
}

struct State {
    ring: VecDeque<LogEntry>,
    ring_bytes: usize,
    next_seq: u64,
    followers: Vec<Arc<FollowShared>>,
}

impl ModuleLog {
    /// Opens (creating `dir` if needed) the log kept in `dir/module.log`, and
    /// refills the ring from the newest records of `module.log.1` and
    /// `module.log`; lines that do not parse are skipped.
    pub fn open(dir: &Path, options: LogOptions) -> io::Result<ModuleLog> {
        fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE_NAME);
        let rotated = dir.join(ROTATED_LOG_FILE_NAME);
        let mut state = State::new();
        let mut skipped_lines = 0;
        for file in [&rotated, &path] {
            skipped_lines += read_into_ring(file, &options, &mut state)?;
        }
        let file = LogFile::open(path, rotated)?;
        let mut log = ModuleLog::with_state(options, state);
        log.file = Some(Mutex::new(file));
        log.skipped_lines = skipped_lines;
        Ok(log)
    }

    /// A log with only the ring (nothing on disk).
    pub fn in_memory(options: LogOptions) -> ModuleLog {
        ModuleLog::with_state(options, State::new())
    }

    fn with_state(options: LogOptions, state: State) -> ModuleLog {
        ModuleLog {
            options,
            state: Mutex::new(state),
            file: None,
            io_errors: AtomicU64::new(0),
            skipped_lines: 0,
        }
    }

    /// Appends one call's records as a contiguous batch (no other append's
    /// records come between them). Disk errors are counted
    /// ([`ModuleLog::io_errors`]), never returned: the ring keeps the records.
    pub fn append(&self, records: &[LogRecord]) {
        if records.is_empty() {
            return;
        }
        let max = self.options.field_max_bytes;
        let mut state = lock(&self.state);
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            let entry = LogEntry {
                seq: state.next_seq,
                ts: record.timestamp_micros,
                level: LogLevel::from_abi(record.level),
                target: truncated(&record.target, max),
                file: truncated(&record.filename, max),
                line: record.line,
                function: truncated(&record.function, max),
                message: truncated(&record.message, max),
            };
            state.next_seq += 1;
            state.push(entry.clone(), &self.options);
            batch.push(entry);
        }
        state.feed_followers(&batch);
        let Some(file) = &self.file else {
            return;
        };
        let mut file = lock(file);
        drop(state);
        if let Err(_error) = file.write_batch(&batch, self.options.max_file_bytes) {
            self.io_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends a record written by the host (e.g. "reducer X failed: …").
    pub fn append_host(&self, level: LogLevel, function: &str, message: impl Into<String>) {
        let mut record = LogRecord::host(level_to_abi(level), message.into());
        record.function = function.to_owned();
        self.append(std::slice::from_ref(&record));
    }

    /// The newest `n` entries of the ring, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogEntry> {
        let state = lock(&self.state);
        let skip = state.ring.len().saturating_sub(n);
        state.ring.iter().skip(skip).cloned().collect()
    }

    /// A stream of the newest `from_tail` entries of the ring followed by every
    /// later entry, in sequence order.
    pub fn follow(&self, from_tail: usize) -> Follow {
        let mut state = lock(&self.state);
        let skip = state.ring.len().saturating_sub(from_tail);
        let queue: VecDeque<FollowEvent> = state
            .ring
            .iter()
            .skip(skip)
            .cloned()
            .map(FollowEvent::Entry)
            .collect();
        let capacity = self.options.follow_buffer.max(queue.len()).max(1);
        let shared = Arc::new(FollowShared {
            capacity,
            queue: Mutex::new(FollowQueue {
                entries: queue.len(),
                events: queue,
                skipped: 0,
                closed: false,
                detached: false,
                waker: None,
            }),
            ready: Condvar::new(),
        });
        state.followers.push(Arc::clone(&shared));
        Follow { shared }
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        lock(&self.state).next_seq
    }

    /// Disk writes that failed since this log was opened.
    pub fn io_errors(&self) -> u64 {
        self.io_errors.load(Ordering::Relaxed)
    }

    /// Lines of the on-disk log that did not parse when it was opened.
    pub fn skipped_lines(&self) -> u64 {
        self.skipped_lines
    }

    /// Live followers (dropped ones are forgotten at the next append).
    pub fn followers(&self) -> usize {
        let state = lock(&self.state);
        state
            .followers
            .iter()
            .filter(|f| !lock(&f.queue).detached)
            .count()
    }
}

impl Drop for ModuleLog {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for follower in state.followers.drain(..) {
            follower.close();
        }
    }
}

impl State {
    fn new() -> State {
        State {
            ring: VecDeque::new(),
            ring_bytes: 0,
            next_seq: 0,
            followers: Vec::new(),
        }
    }

    fn push(&mut self, entry: LogEntry, options: &LogOptions) {
        self.ring_bytes += entry.ring_bytes();
        self.ring.push_back(entry);
        while self.ring.len() > 1
            && (self.ring.len() > options.ring_records.max(1)
                || self.ring_bytes > options.ring_bytes)
        {
            if let Some(old) = self.ring.pop_front() {
                self.ring_bytes -= old.ring_bytes();
            }
        }
    }

    fn feed_followers(&mut self, batch: &[LogEntry]) {
        self.followers.retain(|follower| follower.offer(batch));
    }
}

fn level_to_abi(level: LogLevel) -> u8 {
    match level {
        LogLevel::Error => 0,
        LogLevel::Warn => 1,
        LogLevel::Info => 2,
        LogLevel::Debug => 3,
        LogLevel::Trace => 4,
        LogLevel::Panic => LOG_LEVEL_PANIC,
    }
}

/// `s`, or its longest prefix of at most `max` bytes ending on a character
/// boundary followed by [`TRUNCATION_MARKER`].
fn truncated(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + TRUNCATION_MARKER.len());
    out.push_str(&s[..end]);
    out.push_str(TRUNCATION_MARKER);
    out
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a log lock leaves consistent enough data: keep going.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads `path` (if it exists) line by line into the ring; returns how many
/// non-empty lines did not parse.
fn read_into_ring(path: &Path, options: &LogOptions, state: &mut State) -> io::Result<u64> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut skipped = 0;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_slice::<LogEntry>(text) {
            Ok(entry) if entry.seq >= state.next_seq => {
                state.next_seq = entry.seq + 1;
                state.push(entry, options);
            }
            _ => skipped += 1,
        }
    }
    Ok(skipped)
}

/// The open `module.log`. After a failed write the file is reopened at the
/// next batch.
struct LogFile {
    path: PathBuf,
    rotated: PathBuf,
    writer: Option<BufWriter<File>>,
    /// Bytes in `module.log` (as far as this process wrote or found them).
    len: u64,
}

impl LogFile {
    fn open(path: PathBuf, rotated: PathBuf) -> io::Result<LogFile> {
        let mut file = LogFile {
            path,
            rotated,
            writer: None,
            len: 0,
        };
        file.reopen()?;
        Ok(file)
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.writer = None;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)?;
        let len = file.metadata()?.len();
        // A crash can leave a partial last line: start on a fresh line.
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        self.len = file.metadata()?.len();
        self.writer = Some(BufWriter::new(file));
        Ok(())
    }

    fn write_batch(&mut self, batch: &[LogEntry], max_file_bytes: u64) -> io::Result<()> {
        let mut bytes = Vec::new();
        for entry in batch {
            serde_json::to_writer(&mut bytes, entry).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        if self.writer.is_none() {
            self.reopen()?;
        }
        if self.len > 0 && self.len + bytes.len() as u64 > max_file_bytes {
            self.rotate()?;
        }
        let result = self.write_and_flush(&bytes);
        if result.is_err() {
            self.writer = None;
        }
        result
    }

    fn write_and_flush(&mut self, bytes: &[u8]) -> io::Result<()> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("log file is not open"))?;
        writer.write_all(bytes)?;
        writer.flush()?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush()?;
        }
        fs::rename(&self.path, &self.rotated)?;
        self.reopen()
    }
}

/// A follower's side of the stream. Dropping it unregisters it.
pub struct Follow {
    shared: Arc<FollowShared>,
}

struct FollowShared {
    capacity: usize,
    queue: Mutex<FollowQueue>,
    ready: Condvar,
}

struct FollowQueue {
    events: VecDeque<FollowEvent>,
    /// `Entry` events in `events`.
    entries: usize,
    /// Records skipped since the last event queued.
    skipped: u64,
    /// The log was dropped: nothing more will come.
    closed: bool,
    /// The follower was dropped: stop feeding it.
    detached: bool,
    waker: Option<Waker>,
}

impl FollowShared {
    /// Queues `batch` (or counts it as skipped where the queue is full);
    /// `false` once the follower is gone. Never blocks on the follower.
    fn offer(&self, batch: &[LogEntry]) -> bool {
        let mut queue = lock(&self.queue);
        if queue.detached {
            return false;
        }
        for entry in batch {
            if queue.entries >= self.capacity {
                queue.skipped += 1;
                continue;
            }
            if queue.skipped > 0 {
                let skipped = std::mem::take(&mut queue.skipped);
                queue.events.push_back(FollowEvent::Skipped(skipped));
            }
            queue.events.push_back(FollowEvent::Entry(entry.clone()));
            queue.entries += 1;
        }
        let waker = queue.waker.take();
        drop(queue);
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    fn close(&self) {
        let mut queue = lock(&self.queue);
        queue.closed = true;
        let waker = queue.waker.take();
        drop(queue);
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl FollowQueue {
    fn pop(&mut self) -> Option<FollowEvent> {
        if let Some(event) = self.events.pop_front() {
            if matches!(event, FollowEvent::Entry(_)) {
                self.entries -= 1;
            }
            return Some(event);
        }
        if self.skipped > 0 {
            return Some(FollowEvent::Skipped(std::mem::take(&mut self.skipped)));
        }
        None
    }
}

impl Follow {
    /// The next event if one is ready; `Disconnected` once the log was
    /// dropped and everything queued was received.
    pub fn try_recv(&mut self) -> Result<FollowEvent, TryRecvError> {
        let mut queue = lock(&self.shared.queue);
        match queue.pop() {
            Some(event) => Ok(event),
            None if queue.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<FollowEvent, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        let mut queue = lock(&self.shared.queue);
        loop {
            if let Some(event) = queue.pop() {
                return Ok(event);
            }
            if queue.closed {
                return Err(RecvTimeoutError::Disconnected);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvTimeoutError::Timeout);
            }
            queue = self
                .shared
                .ready
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The next event, for async code (any executor); `None` once the log was
    /// dropped and everything queued was received.
    pub async fn recv(&mut self) -> Option<FollowEvent> {
        poll_fn(|cx| {
            let mut queue = lock(&self.shared.queue);
            if let Some(event) = queue.pop() {
                return Poll::Ready(Some(event));
            }
            if queue.closed {
                return Poll::Ready(None);
            }
            queue.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        lock(&self.shared.queue).detached = true;
    }
}
