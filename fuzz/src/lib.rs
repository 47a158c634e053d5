//! Shared by the fuzz targets of `fuzz_targets/`: a host with a real test
//! module, a fresh database per input, and the body of each target, so every
//! target file is one line of glue and a crash replays from its input alone.
//!
//! Owns: the fixtures (a [`Host`] and the bytes of a `tests/modules` module,
//! built with the test suite's own builder), the small call budgets that keep
//! one input short, and what each target checks beyond "does not panic".
//! Does not own: the code under test (edge, hosting, query, module,
//! moduledef, wire) or the regression tests made from crashes (they live in
//! the normal test suite, docs/fuzzing.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use orrery_edge::ws::{Dispatcher, Session};
use orrery_module::{CallOptions, HttpPolicy, Runtime, RuntimeConfig};
use orrery_query::sql::{check, parse, Mode};
use orrery_wire::framing::decode_client_payload;
use orrery_wire::negotiate::Negotiated;
use orrery_wire::{Compression, Protocol, ServerMessage};
use spacetimedb_lib::{ConnectionId, Identity};
use storage::{Database, DbOptions};
use tenant_host::clients::{Outbox, OUTBOX_BYTES_MAX, OUTBOX_MESSAGES_MAX};
use tenant_host::hosting::{DatabaseSpec, Host, HostConfig, HostedDatabase};

#[path = "../../tests/support/modules.rs"]
mod modules;

/// The publisher of every fuzzed database.
pub const OWNER: Identity = Identity::from_byte_array([0x11; 32]);
/// Anyone else.
pub const STRANGER: Identity = Identity::from_byte_array([0x5e; 32]);
/// The connection every fuzzed session uses (non-zero, as the edge requires).
pub const CONNECTION: ConnectionId = ConnectionId::from_le_byte_array([0xc0; 16]);

/// Requests one session may have in flight (the edge's default is larger;
/// one input holds far fewer messages than this anyway).
const IN_FLIGHT_MAX: usize = 1024;

/// Messages of one input that are dispatched; an input with more is
/// skipped, so that one input stays short (each call may take 2 s).
const MESSAGES_MAX: usize = 8;

/// How long the requests of one input may take to be answered: calls are
/// bounded by [`call_options`] (2 s each, at most [`MESSAGES_MAX`] per
/// input); past this, a request was lost. Below `scripts/fuzz`'s
/// `-timeout=60`, so a lost request is reported as such.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// Budgets that keep one input short: a spinning reducer stops after 2 s,
/// a sleeping procedure after 2 s, and procedures make no HTTP requests.
pub fn call_options() -> CallOptions {
    CallOptions {
        fuel_per_call: 200_000_000,
        deadline_per_call: Duration::from_secs(2),
        procedure_deadline: Duration::from_secs(2),
        http: HttpPolicy {
            enabled: false,
            ..HttpPolicy::default()
        },
        database_identity: Identity::from_byte_array([0xdb; 32]),
        ..CallOptions::default()
    }
}

/// A runtime sized for one fuzzing process: the production engine settings,
/// a small instance pool and a small compile cache (every distinct input
/// of `module_wasm` is a new module; the cache must not grow the process).
pub fn runtime() -> Runtime {
    Runtime::with_config(RuntimeConfig {
        pooled_instances: 64,
        module_cache_bytes: 64 * 1024 * 1024,
        ..RuntimeConfig::default()
    })
    .expect("the wasm engine starts")
}

/// A host serving test module `module` (a member of `tests/modules`).
pub struct Fixture {
    host: Host,
    wasm: Vec<u8>,
}

impl Fixture {
    /// Builds the module (once per process, as the test suite does) and
    /// starts a host with one worker.
    pub fn new(module: &str) -> Fixture {
        Fixture {
            host: Host::new(
                runtime(),
                HostConfig {
                    workers: 1,
                    lane_queued_max: 4096,
                    ..HostConfig::default()
                },
            ),
            wasm: modules::module_bytes(module),
        }
    }

    /// A new in-memory database of the module, created by [`OWNER`].
    pub fn database(&self) -> HostedDatabase {
        self.host
            .create_database(
                DatabaseSpec::new("fuzzed", OWNER, call_options()),
                Database::in_memory(DbOptions::default()),
                &self.wasm,
            )
            .unwrap_or_else(|e| panic!("the test module cannot be published: {e}"))
    }
}

/// `ws_dispatch`: one WebSocket payload through the session's own path
/// (`orrery_edge::ws::Dispatcher`: framing, decoding, name checks, dispatch
/// into the hosted database) on a fresh database. `data[0]` picks the caller
/// (bit 0: owner or stranger) and the protocol (bit 1: v2 or v3); the rest
/// is the payload. Checks beyond not panicking: every request is answered
/// within [`ANSWER_WAIT`], every reply decodes with the client's decoder, and
/// the session's cleanup (`client_disconnected`) leaves no client recorded.
pub fn ws_dispatch(fixture: &Fixture, data: &[u8]) {
    let Some((&flags, payload)) = data.split_first() else {
        return;
    };
    let protocol = if flags & 2 == 0 {
        Protocol::V3
    } else {
        Protocol::V2
    };
    if decode_client_payload(protocol, payload).is_ok_and(|messages| messages.len() > MESSAGES_MAX)
    {
        return;
    }
    let database = fixture.database();
    let owner = flags & 1 == 1;
    let identity = if owner { OWNER } else { STRANGER };
    let connection_id = CONNECTION;
    let connected = database
        .client_connected(identity, connection_id, None)
        .expect("the lane runs the connect hook");
    assert!(
        connected.outcome.is_committed(),
        "the connect hook refused: {:?}",
        connected.outcome
    );
    let outbox = Outbox::new(OUTBOX_BYTES_MAX, OUTBOX_MESSAGES_MAX);
    database
        .clients()
        .connect(connection_id, identity, owner, outbox.clone());
    let dispatcher = Dispatcher::new(
        Session {
            database: database.clone(),
            identity,
            connection_id,
            token: String::new(),
            jwt_payload: None,
            owner,
            negotiated: Negotiated {
                protocol,
                compression: Compression::None,
                confirmed: false,
            },
        },
        outbox.clone(),
        IN_FLIGHT_MAX,
    );
    // A payload that does not decode ends the session; that is an answer.
    let _ = dispatcher.payload(payload);
    let started = Instant::now();
    while dispatcher.in_flight() > 0 {
        assert!(
            started.elapsed() < ANSWER_WAIT,
            "{} requests were never answered",
            dispatcher.in_flight()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    check_replies(&outbox);
    database.clients().disconnect(connection_id);
    database
        .client_disconnected(identity, connection_id)
        .expect("the lane runs the disconnect hook");
    assert!(
        database.connected_clients().is_empty(),
        "the disconnect left the client recorded"
    );
}

/// Every message waiting in `outbox` decodes with the client's decoder.
fn check_replies(outbox: &Arc<Outbox>) {
    if outbox.is_empty() {
        return;
    }
    // Messages are waiting, so the batch is ready at the first poll.
    let Some(Ok(batch)) = outbox.next_batch().now_or_never() else {
        return;
    };
    for item in batch {
        let body = item.frame.body();
        if let Err(e) = ServerMessage::decode(body) {
            panic!("a reply does not decode ({e}): {body:?}");
        }
    }
}

/// `sql_check`: SQL text parsed and checked against the tables of a real
/// hosted module. `data[0]` picks the caller (bit 0: owner or not) and the
/// mode (bit 1: plain SQL or subscription); the rest is the text (UTF-8, or
/// the input is skipped, as the wire format only carries strings).
pub fn sql_check(database: &HostedDatabase, data: &[u8]) {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(text) else {
        return;
    };
    let owner = flags & 1 == 1;
    let mode = if flags & 2 == 0 {
        Mode::Sql
    } else {
        Mode::Subscription
    };
    let sender = if owner { OWNER } else { STRANGER };
    let Ok(statement) = parse(sql) else {
        return;
    };
    let state = database.storage().read().expect("the database is readable");
    let _ = check(&statement, &*state, mode, owner, sender);
}

/// `reducer_args`: BSATN arguments decoded at the parameter types of one of
/// the module's reducers or procedures, exactly as a call does before the
/// guest runs. `data[0]` picks the function (reducers, then procedures,
/// modulo their count); the rest is the argument bytes.
pub fn reducer_args(module: &orrery_module::HostedModule, data: &[u8]) {
    let Some((&pick, args)) = data.split_first() else {
        return;
    };
    let def = module.def();
    let functions = def.reducers.len() + def.procedures.len();
    if functions == 0 {
        return;
    }
    let index = pick as usize % functions;
    if index < def.reducers.len() {
        let _ = module.check_args(index, args);
    } else {
        let _ = module.check_procedure_args(index - def.reducers.len(), args);
    }
}

/// `module_wasm`: bytes published as a module: compiled, checked,
/// instantiated, described and validated (`Runtime::host`), which must end
/// in a module or an error, within the load's budgets. If `data[0]` is even
/// the rest is the module's bytes, as a stranger could upload them; if it
/// is odd, the rest drives `wasm-smith` to write a valid module with the
/// imports and exports of `shape` (a real module), so that random code runs
/// the host's imports with random arguments while being described.
pub fn module_wasm(runtime: &Runtime, shape: &[u8], data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = runtime.host(rest, call_options());
        return;
    }
    let config = wasm_smith::Config {
        available_imports: Some(shape.to_vec()),
        exports: Some(shape.to_vec()),
        // What the engine accepts; anything else would only be refused.
        memory64_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        exceptions_enabled: false,
        gc_enabled: false,
        wide_arithmetic_enabled: false,
        custom_page_sizes_enabled: false,
        max_memories: 1,
        max_tables: 1,
        max_funcs: 32,
        ..wasm_smith::Config::default()
    };
    let Ok(module) = wasm_smith::Module::new(config, &mut arbitrary::Unstructured::new(rest)) else {
        return;
    };
    let _ = runtime.host(&module.to_bytes(), call_options());
}

/// `module_def`: arbitrary bytes as a module's description
/// (`ModuleDef::from_bsatn`), which must end in a definition or an error;
/// a definition's tables must be ones storage accepts (its invariant).
pub fn module_def(data: &[u8]) {
    let Ok(def) = orrery_moduledef::ModuleDef::from_bsatn(data) else {
        return;
    };
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().expect("a fresh database opens a transaction");
    for table in &def.tables {
        if let Err(e) = tx.create_table(table.def.clone()) {
            panic!(
                "moduledef accepted table `{}` that storage refuses: {e}",
                table.def.name
            );
        }
    }
    tx.rollback();
}

/// The bytes of test module `name`, built if needed.
pub fn module_bytes(name: &str) -> Vec<u8> {
    modules::module_bytes(name)
}
