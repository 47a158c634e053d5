//! Billing: meters, plans, quotas, rate limiters, usage records and statements.
//!
//! Will own: per-database counters (fuel, calls, bytes, rows), plan values below
//! the hard ceilings of `orrery_api::limits`, and `governor` rate limiters.
//! Does not own: enforcement inside a reducer call (tenant-host) or storage of
//! usage history (control-plane). Not built yet.
