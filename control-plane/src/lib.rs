//! Control plane: accounts, sessions, API tokens, databases, hosts and placement,
//! the module registry and signing, restore orchestration and the console API.
//!
//! Will own: the metadata store (SQLite embedded, Postgres in production, via
//! sqlx), leases with generations, and the object-store layout of
//! design/platform.md (through `storage`).
//! Does not own: running modules or serving tenant clients (tenant-host). Not built yet.
