//! Fuzz target: BSATN arguments decoded at the parameter types of the
//! `abi-coverage` module's reducers and procedures
//! (`orrery_fuzz::reducer_args`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orrery_module::HostedModule;

static MODULE: OnceLock<HostedModule> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let module = MODULE.get_or_init(|| {
        orrery_fuzz::runtime()
            .host(
                &orrery_fuzz::module_bytes("abi-coverage"),
                orrery_fuzz::call_options(),
            )
            .expect("the test module is hosted")
    });
    orrery_fuzz::reducer_args(module, data);
});
