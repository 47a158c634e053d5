//! SQL and subscriptions over one database's committed state.
//!
//! Owns: the SQL subset of client-protocol.md §6 ([`sql`]: parsing, checking
//! against a catalog, one-off evaluation, DML execution, row-level security
//! rewriting, the names of materialised-view tables) and incremental
//! subscription evaluation ([`subs`]: compiled queries, initial results and
//! per-transaction deltas, row-list encoding), and the work budget every
//! evaluation is charged against ([`budget`]).
//! Does not own: connections, outboxes and fan-out (`tenant_host::clients`),
//! materialising views (`tenant_host::hosting`), or who is owner (callers
//! decide).

pub mod budget;
pub mod sql;
pub mod subs;
