//! Crate API tests of `storage`, compiled as one binary: the model-based
//! property test, crash recovery under SIGKILL, fault injection and the
//! engine's documented behaviours.

mod api;
mod crash;
mod faults;
mod garbage;
mod model;
mod schema_change;
mod snapshots;
