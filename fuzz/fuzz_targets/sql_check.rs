//! Fuzz target: SQL text parsed and checked against the tables of a hosted
//! `abi-coverage` database, as the owner or not, in plain-SQL or
//! subscription mode (`orrery_fuzz::sql_check`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orrery_fuzz::Fixture;
use tenant_host::hosting::HostedDatabase;

static DATABASE: OnceLock<(Fixture, HostedDatabase)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (_, database) = DATABASE.get_or_init(|| {
        let fixture = Fixture::new("abi-coverage");
        let database = fixture.database();
        (fixture, database)
    });
    orrery_fuzz::sql_check(database, data);
});
