//! Crate API tests of `tenant-host`, compiled as one binary.

#[path = "../../../tests/support/modules.rs"]
mod modules;

#[path = "../../../tests/support/harness.rs"]
mod harness;

mod hosting;
mod logs;
mod pool;
mod registry;
mod scheduler;
mod snapshots;
