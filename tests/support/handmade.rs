//! Shared by the publish tests of several crates: small WebAssembly modules
//! written by hand (WAT) around a module definition built with
//! `spacetimedb-lib`'s builders, for what the `spacetimedb` 2.10.1 crate
//! cannot produce: a module of the 1.x bindings (a `RawModuleDef::V9`
//! definition) and a module whose `init` traps.
//!
//! Each module has one public table `note (owner u32, text string)` and
//! answers `__describe_module__` with its definition; reducers do nothing
//! (return 0), except in [`init_traps`], where every reducer call traps.
//!
//! Included with `#[path = ".../tests/support/handmade.rs"] mod handmade;`;
//! the including crate needs the `wat` and `spacetimedb-lib` crates.

// Each including test binary uses only some of these functions.
#![allow(dead_code)]

use spacetimedb_lib::db::raw_def::v10::RawModuleDefV10Builder;
use spacetimedb_lib::db::raw_def::v9::{Lifecycle, RawModuleDefV9Builder, TableAccess};
use spacetimedb_lib::sats::{AlgebraicType, ProductType};
use spacetimedb_lib::RawModuleDef;

fn note() -> ProductType {
    ProductType::from([
        ("owner", AlgebraicType::U32),
        ("text", AlgebraicType::String),
    ])
}

/// A module of the 1.x bindings: its definition is a `RawModuleDef::V9`.
pub(crate) fn v9_module() -> Vec<u8> {
    let mut b = RawModuleDefV9Builder::new();
    b.build_table_with_new_type("note", note(), true)
        .with_access(TableAccess::Public)
        .finish();
    b.add_reducer("add_note", note(), None);
    wasm(&RawModuleDef::V9(b.finish()), false)
}

/// The same tables and reducers, as a module of the 2.x bindings
/// (`RawModuleDef::V10`): an automatic migration of [`v9_module`].
pub(crate) fn v10_module() -> Vec<u8> {
    let mut b = RawModuleDefV10Builder::new();
    b.build_table_with_new_type("note", note(), true)
        .with_access(TableAccess::Public)
        .finish();
    b.add_reducer("add_note", note());
    wasm(&RawModuleDef::V10(b.finish()), false)
}

/// A 2.x module with an `init` that traps: its first publish fails.
pub(crate) fn init_traps() -> Vec<u8> {
    let mut b = RawModuleDefV10Builder::new();
    b.build_table_with_new_type("note", note(), true)
        .with_access(TableAccess::Public)
        .finish();
    b.add_lifecycle_reducer(Lifecycle::Init, "init", ProductType::unit());
    wasm(&RawModuleDef::V10(b.finish()), true)
}

/// A module that describes itself as `def`; its reducers return 0, or trap
/// if `trap`.
fn wasm(def: &RawModuleDef, trap: bool) -> Vec<u8> {
    let bytes = spacetimedb_lib::bsatn::to_vec(def).expect("a definition encodes");
    let data: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    let len = bytes.len();
    let body = if trap { "unreachable" } else { "i32.const 0" };
    // The definition sits at 1024; its length at 8 for the sink to read.
    let text = format!(
        r#"(module
            (import "spacetime_10.0" "bytes_sink_write" (func $sink_write (param i32 i32 i32) (result i32)))
            (memory (export "memory") {pages})
            (data (i32.const 1024) "{data}")
            (func (export "__describe_module__") (param $sink i32)
              (i32.store (i32.const 8) (i32.const {len}))
              (drop (call $sink_write (local.get $sink) (i32.const 1024) (i32.const 8))))
            (func (export "__call_reducer__") (param i32 i64 i64 i64 i64 i64 i64 i64 i32 i32) (result i32)
              {body}))"#,
        pages = (1024 + len) / 65536 + 1,
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("bad handmade module: {e}"))
}
