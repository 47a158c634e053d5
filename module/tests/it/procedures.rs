// Protects procedure calls against the real abi-coverage module: no implicit
// transaction, the procedure's own transactions committed in order and
// reported, a trap inside a transaction leaving nothing behind, sleeping
// under the call's wall-clock cap, and outbound HTTP under the egress policy
// (loopback refused by default before any connection, allowed when the
// policy says so, response size and time caps).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_module::{
    CallOptions, CallerContext, HostedModule, HttpPolicy, ProcedureOutcome, ProcedureResult,
};
use spacetimedb_sats::AlgebraicValue as V;
use storage::Database;

use crate::harness::{assert_committed, caller, enc, hosted, options, rows, OWNER};

/// A loopback HTTP server for the tests: `/hello` answers a short body,
/// `/big` a 4096-byte body, `/slow` answers after two seconds, `/redirect`
/// redirects to `/hello`, `/missing` is a 404. Counts the connections it accepted.
struct TestServer {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl TestServer {
    fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        // Serves until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let (status, body) = match path.as_str() {
                        "/hello" => ("200 OK", b"hello from the test server".to_vec()),
                        "/big" => ("200 OK", vec![b'x'; 4096]),
                        "/redirect" => ("302 Found\r\nLocation: /hello", b"moved".to_vec()),
                        "/slow" => {
                            // sleep-ok: the behaviour under test, a server
                            // slower than the request's timeout.
                            std::thread::sleep(Duration::from_secs(2));
                            ("200 OK", b"finally".to_vec())
                        }
                        _ => ("404 Not Found", b"no such page".to_vec()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Test: yes\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                });
            }
        });
        TestServer { port, connections }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn with_http(http: HttpPolicy) -> CallOptions {
    CallOptions { http, ..options() }
}

fn private_allowed() -> HttpPolicy {
    HttpPolicy {
        allow_private: true,
        ..HttpPolicy::default()
    }
}

/// The caller with the host's current time (sleeps are relative to it).
fn now_caller() -> CallerContext {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    CallerContext {
        timestamp_micros: now,
        ..caller(OWNER)
    }
}

fn call(module: &HostedModule, db: &Database, name: &str, args: &[u8]) -> ProcedureResult {
    module.call_procedure(db, name, caller(OWNER), args)
}

/// The BSATN value a procedure returned.
fn returned(result: &ProcedureResult) -> &[u8] {
    match &result.outcome {
        ProcedureOutcome::Returned { value } => value,
        other => panic!(
            "the procedure did not return: {other:?}\nlogs: {:#?}",
            result.logs
        ),
    }
}

/// What `proc_http_get(uri)` returned: `"status <code> <body>"` or `"error <message>"`.
fn http_get(module: &HostedModule, db: &Database, uri: &str) -> String {
    let result = call(module, db, "proc_http_get", &enc(uri));
    spacetimedb_sats::bsatn::from_slice::<String>(returned(&result)).unwrap()
}

#[test]
fn default_policy_refuses_loopback_before_connecting() {
    let server = TestServer::start();
    let (module, db) = hosted("abi-coverage", options());
    let answer = http_get(
        &module,
        &db,
        &format!("{}?token=secret", server.url("/hello")),
    );
    assert!(answer.starts_with("error "), "{answer}");
    assert!(answer.contains("egress policy"), "{answer}");
    assert!(
        !answer.contains("secret"),
        "the query string leaked: {answer}"
    );
    let answer = http_get(
        &module,
        &db,
        &format!("http://localhost:{}/hello", server.port),
    );
    assert!(answer.contains("egress policy"), "{answer}");
    assert_eq!(server.connections(), 0, "the host connected to loopback");
}

#[test]
fn allowed_private_destinations_are_fetched() {
    let server = TestServer::start();
    let (module, db) = hosted("abi-coverage", with_http(private_allowed()));
    assert_eq!(
        http_get(&module, &db, &server.url("/hello")),
        "status 200 hello from the test server"
    );
    // Any status is a response, not an error.
    assert_eq!(
        http_get(&module, &db, &server.url("/missing")),
        "status 404 no such page"
    );
    // Redirects are handed to the module, not followed.
    assert_eq!(
        http_get(&module, &db, &server.url("/redirect")),
        "status 302 moved"
    );
    assert_eq!(server.connections(), 3);
}

#[test]
fn disabled_http_is_an_error() {
    let server = TestServer::start();
    let policy = HttpPolicy {
        enabled: false,
        ..private_allowed()
    };
    let (module, db) = hosted("abi-coverage", with_http(policy));
    let answer = http_get(&module, &db, &server.url("/hello"));
    assert!(answer.contains("disabled"), "{answer}");
    assert_eq!(server.connections(), 0);
}

#[test]
fn responses_over_the_size_cap_are_errors() {
    let server = TestServer::start();
    let policy = HttpPolicy {
        max_response_bytes: 1024,
        ..private_allowed()
    };
    let (module, db) = hosted("abi-coverage", with_http(policy));
    let answer = http_get(&module, &db, &server.url("/big"));
    assert!(answer.starts_with("error "), "{answer}");
    assert!(
        answer.contains("exceeds the limit of 1024 bytes"),
        "{answer}"
    );
    // A body within the cap still arrives whole.
    assert_eq!(
        http_get(&module, &db, &server.url("/hello")),
        "status 200 hello from the test server"
    );
}

#[test]
fn slow_servers_time_out() {
    let server = TestServer::start();
    let policy = HttpPolicy {
        timeout: Duration::from_millis(300),
        ..private_allowed()
    };
    let (module, db) = hosted("abi-coverage", with_http(policy));
    let started = Instant::now();
    let answer = http_get(&module, &db, &server.url("/slow"));
    assert!(answer.starts_with("error "), "{answer}");
    assert!(answer.to_lowercase().contains("timed out"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "the request took {:?}",
        started.elapsed()
    );
}

#[test]
fn with_tx_commits_each_transaction_and_reports_it() {
    let (module, db) = hosted("abi-coverage", options());
    let result = call(&module, &db, "proc_with_tx", &enc(&5u64));
    assert_eq!(returned(&result), enc(&5u64));
    // Count, insert, (aborted try_with_tx), count, stray check.
    assert_eq!(result.commits.len(), 4, "{:#?}", result.commits);
    let writing: Vec<_> = result.commits.iter().filter(|d| !d.is_empty()).collect();
    assert_eq!(writing.len(), 1);
    assert_eq!(writing[0].tables.len(), 1);
    assert_eq!(writing[0].tables[0].inserts.len(), 5);
    assert!(writing[0].tables[0].deletes.is_empty());
    let values: Vec<V> = rows(&db, "proc_row")
        .into_iter()
        .map(|row| row[1].clone())
        .collect();
    assert_eq!(values, (0..5u64).map(V::U64).collect::<Vec<_>>());
    // A second call sees the first one's rows.
    let again = call(&module, &db, "proc_with_tx", &enc(&2u64));
    assert_eq!(returned(&again), enc(&7u64));
}

#[test]
fn a_trap_inside_a_transaction_leaves_nothing() {
    let (module, db) = hosted("abi-coverage", options());
    let result = call(&module, &db, "proc_panic_in_tx", &enc(&3u64));
    match &result.outcome {
        ProcedureOutcome::Trapped { message } => {
            assert!(message.contains("proc_panic_in_tx panics"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(result.commits.is_empty());
    assert!(rows(&db, "proc_row").is_empty());
    // The write lock was released: reducers and procedures still run.
    let added = module.call_reducer(&db, "add_note", caller(OWNER), &enc("after"));
    assert_committed(&added, "add_note after a trapped procedure");
    let result = call(&module, &db, "proc_with_tx", &enc(&1u64));
    assert_eq!(returned(&result), enc(&1u64));
}

#[test]
fn procedures_return_values_and_see_their_caller() {
    let (module, db) = hosted("abi-coverage", options());
    let result = call(&module, &db, "proc_identity", &[]);
    assert_eq!(returned(&result), OWNER.to_byte_array());
    assert!(result.fuel_used > 0);
    assert!(result.commits.is_empty());
}

#[test]
fn sleeping_blocks_until_the_wake_time() {
    let (module, db) = hosted("abi-coverage", options());
    let started = Instant::now();
    let result = module.call_procedure(&db, "proc_sleep", now_caller(), &enc(&200_000i64));
    let elapsed = started.elapsed();
    let value = returned(&result);
    // SleepResult { started: Timestamp, woke: Timestamp }: two i64 µs.
    let started_at = i64::from_le_bytes(value[..8].try_into().unwrap());
    let woke_at = i64::from_le_bytes(value[8..16].try_into().unwrap());
    assert!(woke_at - started_at >= 200_000, "{started_at} -> {woke_at}");
    // The wake time counts from the caller's timestamp, taken just before.
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
}

#[test]
fn a_sleep_past_the_procedure_deadline_times_out() {
    let (module, db) = hosted(
        "abi-coverage",
        CallOptions {
            procedure_deadline: Duration::from_millis(400),
            ..options()
        },
    );
    let started = Instant::now();
    let result = module.call_procedure(&db, "proc_sleep", now_caller(), &enc(&30_000_000i64));
    assert_eq!(result.outcome, ProcedureOutcome::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A fresh instance serves the next call.
    let result = call(&module, &db, "proc_identity", &[]);
    assert_eq!(returned(&result), OWNER.to_byte_array());
}

#[test]
fn bad_calls_are_refused_before_running() {
    let (module, db) = hosted("abi-coverage", options());
    assert!(matches!(
        call(&module, &db, "no_such_procedure", &[]).outcome,
        ProcedureOutcome::NoSuchProcedure { .. }
    ));
    assert!(matches!(
        call(&module, &db, "proc_with_tx", &[1, 2]).outcome,
        ProcedureOutcome::BadArguments { .. }
    ));
    // A reducer is not a procedure.
    assert!(matches!(
        call(&module, &db, "add_note", &enc("x")).outcome,
        ProcedureOutcome::NoSuchProcedure { .. }
    ));
}
