//! Tenant host: the databases of one host process.
//!
//! Owns: hosting many databases on a bounded worker pool with one lane per
//! database, schedules, connect and disconnect hooks, procedures' threads and
//! materialised views ([`hosting`]); connected clients, their outboxes and the
//! per-commit fan-out of subscription updates ([`clients`]); per-database
//! module logs ([`logs`]); every database of the process on disk
//! ([`registry::Registry`]); and the process's Prometheus metrics
//! ([`metrics`]).
//! Does not own: running modules (`orrery_module`), module definitions and
//! migration plans (`orrery_moduledef`), SQL and subscription evaluation
//! (`orrery_query`), the wire format (`orrery_wire`), HTTP and WebSocket
//! (`orrery_edge`), or accounts and placement (control-plane).

pub mod clients;
pub mod hosting;
pub mod logs;
pub mod metrics;
pub mod registry;
