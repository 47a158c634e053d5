// Protects the path from a real `spacetimedb` 2.10.1 module to storage: each
// test module (built for wasm32 from tests/modules) passes the import and
// export checks, runs its preinits and describes itself; the description
// decodes and validates into a ModuleDef whose tables the storage engine
// creates, and whose index names are the ones the module will ask for.

use orrery_module::Runtime;
use orrery_moduledef::ModuleDef;
use storage::{Database, DbOptions};

use crate::modules::{module_bytes, MODULES};

fn describe(name: &str) -> ModuleDef {
    let runtime = Runtime::new().unwrap();
    let loaded = runtime
        .load(&module_bytes(name))
        .unwrap_or_else(|e| panic!("module {name} failed to load: {e}"));
    assert_eq!(loaded.abi.major, 10);
    ModuleDef::from_bsatn(&loaded.description)
        .unwrap_or_else(|e| panic!("module {name} has an invalid definition: {e}"))
}

/// Creates every table of the module in a fresh database; returns it.
fn create_tables(def: &ModuleDef) -> Database {
    let db = Database::in_memory(DbOptions::default());
    let mut tx = db.begin().unwrap();
    for table in &def.tables {
        tx.create_table(table.def.clone())
            .unwrap_or_else(|e| panic!("table {}: {e}", table.source_name));
    }
    tx.commit().unwrap();
    db
}

#[test]
fn every_test_module_loads_describes_and_creates_its_tables() {
    for name in MODULES {
        let def = describe(name);
        assert!(!def.tables.is_empty(), "{name} has no tables");
        assert!(!def.reducers.is_empty(), "{name} has no reducers");
        let db = create_tables(&def);
        let read = db.read().unwrap();
        for table in &def.tables {
            assert!(
                read.table_id_from_name(&table.def.name).is_some(),
                "{name}: table {}",
                table.def.name
            );
            for index in &table.def.indexes {
                assert!(
                    read.index_id_from_name(&index.name).is_some(),
                    "{name}: index {}",
                    index.name
                );
            }
        }
    }
}

#[test]
fn bank_module_definition_is_what_its_source_declares() {
    let def = describe("bank");
    let (_, account) = def.table("account").expect("table `account`");
    let columns: Vec<_> = account
        .def
        .columns
        .elements
        .iter()
        .map(|e| e.name.as_deref().unwrap())
        .collect();
    assert_eq!(columns, ["id", "balance"]);
    assert_eq!(account.def.primary_key, Some(storage::ColId(0)));
    assert!(account.def.public);
    assert!(
        account
            .def
            .indexes
            .iter()
            .any(|i| i.name == "account_id_idx_btree"),
        "{:?}",
        account.def.indexes
    );
    for reducer in ["seed", "transfer"] {
        assert!(def.reducer(reducer).is_some(), "reducer {reducer}");
    }
    let (_, transfer) = def.reducer("transfer").unwrap();
    let params: Vec<_> = transfer
        .params
        .elements
        .iter()
        .map(|e| e.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(params, ["from", "to", "amount"]);
}

#[test]
fn chat_module_has_lifecycle_reducers_and_a_schedule() {
    let def = describe("chat");
    assert!(def.lifecycle.init.is_some(), "init");
    assert!(def.lifecycle.on_connect.is_some(), "client_connected");
    assert!(def.lifecycle.on_disconnect.is_some(), "client_disconnected");
    assert_eq!(def.schedules.len(), 1, "prune schedule");
    for table in ["user", "channel", "message"] {
        assert!(def.table(table).is_some(), "table {table}");
    }
    let (_, channel) = def.table("channel").unwrap();
    assert_eq!(channel.def.sequences.len(), 1, "auto_inc id");
    assert!(
        channel.def.unique_constraints.len() >= 2,
        "pk and unique name"
    );
}
