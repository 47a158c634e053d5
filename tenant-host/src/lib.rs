//! Tenant host: runs many tenant databases in one process.
//!
//! Owns (as it grows): the wasmtime runtime and module ABI ([`runtime`]),
//! reducer execution, the scheduler, SQL and subscriptions, the client
//! protocol (HTTP, WebSocket, TLS) and the lifecycle of tenant databases on a
//! host (load, unload, reload).
//! Does not own: accounts, passwords or placement (control-plane), storage
//! internals (storage).
//!
//! Built so far: loading, checking and describing SpacetimeDB 2.10.1 modules
//! ([`runtime::Runtime::load`]), turning their definitions into storage
//! schemas ([`moduledef::ModuleDef::from_bsatn`]), creating a module's
//! database with its `init` reducer, reducer calls in a transaction
//! ([`runtime::HostedModule::call_reducer`]), procedure calls with their own
//! transactions and policed outbound HTTP
//! ([`runtime::HostedModule::call_procedure`]), view evaluation
//! ([`runtime::HostedModule::call_view`]; views are materialised into
//! storage tables by `hosting`), hosting many databases on a bounded worker pool
//! with schedules and client hooks ([`hosting::Host`]), and per-database
//! module logs ([`logs::ModuleLog`]: ring, on-disk file, tail and follow),
//! and republishing a new module version to an existing database
//! ([`migrate::update_database`]).
//! The WebSocket wire format of the client protocol lives in [`wire`].
//! SQL for clients: parsing, checking, one-off SELECTs and DML ([`sql`]).
//! Incremental subscription evaluation: compiled queries, initial results and
//! per-transaction deltas ([`subs`]); connected clients, their outboxes and
//! the per-commit fan-out ([`clients`]).
//! Every database of a host process on disk: [`registry::Registry`].
//! Prometheus metrics of the process (`GET /metrics`): [`metrics`].

pub mod api;
pub mod auth;
pub mod clients;
pub mod hosting;
pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod moduledef;
pub mod registry;
pub mod runtime;
pub mod sql;
pub mod subs;
pub mod wire;
