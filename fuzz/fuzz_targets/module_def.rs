//! Fuzz target: arbitrary bytes as a module's description
//! (`ModuleDef::from_bsatn`), whose tables storage must accept
//! (`orrery_fuzz::module_def`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    orrery_fuzz::module_def(data);
});
