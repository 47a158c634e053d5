//! The `orrery` binary: the CLI and the entry point of every process.
//!
//! Composition only: it parses arguments and wires crates together.

fn main() {}
