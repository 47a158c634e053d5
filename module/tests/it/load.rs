// Protects module loading (module-abi §1): imports are checked against the
// catalogue and the ABI version, exports against their signatures; set-up
// runs every `__preinit__*` in byte order before describing once; a module
// that traps, loops or reaches outside its memory fails to load with a clear
// error instead of hurting the host. Modules are written in WAT so each case
// is exact.

use orrery_module::{LoadError, Runtime};

const CALL_REDUCER: &str = r#"(func (export "__call_reducer__") (param i32 i64 i64 i64 i64 i64 i64 i64 i32 i32) (result i32) i32.const 0)"#;

/// A module with the given extra imports and body; it always exports memory,
/// `__call_reducer__` and the `bytes_sink_write` import it describes with.
fn module(imports: &str, body: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
            (import "spacetime_10.0" "bytes_sink_write" (func $sink_write (param i32 i32 i32) (result i32)))
            {imports}
            (memory (export "memory") 1)
            {CALL_REDUCER}
            {body})"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("bad test WAT: {e}"))
}

/// `__describe_module__` that writes `len` bytes at `ptr` to the sink.
fn describe_writing(ptr: u32, len: u32) -> String {
    format!(
        r#"(func (export "__describe_module__") (param $sink i32)
              (i32.store (i32.const 8) (i32.const {len}))
              (drop (call $sink_write (local.get $sink) (i32.const {ptr}) (i32.const 8))))"#
    )
}

fn load(wasm: &[u8]) -> Result<orrery_module::LoadedModule, LoadError> {
    Runtime::new().unwrap().load(wasm)
}

#[test]
fn preinits_run_in_byte_order_then_describe_once() {
    // Each preinit appends its letter at memory[100 + counter]; describe sends the letters.
    let body = format!(
        r#"(global $n (mut i32) (i32.const 0))
           (func $append (param $c i32)
              (i32.store8 (i32.add (i32.const 100) (global.get $n)) (local.get $c))
              (global.set $n (i32.add (global.get $n) (i32.const 1))))
           (func (export "__preinit__20_b") (call $append (i32.const 98)))
           (func (export "__preinit__10_a") (call $append (i32.const 97)))
           (func (export "__preinit__20_Z") (call $append (i32.const 90)))
           {}"#,
        describe_writing(100, 3)
    );
    let loaded = load(&module("", &body)).unwrap();
    // Byte order: "10_a" < "20_Z" < "20_b" (uppercase sorts before lowercase).
    assert_eq!(loaded.description, b"aZb");
    assert_eq!(loaded.abi.minor, 0);
}

#[test]
fn console_log_records_are_kept() {
    let body = r#"
        (data (i32.const 200) "tgtfile.rsmessage")
        (func (export "__describe_module__") (param i32)
           (call $log (i32.const 2) (i32.const 200) (i32.const 3) (i32.const 203) (i32.const 7) (i32.const 42) (i32.const 210) (i32.const 7)))"#;
    let imports = r#"(import "spacetime_10.0" "console_log" (func $log (param i32 i32 i32 i32 i32 i32 i32 i32)))"#;
    let loaded = load(&module(imports, body)).unwrap();
    assert_eq!(loaded.logs.len(), 1);
    let record = &loaded.logs[0];
    assert_eq!(
        (
            record.level,
            record.target.as_str(),
            record.filename.as_str(),
            record.line,
            record.message.as_str()
        ),
        (2, "tgt", "file.rs", 42, "message")
    );
}

#[test]
fn datastore_imports_outside_a_transaction_answer_not_in_transaction() {
    // table_id_from_name during describe must return errno 2; describe sends that code as one byte.
    let imports = r#"(import "spacetime_10.0" "table_id_from_name" (func $tid (param i32 i32 i32) (result i32)))"#;
    let body = format!(
        r#"(data (i32.const 300) "person")
           (func (export "__preinit__00") (i32.store8 (i32.const 100) (call $tid (i32.const 300) (i32.const 6) (i32.const 400))))
           {}"#,
        describe_writing(100, 1)
    );
    assert_eq!(load(&module(imports, &body)).unwrap().description, [2]);
}

#[test]
fn unknown_imports_and_abi_versions_are_refused() {
    let describe = describe_writing(0, 0);
    let unknown = module(
        r#"(import "spacetime_10.0" "launch_rockets" (func (param i32)))"#,
        &describe,
    );
    assert!(
        matches!(load(&unknown), Err(LoadError::UnknownImport { name, .. }) if name == "launch_rockets")
    );
    let wasi = module(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        &describe,
    );
    assert!(matches!(load(&wasi), Err(LoadError::UnknownImport { .. })));
    let newer = module(
        r#"(import "spacetime_10.9" "datastore_clear" (func (param i32 i32) (result i32)))"#,
        &describe,
    );
    assert!(matches!(
        load(&newer),
        Err(LoadError::UnsupportedAbi {
            major: 10,
            minor: 9
        })
    ));
    let other_major = module(
        r#"(import "spacetime_11.0" "identity" (func (param i32)))"#,
        &describe,
    );
    assert!(matches!(
        load(&other_major),
        Err(LoadError::UnsupportedAbi { major: 11, .. })
    ));
    let wrong_signature = module(
        r#"(import "spacetime_10.0" "identity" (func (param i64)))"#,
        &describe,
    );
    assert!(
        matches!(load(&wrong_signature), Err(LoadError::BadImport { name, .. }) if name == "identity")
    );
    // A minor must match the function's namespace: datastore_clear lives in 10.5.
    let misplaced = module(
        r#"(import "spacetime_10.0" "datastore_clear" (func (param i32 i32) (result i32)))"#,
        &describe,
    );
    assert!(matches!(
        load(&misplaced),
        Err(LoadError::UnknownImport { .. })
    ));
    let minor = module(
        r#"(import "spacetime_10.5" "datastore_clear" (func (param i32 i32) (result i32)))"#,
        &describe,
    );
    assert_eq!(load(&minor).unwrap().abi.minor, 5);
}

#[test]
fn exports_are_checked() {
    let no_describe = module("", "");
    assert!(
        matches!(load(&no_describe), Err(LoadError::BadExport { name, .. }) if name == "__describe_module__")
    );
    let bad_preinit = module(
        "",
        &format!(
            r#"(func (export "__preinit__x") (param i32)) {}"#,
            describe_writing(0, 0)
        ),
    );
    assert!(
        matches!(load(&bad_preinit), Err(LoadError::BadExport { name, .. }) if name == "__preinit__x")
    );
    let no_memory = wat::parse_str(format!(
        r#"(module (import "spacetime_10.0" "bytes_sink_write" (func $sink_write (param i32 i32 i32) (result i32)))
                   (memory 1) {CALL_REDUCER} (func (export "__describe_module__") (param i32)))"#
    ))
    .unwrap();
    assert!(matches!(load(&no_memory), Err(LoadError::BadExport { name, .. }) if name == "memory"));
    assert!(matches!(load(b"not wasm"), Err(LoadError::Compile(_))));
    let unstable = module(
        r#"(import "spacetime_10.0" "volatile_nonatomic_schedule_immediate" (func (param i32 i32 i32 i32)))"#,
        &describe_writing(0, 0),
    );
    // The unstable feature's import links (issue 13 item 3).
    load(&unstable).expect("volatile_nonatomic_schedule_immediate links");
}

#[test]
fn traps_loops_and_wild_pointers_fail_the_load_cleanly() {
    let trap = module(
        "",
        r#"(func (export "__describe_module__") (param i32) unreachable)"#,
    );
    assert!(
        matches!(load(&trap), Err(LoadError::Trap { export, .. }) if export == "__describe_module__")
    );
    let spin = module(
        "",
        &format!(
            r#"(func (export "__preinit__00_spin") (loop br 0)) {}"#,
            describe_writing(0, 0)
        ),
    );
    let started = std::time::Instant::now();
    assert!(
        matches!(load(&spin), Err(LoadError::Trap { export, .. }) if export == "__preinit__00_spin")
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "an infinite loop must be cut off"
    );
    // A sink write from far outside memory traps instead of reading host memory.
    let wild = module(
        "",
        r#"(func (export "__describe_module__") (param $s i32)
        (i32.store (i32.const 8) (i32.const 16))
        (drop (call $sink_write (local.get $s) (i32.const 65530) (i32.const 8))))"#,
    );
    assert!(matches!(load(&wild), Err(LoadError::Trap { .. })));
}
