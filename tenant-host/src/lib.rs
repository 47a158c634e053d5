//! Tenant host: runs many tenant databases in one process.
//!
//! Will own: the wasmtime runtime and module ABI, reducer execution, the
//! scheduler, SQL and subscriptions, the client protocol (HTTP, WebSocket, TLS)
//! and the lifecycle of tenant databases on a host (load, unload, reload).
//! Does not own: accounts, passwords or placement (control-plane), storage
//! internals (storage). Not built yet: see the module-runtime and client-API issues.
