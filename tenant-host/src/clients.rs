//! Connected clients of one database and their subscriptions.
//!
//! Owns: the [`Outbox`] of each connection (an ordered queue of encoded
//! server messages, bounded in bytes and messages), the registry of query sets
//! per connection with identical queries shared between connections, and the
//! commit observer ([`Clients`] implements `storage::CommitObserver`) that
//! turns each committed transaction into at most one message per connection:
//! the caller's `ReducerResult` carrying its own update, or a
//! `TransactionUpdate` for everyone else whose sets changed. Subscribe and
//! unsubscribe run under the storage read lock, so no transaction commits
//! between the snapshot they answer from and their registration; initial
//! rows and one-off queries are charged to a query budget, which bounds how
//! long they hold it.
//! Also owns the durability watch that lets `confirmed` connections hold
//! messages until the transaction they reflect is on disk.
//! Does not own: sockets, framing on the wire, keep-alive (`api::ws`), query
//! compilation and delta evaluation (`subs`), or running reducers (`hosting`).
//!
//! Sharing: a transaction's delta is computed once per distinct query, and
//! connections whose affected sets are identical (same set ids, same shared
//! queries) get the very same encoded message, compressed at most once per
//! compression mode.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use bytes::Bytes;
use spacetimedb_lib::{ConnectionId, Identity, Timestamp};
use storage::{CommitObserver, Database, State, TxDelta, TxOffset};

use orrery_query::sql::rls::Rules;
use orrery_query::sql::view_tables;
use orrery_query::sql::{Budget, Named, Names, QueryLimits};
use orrery_query::subs::{self, Query, QueryKey};
use orrery_wire::messages::{
    QueryRows, QuerySetId, QuerySetUpdate, ReducerOk, ReducerOutcome, SingleTableRows, TableUpdate,
    TableUpdateRows, TransactionUpdate, UnsubscribeFlags,
};
use orrery_wire::{compression, Compression, ServerMessage};

pub use orrery_api::limits::{OUTBOX_BYTES_MAX, OUTBOX_MESSAGES_MAX};

/// WebSocket close code "going away" (RFC 6455 §7.4.1).
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Close reason when a module update changed a table a subscription reads.
const SCHEMA_CHANGED: &str = "module exited: the module was updated and a subscribed table changed";

/// One encoded server message, shared by every connection it goes to; the
/// payload for each compression mode is built once, on first use.
pub struct Frame {
    body: Vec<u8>,
    payloads: [OnceLock<Bytes>; 3],
}

impl Frame {
    pub fn new(message: &ServerMessage) -> Arc<Frame> {
        Arc::new(Frame {
            body: message.encode(),
            payloads: Default::default(),
        })
    }

    /// The BSATN of the message (no compression tag).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The payload on the wire: compression tag, then the (maybe compressed) body.
    pub fn payload(&self, compression: Compression) -> Bytes {
        let slot = match compression {
            Compression::None => 0,
            Compression::Brotli => 1,
            Compression::Gzip => 2,
        };
        self.payloads[slot]
            .get_or_init(|| Bytes::from(compression::encode_payload(&self.body, compression)))
            .clone()
    }
}

/// A message waiting in an outbox.
#[derive(Clone)]
pub struct Outgoing {
    pub frame: Arc<Frame>,
    /// The transaction the message reflects; a `confirmed` connection holds
    /// the message until this offset is durable.
    pub offset: Option<TxOffset>,
}

/// The ordered queue of one connection's outgoing messages. Producers push
/// from any thread (commits, lane jobs); the connection's socket task drains.
pub struct Outbox {
    queue: Mutex<OutboxQueue>,
    ready: tokio::sync::Notify,
    bytes_max: usize,
    messages_max: usize,
}

#[derive(Default)]
struct OutboxQueue {
    items: VecDeque<Outgoing>,
    bytes: usize,
    /// Why the connection must end; set once, nothing is queued afterwards.
    closed: Option<Closed>,
}

/// Why an outbox stopped accepting messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// WebSocket close code.
    pub code: u16,
    pub reason: String,
}

impl Outbox {
    pub fn new(bytes_max: usize, messages_max: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            queue: Mutex::new(OutboxQueue::default()),
            ready: tokio::sync::Notify::new(),
            bytes_max,
            messages_max,
        })
    }

    /// Queues a message. A full queue closes the outbox (the client is too
    /// slow) instead of growing; returns false if the message was not queued.
    pub fn push(&self, item: Outgoing) -> bool {
        let mut queue = lock(&self.queue);
        if queue.closed.is_some() {
            return false;
        }
        let len = item.frame.body.len();
        // Only what is already waiting counts: one message larger than the
        // cap still goes to a client that keeps up.
        let full = !queue.items.is_empty()
            && (queue.bytes + len > self.bytes_max || queue.items.len() >= self.messages_max);
        if full {
            queue.closed = Some(Closed {
                code: 1008,
                reason: format!(
                    "client too slow: {} messages ({} bytes) waiting to be sent",
                    queue.items.len(),
                    queue.bytes
                ),
            });
            queue.items.clear();
            queue.bytes = 0;
            drop(queue);
            self.ready.notify_one();
            return false;
        }
        queue.bytes += len;
        queue.items.push_back(item);
        drop(queue);
        self.ready.notify_one();
        true
    }

    /// Pushes a message that reflects no transaction.
    pub fn push_message(&self, message: &ServerMessage) -> bool {
        self.push(Outgoing {
            frame: Frame::new(message),
            offset: None,
        })
    }

    /// Closes the outbox; the socket task sends a close frame with `code`.
    /// The first reason wins.
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let mut queue = lock(&self.queue);
        if queue.closed.is_none() {
            queue.closed = Some(Closed {
                code,
                reason: reason.into(),
            });
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// Waits for messages and takes all of them, or reports why the outbox
    /// closed (messages queued before the close are delivered first, except
    /// when it closed for being full).
    pub async fn next_batch(&self) -> Result<Vec<Outgoing>, Closed> {
        loop {
            {
                let mut queue = lock(&self.queue);
                if !queue.items.is_empty() {
                    queue.bytes = 0;
                    return Ok(queue.items.drain(..).collect());
                }
                if let Some(closed) = &queue.closed {
                    return Err(closed.clone());
                }
            }
            self.ready.notified().await;
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        lock(&self.queue).items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The reducer call running on this thread for a connection: the commit it
/// makes answers the caller with its own update.
struct Origin {
    connection: ConnectionId,
    request_id: u32,
    timestamp_micros: i64,
    /// Set once the commit observer delivered the `ReducerResult`.
    delivered: bool,
}

thread_local! {
    static ORIGIN: RefCell<Option<Origin>> = const { RefCell::new(None) };
}

/// Runs `call` (a reducer call on this thread) as the call of `request_id`
/// from `connection`; returns its result and whether its commit already
/// delivered the caller's `ReducerResult`.
pub fn with_origin<R>(
    connection: ConnectionId,
    request_id: u32,
    timestamp_micros: i64,
    call: impl FnOnce() -> R,
) -> (R, bool) {
    ORIGIN.with(|o| {
        *o.borrow_mut() = Some(Origin {
            connection,
            request_id,
            timestamp_micros,
            delivered: false,
        })
    });
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ORIGIN.with(|o| o.borrow_mut().take());
        }
    }
    let reset = Reset;
    let result = call();
    let delivered = ORIGIN.with(|o| o.borrow().as_ref().is_some_and(|o| o.delivered));
    drop(reset);
    (result, delivered)
}

/// One subscription query shared by every set that subscribed to it.
struct Shared {
    query: Query,
    /// Sets (over all connections) holding it; changed under the registry lock.
    holders: AtomicUsize,
}

struct Connection {
    outbox: Arc<Outbox>,
    identity: Identity,
    owner: bool,
    /// Live query sets: the distinct queries of each.
    sets: BTreeMap<u32, Vec<Arc<Shared>>>,
}

#[derive(Default)]
struct Registry {
    connections: HashMap<ConnectionId, Connection>,
    queries: HashMap<QueryKey, Arc<Shared>>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ClientStats {
    pub transactions_evaluated: AtomicU64,
    pub delta_rows_sent: AtomicU64,
    pub messages_queued: AtomicU64,
    pub bytes_queued: AtomicU64,
    pub slow_clients_dropped: AtomicU64,
}

/// The connected clients of one database; installed as its commit observer.
pub struct Clients {
    registry: Mutex<Registry>,
    durability: Arc<Durability>,
    /// The module's row-level security, applied to non-owners' queries.
    rules: Mutex<Arc<Rules>>,
    /// The module's accessor names, which SQL resolves after canonical ones.
    names: Mutex<Arc<Names>>,
    pub stats: ClientStats,
}

/// Why a subscribe or unsubscribe was refused; goes back as `SubscriptionError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRefused(pub String);

impl Clients {
    /// The clients of `storage`'s database, with a durability watch on it.
    pub fn new(storage: &Database) -> Arc<Clients> {
        Arc::new(Clients {
            registry: Mutex::new(Registry::default()),
            durability: Durability::start(storage.clone()),
            rules: Mutex::new(Arc::new(Rules::default())),
            names: Mutex::new(Arc::new(Names::default())),
            stats: ClientStats::default(),
        })
    }

    /// Installs the module's row-level security for later subscriptions
    /// and queries (the host closes existing sockets when rules change).
    pub fn set_rules(&self, rules: Arc<Rules>) {
        *lock(&self.rules) = rules;
    }

    /// The row-level security in force.
    pub fn rules(&self) -> Arc<Rules> {
        lock(&self.rules).clone()
    }

    /// Installs the module's accessor names (set with the module).
    pub fn set_names(&self, names: Arc<Names>) {
        *lock(&self.names) = names;
    }

    /// The module's accessor names in force.
    pub fn names(&self) -> Arc<Names> {
        lock(&self.names).clone()
    }

    /// Stops the durability watch thread; called when the database unloads.
    pub fn shutdown(&self) {
        self.durability.stop();
    }

    /// A receiver of "offsets below this are durable" (0 = none yet).
    pub fn durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durability.watch.subscribe()
    }

    /// Registers a connection (after its connect hook accepted it and its
    /// `InitialConnection` was queued).
    pub fn connect(
        &self,
        connection: ConnectionId,
        identity: Identity,
        owner: bool,
        outbox: Arc<Outbox>,
    ) {
        lock(&self.registry).connections.insert(
            connection,
            Connection {
                outbox,
                identity,
                owner,
                sets: BTreeMap::new(),
            },
        );
    }

    /// Forgets a connection and its sets.
    pub fn disconnect(&self, connection: ConnectionId) {
        let mut registry = lock(&self.registry);
        if let Some(conn) = registry.connections.remove(&connection) {
            for shared in conn.sets.into_values().flatten() {
                release(&mut registry.queries, &shared);
            }
        }
    }

    /// The identity `connection` authenticated as, if it is registered.
    pub fn identity_of(&self, connection: ConnectionId) -> Option<Identity> {
        lock(&self.registry)
            .connections
            .get(&connection)
            .map(|c| c.identity)
    }

    /// True if a registered subscription reads `table`.
    pub fn reads_table(&self, table: storage::TableId) -> bool {
        lock(&self.registry)
            .queries
            .values()
            .any(|shared| shared.query.reads().contains(&table))
    }

    /// Connections registered now.
    pub fn connections(&self) -> usize {
        lock(&self.registry).connections.len()
    }

    /// Query sets registered now, over all connections.
    pub fn subscriptions(&self) -> usize {
        lock(&self.registry)
            .connections
            .values()
            .map(|c| c.sets.len())
            .sum()
    }

    /// Distinct queries evaluated per transaction.
    pub fn distinct_queries(&self) -> usize {
        lock(&self.registry).queries.len()
    }

    /// Closes every connection's outbox (the database is going away).
    pub fn close_all(&self, code: u16, reason: &str) {
        for conn in lock(&self.registry).connections.values() {
            conn.outbox.close(code, reason);
        }
    }

    /// Handles `Subscribe`: compiles every query, then, under the storage
    /// read lock, answers with the current rows and registers the set. On any
    /// error nothing is registered and a `SubscriptionError` is queued.
    pub fn subscribe(
        &self,
        storage: &Database,
        connection: ConnectionId,
        request_id: u32,
        set: QuerySetId,
        query_strings: &[String],
    ) {
        let Ok(state) = storage.read() else {
            self.refuse(connection, request_id, set, "the database is unavailable");
            return;
        };
        match self.subscribe_in(&state, connection, request_id, set, query_strings) {
            Ok(()) => {}
            Err(SubscriptionRefused(error)) => self.refuse(connection, request_id, set, &error),
        }
    }

    fn subscribe_in(
        &self,
        state: &State,
        connection: ConnectionId,
        request_id: u32,
        set: QuerySetId,
        query_strings: &[String],
    ) -> Result<(), SubscriptionRefused> {
        let (identity, owner) = {
            let registry = lock(&self.registry);
            let conn = registry
                .connections
                .get(&connection)
                .ok_or_else(|| SubscriptionRefused("not connected".into()))?;
            if conn.sets.contains_key(&set.id) {
                return Err(SubscriptionRefused(format!(
                    "query set {} is already subscribed on this connection",
                    set.id
                )));
            }
            (conn.identity, conn.owner)
        };
        let mut texts: Vec<String> = Vec::new();
        for sql in query_strings {
            match subs::expand_select_all(sql, state, owner) {
                Some(all) => texts.extend(all),
                None => texts.push(sql.trim().to_owned()),
            }
        }
        let rules = self.rules();
        let names = self.names();
        let catalog = Named {
            catalog: state,
            names: &names,
        };
        let mut queries: Vec<Query> = Vec::new();
        for sql in &texts {
            let compiled = Query::compile_secured(&catalog, sql, owner, identity, &rules)
                .map_err(|e| SubscriptionRefused(format!("{e} (in `{sql}`)")))?;
            for query in compiled {
                if !queries.iter().any(|q| q.key() == query.key()) {
                    queries.push(query);
                }
            }
        }
        let mut tables = Vec::with_capacity(queries.len());
        // One budget for the whole request: its initial rows are bounded
        // together, and the read lock with them.
        let mut budget = Budget::new(QueryLimits::SUBSCRIPTION_INITIAL);
        for query in &queries {
            let schema = query.returned_table();
            let rows = query
                .initial_bounded(state, &mut budget)
                .map_err(|e| SubscriptionRefused(format!("{e} (in `{}`)", query.key().text())))?;
            self.stats
                .delta_rows_sent
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            tables.push(SingleTableRows {
                table: view_tables::client_name(&schema.name).to_string(),
                rows: subs::encode_rows(&rows, schema),
            });
        }
        let mut registry = lock(&self.registry);
        let mut shared_set = Vec::with_capacity(queries.len());
        for query in queries {
            let shared = registry
                .queries
                .entry(query.key().clone())
                .or_insert_with(|| {
                    Arc::new(Shared {
                        query,
                        holders: AtomicUsize::new(0),
                    })
                });
            shared.holders.fetch_add(1, Ordering::Relaxed);
            shared_set.push(shared.clone());
        }
        let Some(conn) = registry.connections.get_mut(&connection) else {
            drop(registry);
            return Err(SubscriptionRefused("not connected".into()));
        };
        conn.sets.insert(set.id, shared_set);
        let outbox = conn.outbox.clone();
        drop(registry);
        outbox.push_message(&ServerMessage::SubscribeApplied {
            request_id,
            query_set_id: set,
            rows: QueryRows { tables },
        });
        Ok(())
    }

    /// Queues a `SubscriptionError` for `request_id` to `connection`.
    pub fn refuse(&self, connection: ConnectionId, request_id: u32, set: QuerySetId, error: &str) {
        if let Some(outbox) = self.outbox(connection) {
            outbox.push_message(&ServerMessage::SubscriptionError {
                request_id: Some(request_id),
                query_set_id: set,
                error: error.to_owned(),
            });
        }
    }

    /// The outbox of a registered connection.
    pub fn outbox(&self, connection: ConnectionId) -> Option<Arc<Outbox>> {
        lock(&self.registry)
            .connections
            .get(&connection)
            .map(|c| c.outbox.clone())
    }

    /// Handles `Unsubscribe`: removes the set and answers, under the storage
    /// read lock, with the rows the set held if asked to.
    pub fn unsubscribe(
        &self,
        storage: &Database,
        connection: ConnectionId,
        request_id: u32,
        set: QuerySetId,
        flags: UnsubscribeFlags,
    ) {
        let Ok(state) = storage.read() else {
            self.refuse(connection, request_id, set, "the database is unavailable");
            return;
        };
        let mut registry = lock(&self.registry);
        let Some(conn) = registry.connections.get_mut(&connection) else {
            return;
        };
        let outbox = conn.outbox.clone();
        let Some(queries) = conn.sets.remove(&set.id) else {
            drop(registry);
            outbox.push_message(&ServerMessage::SubscriptionError {
                request_id: Some(request_id),
                query_set_id: set,
                error: format!("query set {} is not subscribed on this connection", set.id),
            });
            return;
        };
        let rows = (flags == UnsubscribeFlags::SendDroppedRows).then(|| QueryRows {
            tables: queries
                .iter()
                .filter(|shared| !shared.query.returned_table().is_event)
                .map(|shared| {
                    let schema = shared.query.returned_table();
                    SingleTableRows {
                        table: view_tables::client_name(&schema.name).to_string(),
                        rows: subs::encode_rows(&shared.query.initial(&state), schema),
                    }
                })
                .collect(),
        });
        for shared in &queries {
            release(&mut registry.queries, shared);
        }
        drop(registry);
        drop(state);
        outbox.push_message(&ServerMessage::UnsubscribeApplied {
            request_id,
            query_set_id: set,
            rows,
        });
    }

    /// Answers a one-off query (subscription grammar) from the current state.
    pub fn one_off(
        &self,
        storage: &Database,
        connection: ConnectionId,
        request_id: u32,
        sql: &str,
    ) {
        let Some((identity, owner, outbox)) = lock(&self.registry)
            .connections
            .get(&connection)
            .map(|c| (c.identity, c.owner, c.outbox.clone()))
        else {
            return;
        };
        let result = match storage.read() {
            Err(e) => Err(format!("the database is unavailable: {e}")),
            Ok(state) => Query::compile_secured(
                &Named {
                    catalog: &*state,
                    names: &self.names(),
                },
                sql,
                owner,
                identity,
                &self.rules(),
            )
            .map_err(|e| e.to_string())
            .and_then(|fragments| {
                let schema = fragments[0].returned_table();
                let mut budget = Budget::new(QueryLimits::one_off(owner));
                let mut rows: Vec<storage::Row> = Vec::new();
                for fragment in &fragments {
                    rows.extend(
                        fragment
                            .initial_bounded(&state, &mut budget)
                            .map_err(|e| e.to_string())?,
                    );
                }
                Ok(QueryRows {
                    tables: vec![SingleTableRows {
                        table: view_tables::client_name(&schema.name).to_string(),
                        rows: subs::encode_rows(&rows, schema),
                    }],
                })
            }),
        };
        outbox.push_message(&ServerMessage::OneOffQueryResult { request_id, result });
    }
}

/// Drops one holder of `shared`, forgetting the query when none is left.
fn release(queries: &mut HashMap<QueryKey, Arc<Shared>>, shared: &Arc<Shared>) {
    if shared.holders.fetch_sub(1, Ordering::Relaxed) == 1 {
        queries.remove(shared.query.key());
    }
}

impl CommitObserver for Clients {
    fn committed(&self, delta: &TxDelta, state: &State) {
        if let Some(offset) = delta.offset {
            self.durability.committed(offset);
        }
        let origin = ORIGIN.with(|o| {
            o.borrow()
                .as_ref()
                .map(|o| (o.connection, o.request_id, o.timestamp_micros))
        });
        let registry = lock(&self.registry);
        if registry.connections.is_empty() {
            return;
        }
        self.stats
            .transactions_evaluated
            .fetch_add(1, Ordering::Relaxed);
        // Each affected distinct query's update, computed once.
        let mut updates: HashMap<usize, Option<Arc<TableUpdate>>> = HashMap::new();
        let touched: Vec<storage::TableId> = delta.tables.iter().map(|t| t.table_id).collect();
        let mut invalid: Vec<usize> = Vec::new();
        if !touched.is_empty()
            || !delta.altered_tables.is_empty()
            || !delta.dropped_tables.is_empty()
        {
            for shared in registry.queries.values() {
                let key = Arc::as_ptr(shared) as usize;
                if shared.query.invalidated_by(delta) {
                    invalid.push(key);
                    continue;
                }
                if !shared.query.reads().iter().any(|t| touched.contains(t)) {
                    continue;
                }
                let change = shared.query.delta(delta, state);
                let update = table_update(&shared.query, &change);
                if update.is_some() {
                    self.stats
                        .delta_rows_sent
                        .fetch_add(update_rows(&change), Ordering::Relaxed);
                }
                updates.insert(key, update.map(Arc::new));
            }
        }
        let mut frames: HashMap<Vec<(u32, Vec<usize>)>, Arc<Frame>> = HashMap::new();
        for (&id, conn) in &registry.connections {
            let is_caller = origin.is_some_and(|(c, _, _)| c == id);
            let mut signature: Vec<(u32, Vec<usize>)> = Vec::new();
            let mut broken = false;
            for (&set, queries) in &conn.sets {
                let mut hit = Vec::new();
                for shared in queries {
                    let key = Arc::as_ptr(shared) as usize;
                    if invalid.contains(&key) {
                        broken = true;
                        break;
                    }
                    if let Some(Some(_)) = updates.get(&key) {
                        hit.push(key);
                    }
                }
                if !hit.is_empty() {
                    signature.push((set, hit));
                }
            }
            if broken {
                // Only a module update alters or drops tables: as the stock
                // clients expect, they reconnect and subscribe again.
                conn.outbox.close(CLOSE_GOING_AWAY, SCHEMA_CHANGED);
                continue;
            }
            if is_caller {
                let (_, request_id, timestamp) = origin.expect("caller has an origin");
                let update = build_update(&signature, &updates);
                let message = ServerMessage::ReducerResult {
                    request_id,
                    timestamp: Timestamp::from_micros_since_unix_epoch(timestamp),
                    result: if update.query_sets.is_empty() {
                        ReducerOutcome::OkEmpty
                    } else {
                        ReducerOutcome::Ok(ReducerOk {
                            ret_value: Vec::new(),
                            transaction_update: update,
                        })
                    },
                };
                self.queue(conn, Frame::new(&message), delta.offset);
                ORIGIN.with(|o| {
                    if let Some(o) = o.borrow_mut().as_mut() {
                        o.delivered = true;
                    }
                });
                continue;
            }
            if signature.is_empty() {
                continue;
            }
            let frame = frames
                .entry(signature)
                .or_insert_with_key(|signature| {
                    Frame::new(&ServerMessage::TransactionUpdate(build_update(
                        signature, &updates,
                    )))
                })
                .clone();
            self.queue(conn, frame, delta.offset);
        }
        if !invalid.is_empty() {
            drop(registry);
            let mut registry = lock(&self.registry);
            let registry = &mut *registry;
            for conn in registry.connections.values_mut() {
                conn.sets.retain(|_, queries| {
                    let broken = queries
                        .iter()
                        .any(|q| invalid.contains(&(Arc::as_ptr(q) as usize)));
                    if broken {
                        for shared in queries.iter() {
                            shared.holders.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    !broken
                });
            }
            registry
                .queries
                .retain(|_, shared| shared.holders.load(Ordering::Relaxed) > 0);
        }
    }
}

impl Clients {
    fn queue(&self, conn: &Connection, frame: Arc<Frame>, offset: Option<TxOffset>) {
        let bytes = frame.body.len() as u64;
        if conn.outbox.push(Outgoing { frame, offset }) {
            self.stats.messages_queued.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes_queued.fetch_add(bytes, Ordering::Relaxed);
        } else {
            self.stats
                .slow_clients_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn update_rows(change: &subs::QueryDelta) -> u64 {
    (change.inserts.len() + change.deletes.len() + change.events.len()) as u64
}

/// A query's part of a transaction update; `None` if it did not change.
fn table_update(query: &Query, change: &subs::QueryDelta) -> Option<TableUpdate> {
    let schema = query.returned_table();
    let rows = if schema.is_event {
        if change.events.is_empty() {
            return None;
        }
        TableUpdateRows::EventTable {
            events: subs::encode_rows(&change.events, schema),
        }
    } else {
        if change.inserts.is_empty() && change.deletes.is_empty() {
            return None;
        }
        TableUpdateRows::PersistentTable {
            inserts: subs::encode_rows(&change.inserts, schema),
            deletes: subs::encode_rows(&change.deletes, schema),
        }
    };
    Some(TableUpdate {
        table_name: view_tables::client_name(&schema.name).to_string(),
        rows: vec![rows],
    })
}

/// The update of the sets in `signature`: per set, one `TableUpdate` per
/// table with one rows entry per changed query.
fn build_update(
    signature: &[(u32, Vec<usize>)],
    updates: &HashMap<usize, Option<Arc<TableUpdate>>>,
) -> TransactionUpdate {
    let mut query_sets = Vec::with_capacity(signature.len());
    for (set, keys) in signature {
        let mut tables: Vec<TableUpdate> = Vec::new();
        for key in keys {
            let Some(Some(update)) = updates.get(key) else {
                continue;
            };
            match tables
                .iter_mut()
                .find(|t| t.table_name == update.table_name)
            {
                Some(table) => table.rows.extend(update.rows.iter().cloned()),
                None => tables.push((**update).clone()),
            }
        }
        query_sets.push(QuerySetUpdate {
            query_set_id: QuerySetId { id: *set },
            tables,
        });
    }
    TransactionUpdate { query_sets }
}

/// Tracks which commits are durable, for `confirmed` connections: commits
/// report their offsets; one thread per database waits on the commit log and
/// publishes "everything below N is durable".
struct Durability {
    latest: Mutex<Latest>,
    wake: Condvar,
    watch: tokio::sync::watch::Sender<u64>,
    stop: AtomicBool,
}

/// The newest committed offset + 1, and whether the watch thread sleeps
/// waiting for it to grow (only then does a commit need to wake it: a
/// condvar notify is a syscall, which every commit would otherwise pay).
struct Latest {
    end: u64,
    sleeping: bool,
}

impl Durability {
    fn start(storage: Database) -> Arc<Durability> {
        let initial = storage.durable_offset().map_or(0, |o| o.0 + 1);
        let (watch, _) = tokio::sync::watch::channel(initial);
        let durability = Arc::new(Durability {
            latest: Mutex::new(Latest {
                end: initial,
                sleeping: false,
            }),
            wake: Condvar::new(),
            watch,
            stop: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&durability);
        let spawned = std::thread::Builder::new()
            .name("durability".into())
            .spawn(move || Durability::run(weak, storage));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the durability watch; confirmed reads will wait");
        }
        durability
    }

    fn run(weak: std::sync::Weak<Durability>, storage: Database) {
        let mut published = 0u64;
        loop {
            let Some(me) = weak.upgrade() else { return };
            let target = {
                let mut latest = lock(&me.latest);
                while latest.end <= published && !me.stop.load(Ordering::Acquire) {
                    latest.sleeping = true;
                    latest = me
                        .wake
                        .wait_timeout(latest, std::time::Duration::from_secs(1))
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|e| e.into_inner().0);
                    latest.sleeping = false;
                }
                if me.stop.load(Ordering::Acquire) {
                    return;
                }
                latest.end
            };
            drop(me);
            match storage.wait_durable(TxOffset(target - 1)) {
                Ok(()) => {}
                // Not yet in the object store (it is away): wait again.
                Err(storage::commitlog::DurabilityError::NotYetElsewhere { .. }) => continue,
                // The log failed: nothing will become durable any more.
                Err(_) => return,
            }
            published = target;
            match weak.upgrade() {
                Some(me) => {
                    me.watch.send_replace(published);
                }
                None => return,
            }
        }
    }

    fn committed(&self, offset: TxOffset) {
        let mut latest = lock(&self.latest);
        if offset.0 + 1 > latest.end {
            latest.end = offset.0 + 1;
            if latest.sleeping {
                latest.sleeping = false;
                self.wake.notify_one();
            }
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
