//! Fuzz target: bytes published as a module (compile, ABI check,
//! instantiate, describe, validate), raw or written by `wasm-smith` in the
//! shape of the `bank` test module (`orrery_fuzz::module_wasm`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orrery_module::Runtime;

static RUNTIME: OnceLock<(Runtime, Vec<u8>)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (runtime, shape) = RUNTIME.get_or_init(|| {
        (
            orrery_fuzz::runtime(),
            orrery_fuzz::module_bytes("bank"),
        )
    });
    orrery_fuzz::module_wasm(runtime, shape, data);
});
