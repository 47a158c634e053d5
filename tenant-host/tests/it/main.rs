//! Crate API tests of `tenant-host`, compiled as one binary.

#[path = "../support/modules.rs"]
mod modules;

mod abi_coverage;
mod api;
mod cache;
mod database_api;
mod harness;
mod hostile;
mod hosting;
mod lifecycle;
mod load;
mod logs;
mod metrics;
mod migrate;
mod pool;
mod procedures;
mod real_modules;
mod reducers;
mod views;
mod ws;
mod ws_rls;
mod ws_views;
mod wsclient;
