// Protects the compile cache and the artifact trust rule: each module is
// compiled once per content hash (a second compile, or one racing it, is a
// memory hit); a fresh runtime on the same artifact directory loads the
// precompiled artifact and the module works; an artifact that was tampered
// with, truncated, written under another directory's key, renamed from
// another module, or written by an engine with other settings is never
// loaded: it is rejected (or not even looked at), the module is compiled from
// wasm again and still works.

use std::fs;
use std::path::Path;

use orrery_module::{module_hash, CacheStats, Runtime, RuntimeConfig};
use storage::{Database, DbOptions};
use wasmtime::OptLevel;

use crate::harness::{assert_committed, call, enc, options, rows, NOW, OWNER};
use crate::modules::module_bytes;

fn with_dir(dir: &Path) -> Runtime {
    Runtime::with_config(RuntimeConfig {
        artifact_dir: Some(dir.to_path_buf()),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// Hosts `bank` on `runtime`, creates its database, seeds ten accounts and
/// moves money: the compiled code really runs.
fn bank_works(runtime: &Runtime) {
    let module = runtime
        .host(&module_bytes("bank"), options())
        .unwrap_or_else(|e| panic!("bank cannot be hosted: {e}"));
    let db = Database::in_memory(DbOptions::default());
    assert_committed(&module.create_database(&db, OWNER, NOW), "create_database");
    assert_committed(&call(&module, &db, "seed", &enc(&10u64)), "seed(10)");
    assert_eq!(rows(&db, "account").len(), 10);
    let transfer = [enc(&1u64), enc(&2u64), enc(&5i64)].concat();
    assert_committed(&call(&module, &db, "transfer", &transfer), "transfer");
}

fn stats(
    compiles: u64,
    memory_hits: u64,
    artifact_hits: u64,
    rejects: u64,
    writes: u64,
) -> CacheStats {
    CacheStats {
        compiles,
        memory_hits,
        artifact_hits,
        artifact_rejects: rejects,
        artifact_writes: writes,
    }
}

fn bank_artifact(runtime: &Runtime) -> std::path::PathBuf {
    runtime
        .artifact_path(&module_hash(&module_bytes("bank")))
        .expect("the runtime has an artifact directory")
}

#[test]
fn second_compile_of_the_same_bytes_is_a_memory_hit() {
    let runtime = Runtime::new().unwrap();
    let wasm = module_bytes("bank");
    runtime.compile(&wasm).unwrap();
    assert_eq!(runtime.cache_stats(), stats(1, 0, 0, 0, 0));
    runtime.compile(&wasm).unwrap();
    assert_eq!(runtime.cache_stats(), stats(1, 1, 0, 0, 0));
    // Hosting goes through the same cache, and clones share it.
    bank_works(&runtime.clone());
    assert_eq!(runtime.cache_stats(), stats(1, 2, 0, 0, 0));
    // Other bytes are another module.
    runtime.compile(&module_bytes("chat")).unwrap();
    assert_eq!(runtime.cache_stats().compiles, 2);
}

#[test]
fn fresh_runtime_loads_the_artifact_and_the_module_works() {
    let dir = tempfile::tempdir().unwrap();
    let first = with_dir(dir.path());
    bank_works(&first);
    assert_eq!(first.cache_stats(), stats(1, 0, 0, 0, 1));
    assert!(bank_artifact(&first).is_file());

    let second = with_dir(dir.path());
    bank_works(&second);
    assert_eq!(second.cache_stats(), stats(0, 0, 1, 0, 0));
    bank_works(&second);
    assert_eq!(second.cache_stats(), stats(0, 1, 1, 0, 0));
}

/// Writes the bank artifact in `dir`, damages it with `tamper`, then checks
/// that a fresh runtime rejects it, recompiles, works, and overwrites it with
/// a good artifact that the next runtime loads.
fn rejected_after(dir: &Path, tamper: impl FnOnce(&Path)) {
    let writer = with_dir(dir);
    writer.compile(&module_bytes("bank")).unwrap();
    let path = bank_artifact(&writer);
    tamper(&path);

    let reader = with_dir(dir);
    bank_works(&reader);
    assert_eq!(reader.cache_stats(), stats(1, 0, 0, 1, 1));

    let next = with_dir(dir);
    bank_works(&next);
    assert_eq!(next.cache_stats(), stats(0, 0, 1, 0, 0));
}

#[test]
fn artifact_with_a_flipped_code_byte_is_rejected_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    rejected_after(dir.path(), |path| {
        let mut bytes = fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        fs::write(path, bytes).unwrap();
    });
}

#[test]
fn artifact_with_a_flipped_mac_byte_is_rejected_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    rejected_after(dir.path(), |path| {
        let mut bytes = fs::read(path).unwrap();
        bytes[8] ^= 0x80;
        fs::write(path, bytes).unwrap();
    });
}

#[test]
fn truncated_artifact_is_rejected_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    rejected_after(dir.path(), |path| {
        let bytes = fs::read(path).unwrap();
        fs::write(path, &bytes[..bytes.len() - 1]).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    rejected_after(dir.path(), |path| {
        fs::write(path, &fs::read(path).unwrap()[..20]).unwrap();
    });
}

#[test]
fn artifact_written_under_another_directory_key_is_not_loaded() {
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = with_dir(elsewhere.path());
    foreign.compile(&module_bytes("bank")).unwrap();
    let foreign_file = bank_artifact(&foreign);

    let dir = tempfile::tempdir().unwrap();
    rejected_after(dir.path(), |path| {
        // Same engine settings, so the same file name; only the key differs.
        assert_eq!(path.file_name(), foreign_file.file_name());
        fs::copy(&foreign_file, path).unwrap();
    });
}

#[test]
fn artifact_of_another_module_renamed_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let writer = with_dir(dir.path());
    let chat = module_bytes("chat");
    writer.compile(&chat).unwrap();
    let chat_file = writer.artifact_path(&module_hash(&chat)).unwrap();
    rejected_after(dir.path(), |path| {
        fs::copy(&chat_file, path).unwrap();
    });
}

#[test]
fn artifact_of_other_engine_settings_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let unoptimised = Runtime::with_config(RuntimeConfig {
        artifact_dir: Some(dir.path().to_path_buf()),
        opt_level: OptLevel::None,
        ..RuntimeConfig::default()
    })
    .unwrap();
    bank_works(&unoptimised);
    assert_eq!(unoptimised.cache_stats(), stats(1, 0, 0, 0, 1));
    let other_file = bank_artifact(&unoptimised);

    // Other settings look under another name: a plain miss, then a compile.
    let optimised = with_dir(dir.path());
    assert_ne!(bank_artifact(&optimised), other_file);
    bank_works(&optimised);
    assert_eq!(optimised.cache_stats(), stats(1, 0, 0, 0, 1));

    // Copied under this engine's name, the MAC (which covers the engine
    // fingerprint) does not verify.
    rejected_after(dir.path(), |path| {
        fs::copy(&other_file, path).unwrap();
    });
}

#[test]
fn compile_uncached_and_load_artifact_bypass_the_memory_cache() {
    let wasm = module_bytes("bank");
    let hash = module_hash(&wasm);
    let plain = Runtime::new().unwrap();
    assert!(plain.load_artifact(&hash).is_none());
    assert!(plain.artifact_path(&hash).is_none());
    plain.compile_uncached(&wasm).unwrap();
    plain.compile_uncached(&wasm).unwrap();
    assert_eq!(plain.cache_stats(), stats(2, 0, 0, 0, 0));

    let dir = tempfile::tempdir().unwrap();
    let runtime = with_dir(dir.path());
    assert!(
        runtime.load_artifact(&hash).is_none(),
        "nothing written yet"
    );
    runtime.compile(&wasm).unwrap();
    runtime
        .load_artifact(&hash)
        .expect("artifact written by compile");
    runtime
        .load_artifact(&hash)
        .expect("loaded again from disk");
    assert_eq!(runtime.cache_stats(), stats(1, 0, 2, 0, 1));
}

#[test]
fn compile_errors_are_reported_and_not_cached_as_modules() {
    let runtime = Runtime::new().unwrap();
    let error = runtime.compile(b"\0asm\x01\0\0\0garbage").unwrap_err();
    assert!(
        matches!(error, orrery_module::LoadError::Compile(_)),
        "{error:?}"
    );
    runtime.compile(b"\0asm\x01\0\0\0garbage").unwrap_err();
    assert_eq!(runtime.cache_stats(), stats(2, 0, 0, 0, 0));
}

#[test]
fn concurrent_compiles_of_one_module_compile_once() {
    let runtime = Runtime::new().unwrap();
    let wasm = module_bytes("bank");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| runtime.compile(&wasm).unwrap());
        }
    });
    assert_eq!(runtime.cache_stats(), stats(1, 3, 0, 0, 0));
}
