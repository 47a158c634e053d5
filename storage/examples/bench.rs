//! One-shot throughput runner for the storage engine, with SQLite as a reference.
//!
//! Measures inserts, primary-key lookups and secondary-index range scans on an
//! in-memory table, durable small transactions through the commit log (group
//! commit, fsync, 8 submitter threads), recovery by log replay and from a
//! snapshot, snapshot write speed, the fsync latency of the disk, and the same
//! workloads on SQLite (rusqlite, bundled, WAL, `synchronous=FULL`) in this
//! process. Prints one JSON object with `--json`, a readable table otherwise.
//!
//! Run: `cargo run --release -p storage --example bench -- --json [--rows N]`.
//! BENCHMARKS.md at the repository root records the results and the goals.

#[path = "common/workload.rs"]
mod workload;

use workload::{bench_row, mix, table_def};

use std::collections::VecDeque;
use std::io::Write;
use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use spacetimedb_sats::AlgebraicValue;
use storage::{Database, DbOptions, DbStorage, IndexId, IndexRange, TableId};

const TX_ROWS: u64 = 1_000;
const RECOVERY_TX_ROWS: u64 = 10_000;
const RANGE_WIDTH: u64 = 1_000;
const SUBMITTERS: u64 = 8;
const WINDOW: usize = 64;
const SQLITE_CACHE_MB: i64 = 512;

struct Config {
    json: bool,
    rows: u64,
    lookups: u64,
    range_scans: u64,
    durable_tx: u64,
    durable_tx_wait_each: u64,
    sqlite_durable_tx: u64,
}

impl Config {
    fn from_args() -> Config {
        let mut json = false;
        let mut rows = 1_000_000u64;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => json = true,
                "--rows" => {
                    rows = args
                        .next()
                        .and_then(|n| n.replace('_', "").parse().ok())
                        .unwrap_or_else(|| usage())
                }
                _ => usage(),
            }
        }
        let rows = rows.max(10 * RANGE_WIDTH);
        let scaled =
            |full: u64, min: u64| (full * rows / 1_000_000).max(min) / SUBMITTERS * SUBMITTERS;
        Config {
            json,
            rows,
            lookups: scaled(2_000_000, 10_000),
            range_scans: scaled(2_000, 100),
            durable_tx: scaled(200_000, 8_000),
            durable_tx_wait_each: scaled(20_000, 800),
            sqlite_durable_tx: scaled(2_000, 400),
        }
    }
}

fn usage() -> ! {
    say(Stream::Err, "usage: bench [--json] [--rows N]");
    std::process::exit(2)
}

enum Stream {
    Out,
    Err,
}

/// All output: results to stdout, progress and usage to stderr. Written with
/// `writeln!` because the workspace lints reject the print macros.
fn say(stream: Stream, line: &str) {
    let result = match stream {
        Stream::Out => writeln!(std::io::stdout().lock(), "{line}"),
        Stream::Err => writeln!(std::io::stderr().lock(), "{line}"),
    };
    result.expect("write to stdout or stderr");
}

/// Ordered results: printed as a table in this order, or as one JSON object.
#[derive(Default)]
struct Report(Vec<(&'static str, Value)>);

impl Report {
    fn put(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = value.into();
        say(Stream::Err, &format!("  {key} = {value}"));
        self.0.push((key, value));
    }

    fn get(&self, key: &str) -> f64 {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_f64())
            .unwrap_or(f64::NAN)
    }

    fn ratio(&mut self, key: &'static str, ours: &str, theirs: &str) {
        self.put(key, round(self.get(ours) / self.get(theirs), 2));
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn per_s(count: u64, elapsed: Duration) -> f64 {
    round(count as f64 / elapsed.as_secs_f64(), 0)
}

/// splitmix64: deterministic pseudo-random keys without a dependency.
struct Handles {
    table: TableId,
    pk: IndexId,
    grp: IndexId,
}

fn create_table(db: &Database) -> Handles {
    let mut tx = db.begin().expect("begin");
    let table = tx.create_table(table_def()).expect("create table");
    let pk = tx
        .index_id_from_name("bench_id_idx_btree")
        .expect("pk index");
    let grp = tx
        .index_id_from_name("bench_grp_idx_btree")
        .expect("grp index");
    tx.commit().expect("commit");
    Handles { table, pk, grp }
}

/// Inserts ids `1..=rows` in transactions of `tx_rows`; returns the time taken.
fn fill(db: &Database, table: TableId, rows: u64, tx_rows: u64) -> Duration {
    let start = Instant::now();
    let mut id = 1;
    while id <= rows {
        let mut tx = db.begin().expect("begin");
        for _ in 0..tx_rows.min(rows - id + 1) {
            tx.insert_row(table, bench_row(id, rows)).expect("insert");
            id += 1;
        }
        tx.commit().expect("commit");
    }
    start.elapsed()
}

fn in_memory(config: &Config, report: &mut Report) {
    let db = Database::in_memory(DbOptions::default());
    let h = create_table(&db);
    let elapsed = fill(&db, h.table, config.rows, TX_ROWS);
    report.put("inserts_per_s", per_s(config.rows, elapsed));

    let read = db.read().expect("read");
    let start = Instant::now();
    let mut found = 0u64;
    for i in 0..config.lookups {
        let key = AlgebraicValue::U64(1 + mix(i ^ 0xabcd) % config.rows);
        found += read.find_unique(h.pk, &key).expect("point").is_some() as u64;
    }
    let elapsed = start.elapsed();
    assert_eq!(found, config.lookups, "every looked-up id exists");
    report.put("pk_lookups_per_s", per_s(found, elapsed));

    let start = Instant::now();
    let mut rows = 0u64;
    let mut checksum = 0u64;
    for i in 0..config.range_scans {
        let low = mix(i ^ 0x5eed) % (config.rows - RANGE_WIDTH);
        let range = IndexRange {
            prefix: vec![],
            start: Bound::Included(AlgebraicValue::U64(low)),
            end: Bound::Excluded(AlgebraicValue::U64(low + RANGE_WIDTH)),
        };
        for row in read.index_range(h.grp, &range).expect("range") {
            rows += 1;
            if let AlgebraicValue::U64(v) = row[2] {
                checksum = checksum.wrapping_add(v);
            }
        }
    }
    let elapsed = start.elapsed();
    std::hint::black_box(checksum);
    report.put("range_scan_rows_per_s", per_s(rows, elapsed));
    report.put(
        "range_scan_avg_rows",
        round(rows as f64 / config.range_scans as f64, 1),
    );
    drop(read);
    let start = Instant::now();
    drop(db);
    report.put("drop_db_s", round(start.elapsed().as_secs_f64(), 3));
}

/// `SUBMITTERS` threads each commit `count / SUBMITTERS` one-row transactions,
/// keeping up to `window` commits not yet known durable.
fn durable_run(count: u64, window: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _) = Database::open(
        DbStorage::dir(dir.path()).expect("storage"),
        DbOptions::default(),
    )
    .expect("open");
    let h = create_table(&db);
    db.flush().expect("flush");
    let per_thread = count / SUBMITTERS;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..SUBMITTERS {
            let db = db.clone();
            let table = h.table;
            scope.spawn(move || {
                let mut in_flight = VecDeque::with_capacity(window);
                for i in 0..per_thread {
                    let id = 1 + t * per_thread + i;
                    let mut tx = db.begin().expect("begin");
                    tx.insert_row(table, bench_row(id, count)).expect("insert");
                    let offset = tx
                        .commit()
                        .expect("commit")
                        .offset
                        .expect("a write gets an offset");
                    in_flight.push_back(offset);
                    if in_flight.len() >= window {
                        let oldest = in_flight.pop_front().expect("window is full");
                        db.wait_durable(oldest).expect("durable");
                        let durable = db.durable_offset();
                        while in_flight.front().is_some_and(|o| Some(*o) <= durable) {
                            in_flight.pop_front();
                        }
                    }
                }
                if let Some(last) = in_flight.back() {
                    db.wait_durable(*last).expect("durable");
                }
            });
        }
    });
    per_s(per_thread * SUBMITTERS, start.elapsed())
}

fn durable(config: &Config, report: &mut Report) {
    report.put("durable_tx", config.durable_tx);
    report.put("durable_window", WINDOW as u64);
    report.put("durable_tx_per_s", durable_run(config.durable_tx, WINDOW));
    report.put("durable_tx_wait_each", config.durable_tx_wait_each);
    report.put(
        "durable_tx_per_s_wait_each",
        durable_run(config.durable_tx_wait_each, 1),
    );
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn recovery(config: &Config, report: &mut Report) {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Database::open(
            DbStorage::dir(dir.path()).expect("storage"),
            DbOptions::default(),
        )
        .expect("open")
    };
    {
        let (db, _) = open();
        let h = create_table(&db);
        let elapsed = fill(&db, h.table, config.rows, RECOVERY_TX_ROWS);
        db.flush().expect("flush");
        report.put("log_fill_tx_rows", RECOVERY_TX_ROWS);
        report.put("log_fill_rows_per_s", per_s(config.rows, elapsed));
    }
    report.put(
        "log_mb",
        round(dir_size(&dir.path().join("log")) as f64 / 1e6, 1),
    );

    let start = Instant::now();
    let (db, recovered) = open();
    let elapsed = start.elapsed();
    assert_eq!(recovered.snapshot_offset, None, "replay only");
    report.put("recovery_records_replayed", recovered.records_replayed);
    report.put("recovery_s", round(elapsed.as_secs_f64(), 3));
    report.put("recovery_rows_per_s", per_s(config.rows, elapsed));

    let start = Instant::now();
    let written = db
        .take_snapshot()
        .expect("snapshot")
        .expect("something was committed");
    let elapsed = start.elapsed();
    report.put("snapshot_bytes", written.bytes_written);
    report.put("snapshot_s", round(elapsed.as_secs_f64(), 3));
    report.put(
        "snapshot_mb_per_s",
        round(
            written.bytes_written as f64 / 1e6 / elapsed.as_secs_f64(),
            1,
        ),
    );
    drop(db);

    let start = Instant::now();
    let (db, recovered) = open();
    let elapsed = start.elapsed();
    assert_eq!(
        recovered.rows_from_snapshot, config.rows,
        "recovered from the snapshot"
    );
    report.put("recovery_from_snapshot_s", round(elapsed.as_secs_f64(), 3));
    report.put(
        "recovery_from_snapshot_rows_per_s",
        per_s(recovered.rows_from_snapshot, elapsed),
    );
    drop(db);
}

fn sqlite_open(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("sqlite open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("wal");
    assert_eq!(mode, "wal");
    conn.execute_batch(&format!(
        "PRAGMA synchronous=FULL; PRAGMA cache_size=-{};",
        SQLITE_CACHE_MB * 1024
    ))
    .expect("pragmas");
    conn.busy_timeout(Duration::from_secs(60))
        .expect("busy timeout");
    conn
}

fn sqlite_create(conn: &Connection) {
    conn.execute_batch(
        "CREATE TABLE bench (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, val INTEGER NOT NULL);
         CREATE INDEX bench_grp ON bench (grp);",
    )
    .expect("create");
}

fn sqlite_insert(conn: &Connection, id: u64, rows: u64) {
    let mut stmt = conn
        .prepare_cached("INSERT INTO bench (id, grp, val) VALUES (?1, ?2, ?3)")
        .expect("prepare");
    stmt.execute(params![
        id as i64,
        (mix(id) % rows) as i64,
        id.wrapping_mul(31) as i64
    ])
    .expect("insert");
}

fn sqlite(config: &Config, report: &mut Report) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = sqlite_open(&dir.path().join("bench.sqlite"));
    sqlite_create(&conn);
    report.put("sqlite_version", rusqlite::version());
    report.put("sqlite_cache_mb", SQLITE_CACHE_MB);

    let start = Instant::now();
    let mut id = 1;
    while id <= config.rows {
        let tx = conn.transaction().expect("begin");
        for _ in 0..TX_ROWS.min(config.rows - id + 1) {
            sqlite_insert(&tx, id, config.rows);
            id += 1;
        }
        tx.commit().expect("commit");
    }
    report.put("sqlite_inserts_per_s", per_s(config.rows, start.elapsed()));

    let start = Instant::now();
    let mut found = 0u64;
    {
        let mut stmt = conn
            .prepare("SELECT id, grp, val FROM bench WHERE id = ?1")
            .expect("prepare");
        for i in 0..config.lookups {
            let key = 1 + mix(i ^ 0xabcd) % config.rows;
            let row: Option<i64> = stmt
                .query_row([key as i64], |r| r.get(2))
                .optional()
                .expect("lookup");
            found += u64::from(row.is_some());
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(found, config.lookups);
    report.put("sqlite_pk_lookups_per_s", per_s(found, elapsed));

    let start = Instant::now();
    let mut rows = 0u64;
    {
        let mut stmt = conn
            .prepare("SELECT id, grp, val FROM bench WHERE grp >= ?1 AND grp < ?2")
            .expect("prepare");
        for i in 0..config.range_scans {
            let low = mix(i ^ 0x5eed) % (config.rows - RANGE_WIDTH);
            let mut result = stmt
                .query([low as i64, (low + RANGE_WIDTH) as i64])
                .expect("range");
            while let Some(row) = result.next().expect("row") {
                std::hint::black_box(row.get::<_, i64>(2).expect("val"));
                rows += 1;
            }
        }
    }
    report.put("sqlite_range_scan_rows_per_s", per_s(rows, start.elapsed()));
    drop(conn);

    // Durable small transactions: one autocommit INSERT is one transaction.
    let path = dir.path().join("durable.sqlite");
    sqlite_create(&sqlite_open(&path));
    let count = config.sqlite_durable_tx;
    let conn = sqlite_open(&path);
    let start = Instant::now();
    for id in 1..=count {
        sqlite_insert(&conn, id, count);
    }
    let single = per_s(count, start.elapsed());
    drop(conn);
    let per_thread = count / SUBMITTERS;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..SUBMITTERS {
            let path = &path;
            scope.spawn(move || {
                let conn = sqlite_open(path);
                for i in 0..per_thread {
                    sqlite_insert(&conn, count + 1 + t * per_thread + i, count);
                }
            });
        }
    });
    let threaded = per_s(per_thread * SUBMITTERS, start.elapsed());
    report.put("sqlite_durable_tx", count);
    report.put("sqlite_durable_tx_per_s_1_thread", single);
    report.put("sqlite_durable_tx_per_s_8_threads", threaded);
    report.put("sqlite_durable_tx_per_s", single.max(threaded));
    report.put(
        "sqlite_durable_best_of",
        if single >= threaded {
            "1 thread"
        } else {
            "8 threads"
        },
    );
}

/// Latency of appending 4 KiB to a file and `fdatasync`ing it, the commit
/// log's unit of work; returns (median, mean) in microseconds.
fn fsync_latency_us() -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = std::fs::File::create(dir.path().join("fsync")).expect("create");
    let block = vec![7u8; 4096];
    let mut samples: Vec<f64> = (0..200)
        .map(|_| {
            let start = Instant::now();
            file.write_all(&block).expect("write");
            file.sync_data().expect("fdatasync");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (round(samples[samples.len() / 2], 1), round(mean, 1))
}

fn main() {
    let config = Config::from_args();
    let mut report = Report::default();
    report.put(
        "cores",
        std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
    );
    let (median, mean) = fsync_latency_us();
    report.put("fsync_4k_append_us_median", median);
    report.put("fsync_4k_append_us_mean", mean);
    report.put("rows", config.rows);
    report.put("inserts_tx_rows", TX_ROWS);
    report.put("pk_lookups", config.lookups);
    report.put("range_scans", config.range_scans);
    report.put("range_scan_width", RANGE_WIDTH);
    report.put("durable_submitters", SUBMITTERS);

    in_memory(&config, &mut report);
    durable(&config, &mut report);
    recovery(&config, &mut report);
    sqlite(&config, &mut report);

    report.ratio("inserts_vs_sqlite", "inserts_per_s", "sqlite_inserts_per_s");
    report.ratio(
        "lookups_vs_sqlite",
        "pk_lookups_per_s",
        "sqlite_pk_lookups_per_s",
    );
    report.ratio(
        "range_scan_vs_sqlite",
        "range_scan_rows_per_s",
        "sqlite_range_scan_rows_per_s",
    );
    report.ratio(
        "durable_tx_vs_sqlite",
        "durable_tx_per_s",
        "sqlite_durable_tx_per_s",
    );
    report.ratio(
        "durable_tx_wait_each_vs_sqlite",
        "durable_tx_per_s_wait_each",
        "sqlite_durable_tx_per_s",
    );

    if config.json {
        let object: serde_json::Map<String, Value> = report
            .0
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        say(Stream::Out, &json!(object).to_string());
    } else {
        let width = report.0.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in &report.0 {
            say(Stream::Out, &format!("{key:<width$}  {value}"));
        }
    }
}
