//! Fuzz target: one WebSocket payload from an anonymous or owner client,
//! decoded and dispatched into a fresh database of the `abi-coverage` test
//! module through the session's own path (`orrery_fuzz::ws_dispatch`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orrery_fuzz::Fixture;

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let fixture = FIXTURE.get_or_init(|| Fixture::new("abi-coverage"));
    orrery_fuzz::ws_dispatch(fixture, data);
});
