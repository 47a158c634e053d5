//! Crate API tests of `tenant-host`, compiled as one binary.

#[path = "../support/modules.rs"]
mod modules;

mod abi_coverage;
mod harness;
mod hostile;
mod lifecycle;
mod load;
mod migrate;
mod real_modules;
mod reducers;
