//! Crate API tests of `orrery-module`, compiled as one binary.

#[path = "../../../tests/support/modules.rs"]
mod modules;

#[path = "../../../tests/support/harness.rs"]
mod harness;

mod abi_coverage;
mod cache;
mod hostile;
mod http_handlers;
mod lifecycle;
mod load;
mod migrate;
mod pool;
mod procedures;
mod real_modules;
mod reducers;
mod views;
