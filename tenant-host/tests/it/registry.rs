//! The registry on disk: what `Registry::open` does with every state a
//! crash, a failing disk or a damaged file can leave (never delete on doubt,
//! one broken database never stops the others, unfinished creations go),
//! the module swap as one durable step with its migration, and the
//! `database.json` spellings older data directories use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orrery_module::{module_hash, CallerContext, ReducerOutcome, Runtime};
use spacetimedb_lib::{ConnectionId, Identity};
use tenant_host::hosting::{Host, HostConfig};
use tenant_host::registry::{
    is_valid_name, parse_name_or_identity, BrokenReason, Entry, NameOrIdentity, Registry,
    RegistryError,
};

use crate::harness::{enc, rows, OWNER};
use crate::modules::module_bytes;

fn owner() -> Identity {
    OWNER
}

fn open(root: &Path) -> Registry {
    let host = Arc::new(Host::new(
        Runtime::new().unwrap(),
        HostConfig {
            workers: 1,
            ..HostConfig::default()
        },
    ));
    Registry::open(root, host).expect("the registry opens")
}

fn create(registry: &Registry, name: &str, module: &str) -> Arc<Entry> {
    registry
        .create(owner(), Some(name.into()), None, &module_bytes(module))
        .unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

fn call(entry: &Entry, reducer: &str, args: Vec<u8>) -> ReducerOutcome {
    let caller = CallerContext {
        sender: OWNER,
        connection_id: ConnectionId::ZERO,
        timestamp_micros: 1_767_225_600_000_000,
    };
    entry
        .database()
        .call_reducer(reducer, caller, args)
        .unwrap()
        .outcome
}

/// Creates `name` from chat with one channel of its own, `kept`, durable.
fn chat_with_data(registry: &Registry, name: &str) -> (Identity, PathBuf) {
    let entry = create(registry, name, "chat");
    let made = call(&entry, "create_channel", enc("kept"));
    assert!(made.is_committed(), "{made:?}");
    entry.database().storage().flush().unwrap();
    (entry.identity(), entry.dir().to_path_buf())
}

fn channel_names(entry: &Entry) -> Vec<String> {
    rows(entry.database().storage(), "channel")
        .into_iter()
        .map(|row| format!("{:?}", row[1]))
        .collect()
}

fn serving(registry: &Registry, name: &str) -> Arc<Entry> {
    match registry.resolve(name) {
        Ok(Some(entry)) => entry,
        Ok(None) => panic!("{name} is unknown"),
        Err(e) => panic!("{name} does not serve: {e}"),
    }
}

fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn meta(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("database.json")).unwrap()).unwrap()
}

fn write_meta(dir: &Path, meta: &serde_json::Value) {
    std::fs::write(
        dir.join("database.json"),
        serde_json::to_vec_pretty(meta).unwrap(),
    )
    .unwrap();
}

/// The module files of a database directory, sorted.
fn module_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("modules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file below `dir` with its bytes, to show that nothing changed.
fn snapshot_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.components().any(|c| c.as_os_str() == "logs") {
                // The module log is appended by the host itself.
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn assert_broken(registry: &Registry, name_or_identity: &str, reason: BrokenReason) {
    match registry.resolve(name_or_identity) {
        Err(RegistryError::Broken { reason: got, .. }) => assert_eq!(got, reason),
        Err(e) => panic!("{name_or_identity}: expected Broken({reason:?}), got {e}"),
        Ok(entry) => panic!(
            "{name_or_identity}: expected Broken({reason:?}), got {:?}",
            entry.map(|e| e.identity())
        ),
    }
}

// Protects "never delete on doubt": a `database.json` that cannot be read
// (here it is a directory, so reading fails with an I/O error other than
// NotFound, as EIO or EACCES would) keeps every byte of the database, lists
// it broken, and the other database serves. Once the fault is gone the
// database serves again with its data. Before the fix the whole directory
// was removed.
#[test]
fn unreadable_metadata_keeps_the_database_and_the_others_serve() {
    let root = tempfile::tempdir().unwrap();
    let (id, dir) = {
        let registry = open(root.path());
        chat_with_data(&registry, "other");
        chat_with_data(&registry, "victim")
    };
    let meta_file = dir.join("database.json");
    let saved = root.path().join("saved.json");
    std::fs::rename(&meta_file, &saved).unwrap();
    std::fs::create_dir(&meta_file).unwrap();
    let before = snapshot_tree(&dir);
    {
        let registry = open(root.path());
        assert_eq!(snapshot_tree(&dir), before, "open changed the files");
        assert_broken(&registry, &id.to_hex(), BrokenReason::Metadata);
        let broken = registry.broken();
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].identity(), id);
        assert_eq!(broken[0].owner(), None);
        assert!(
            broken[0].detail().contains("database.json"),
            "{}",
            broken[0].detail()
        );
        // The name is not known without the metadata; the identity is.
        assert!(registry.resolve("victim").unwrap().is_none());
        let other = serving(&registry, "other");
        assert!(call(&other, "create_channel", enc("more")).is_committed());
        assert!(registry.all().iter().all(|e| e.identity() != id));
    }
    std::fs::remove_dir(&meta_file).unwrap();
    std::fs::rename(&saved, &meta_file).unwrap();
    let registry = open(root.path());
    assert!(registry.broken().is_empty());
    let victim = serving(&registry, "victim");
    assert!(channel_names(&victim).iter().any(|n| n.contains("kept")));
}

// Protects "never delete on doubt" for damaged bytes: a `database.json`
// that does not parse is kept byte for byte and listed broken.
#[test]
fn unparseable_metadata_is_kept_and_listed_broken() {
    let root = tempfile::tempdir().unwrap();
    let (id, dir) = {
        let registry = open(root.path());
        chat_with_data(&registry, "victim")
    };
    std::fs::write(dir.join("database.json"), b"{\"owner\": \"trunc").unwrap();
    let before = snapshot_tree(&dir);
    let registry = open(root.path());
    assert_eq!(snapshot_tree(&dir), before);
    assert_broken(&registry, &id.to_hex(), BrokenReason::Metadata);
}

// Protects "never delete on doubt" for the module: a module file that cannot
// be read keeps the database (owner and names known) and answers by name.
#[test]
fn unreadable_module_is_kept_and_answers_broken_by_name() {
    let root = tempfile::tempdir().unwrap();
    let (id, dir) = {
        let registry = open(root.path());
        chat_with_data(&registry, "victim")
    };
    let module = dir
        .join("modules")
        .join(format!("{}.wasm", hex(&module_hash(&module_bytes("chat")))));
    assert!(module.is_file(), "modules are stored by hash");
    std::fs::remove_file(&module).unwrap();
    std::fs::create_dir(&module).unwrap();
    let before = snapshot_tree(&dir);
    let registry = open(root.path());
    assert_eq!(snapshot_tree(&dir), before);
    assert_broken(&registry, "victim", BrokenReason::Module);
    assert_eq!(registry.broken()[0].owner(), Some(owner()));
    assert_eq!(registry.owned_by(&owner()), vec![id]);
    // Every operation that names it gets the same answer, and nothing
    // can take its name or identity.
    let wasm = module_bytes("chat");
    for result in [
        registry.update(&id, &owner(), &wasm, false).map(|_| ()),
        registry.delete(&id, &owner()),
        registry.lock(&id, &owner()),
        registry.create(owner(), None, Some(id), &wasm).map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(RegistryError::Broken { identity, .. }) if identity == id),
            "{result:?}"
        );
    }
    assert!(matches!(
        registry.create(owner(), Some("victim".into()), None, &wasm),
        Err(RegistryError::NameTaken(_))
    ));
    assert!(dir.is_dir());
}

// Protects "one broken database never stops every tenant": a commit log
// corrupted in the middle (a damaged record followed by intact ones) fails
// that database's recovery only; before the fix `Registry::open` failed
// for every database.
#[test]
fn a_database_whose_storage_does_not_recover_is_broken_and_the_others_serve() {
    let root = tempfile::tempdir().unwrap();
    let (id, dir) = {
        let registry = open(root.path());
        chat_with_data(&registry, "healthy");
        let (id, dir) = chat_with_data(&registry, "victim");
        let victim = serving(&registry, "victim");
        assert!(call(&victim, "create_channel", enc("later")).is_committed());
        victim.database().storage().flush().unwrap();
        (id, dir)
    };
    let segment = dir
        .join("storage")
        .join("log")
        .join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).expect("the first log segment exists");
    // Segment header (28 bytes), then the first record's header (16): flip
    // a byte of the first record's payload.
    bytes[28 + 16 + 8] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let before = snapshot_tree(&dir);
    let registry = open(root.path());
    assert_broken(&registry, "victim", BrokenReason::Storage);
    assert_broken(&registry, &id.to_hex(), BrokenReason::Storage);
    assert_eq!(snapshot_tree(&dir), before, "the damaged files are kept");
    let healthy = serving(&registry, "healthy");
    assert!(channel_names(&healthy).iter().any(|n| n.contains("kept")));
    assert!(call(&healthy, "create_channel", enc("still")).is_committed());
}

// Protects the one removal open may do: a creation that provably never
// became ready (`state: creating`, or no `database.json` and nothing but
// temporary files) is removed; a directory without `database.json` that
// holds anything else is not.
#[test]
fn only_creations_that_never_became_ready_are_removed() {
    let root = tempfile::tempdir().unwrap();
    let (creating, _) = {
        let registry = open(root.path());
        chat_with_data(&registry, "creating")
    };
    let creating_dir = root.path().join(creating.to_hex().as_str());
    let mut m = meta(&creating_dir);
    m["state"] = "creating".into();
    write_meta(&creating_dir, &m);

    let empty = root.path().join("ab".repeat(32));
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join(".tmp.database.json.1.0"), b"{").unwrap();

    let unknown = root.path().join("cd".repeat(32));
    std::fs::create_dir_all(unknown.join("storage")).unwrap();
    std::fs::write(unknown.join("storage").join("data"), b"precious").unwrap();

    let registry = open(root.path());
    assert!(!creating_dir.exists());
    assert!(!empty.exists());
    assert_eq!(
        std::fs::read(unknown.join("storage").join("data")).unwrap(),
        b"precious"
    );
    assert_broken(&registry, &"cd".repeat(32), BrokenReason::Metadata);
    assert!(registry.resolve("creating").unwrap().is_none());
}

// Protects deletion: `delete` marks the database `deleting` before removing
// it, so a crash in the middle is finished on open rather than resurrecting
// half a database; and the spelling on disk is `deleting`.
#[test]
fn a_deletion_cut_by_a_crash_is_finished_on_open() {
    let root = tempfile::tempdir().unwrap();
    let (_, dir) = {
        let registry = open(root.path());
        chat_with_data(&registry, "gone")
    };
    let mut m = meta(&dir);
    m["state"] = "deleting".into();
    write_meta(&dir, &m);
    let registry = open(root.path());
    assert!(!dir.exists());
    assert!(registry.resolve("gone").unwrap().is_none());
    assert!(registry.broken().is_empty());
}

/// Creates `name` from chat, updates it to chat-v2 and returns its
/// identity and directory; the registry is closed on return.
fn chat_updated_to_v2(root: &Path, name: &str) -> (Identity, PathBuf) {
    let registry = open(root);
    let (id, dir) = chat_with_data(&registry, name);
    registry
        .update(&id, &owner(), &module_bytes("chat-v2"), false)
        .unwrap_or_else(|e| panic!("chat → chat-v2: {e}"));
    (id, dir)
}

// Protects the module swap as one durable step: the state a crash leaves
// between the migration's commit and the switch of `database.json`'s
// module pointer (the migrated schema on disk, the pointer and the file of
// the old module) reopens with the new module, the one the schema belongs
// to, finishes the switch and removes the old file. Before the fix the old
// module served against the new schema.
#[test]
fn a_crash_after_the_migration_commit_reopens_with_the_new_module() {
    let root = tempfile::tempdir().unwrap();
    let v1 = module_hash(&module_bytes("chat"));
    let v2 = module_hash(&module_bytes("chat-v2"));
    let (_, dir) = chat_updated_to_v2(root.path(), "swapped");
    assert_eq!(meta(&dir)["module"], hex(&v2));
    assert_eq!(module_files(&dir), [format!("{}.wasm", hex(&v2))]);
    // Roll the directory back to the moment before the pointer switch.
    std::fs::write(
        dir.join("modules").join(format!("{}.wasm", hex(&v1))),
        module_bytes("chat"),
    )
    .unwrap();
    let mut m = meta(&dir);
    m["module"] = hex(&v1).into();
    write_meta(&dir, &m);

    let registry = open(root.path());
    let entry = serving(&registry, "swapped");
    assert_eq!(
        entry.module_hash(),
        v2,
        "the old module serves the new schema"
    );
    let karma = call(&entry, "add_karma", enc(&1u32));
    assert!(
        matches!(&karma, ReducerOutcome::Failed { message } if message == "no such user"),
        "chat-v2's reducer did not run: {karma:?}"
    );
    assert!(channel_names(&entry).iter().any(|n| n.contains("kept")));
    assert_eq!(meta(&dir)["module"], hex(&v2));
    assert_eq!(module_files(&dir), [format!("{}.wasm", hex(&v2))]);
}

// Protects the other side of the crash window: the new module file written
// but the migration never committed (a crash before the commit) reopens
// with the old module, and the stray file is collected.
#[test]
fn a_crash_before_the_migration_commit_reopens_with_the_old_module() {
    let root = tempfile::tempdir().unwrap();
    let v1 = module_hash(&module_bytes("chat"));
    let v2 = module_hash(&module_bytes("chat-v2"));
    let dir = {
        let registry = open(root.path());
        chat_with_data(&registry, "unswapped").1
    };
    std::fs::write(
        dir.join("modules").join(format!("{}.wasm", hex(&v2))),
        module_bytes("chat-v2"),
    )
    .unwrap();
    std::fs::write(dir.join("modules").join(".tmp.x.wasm.1.2"), b"half").unwrap();
    let registry = open(root.path());
    let entry = serving(&registry, "unswapped");
    assert_eq!(entry.module_hash(), v1);
    assert!(matches!(
        call(&entry, "add_karma", enc(&1u32)),
        ReducerOutcome::NoSuchReducer { .. }
    ));
    assert_eq!(module_files(&dir), [format!("{}.wasm", hex(&v1))]);
}

// Protects the failure path of an update: a refused migration leaves the
// pointer, the module files and the serving module as they were; a
// successful one leaves only the new module's file.
#[test]
fn a_refused_update_leaves_the_module_files_as_they_were() {
    let root = tempfile::tempdir().unwrap();
    let v1 = module_hash(&module_bytes("chat"));
    let v2 = module_hash(&module_bytes("chat-v2"));
    let (id, dir) = chat_updated_to_v2(root.path(), "stays");
    let registry = open(root.path());
    let refused = registry.update(&id, &owner(), &module_bytes("chat"), false);
    assert!(
        matches!(refused, Err(RegistryError::Publish(_))),
        "{:?}",
        refused.map(|_| ())
    );
    assert_eq!(meta(&dir)["module"], hex(&v2));
    assert_eq!(module_files(&dir), [format!("{}.wasm", hex(&v2))]);
    assert_eq!(serving(&registry, "stays").module_hash(), v2);
    // Clearing back to chat switches everything to chat.
    registry
        .update(&id, &owner(), &module_bytes("chat"), true)
        .unwrap();
    assert_eq!(meta(&dir)["module"], hex(&v1));
    assert_eq!(module_files(&dir), [format!("{}.wasm", hex(&v1))]);
    drop(registry);
    let registry = open(root.path());
    assert_eq!(serving(&registry, "stays").module_hash(), v1);
}

// Protects existing data directories: the layout written before modules
// were stored by hash (`module.wasm`, no `module` in `database.json`,
// `state` spelled `ready`) opens, and is moved to the new layout.
#[test]
fn a_data_directory_of_the_previous_layout_opens_and_is_upgraded() {
    let root = tempfile::tempdir().unwrap();
    let v1 = module_hash(&module_bytes("chat"));
    let (_, dir) = {
        let registry = open(root.path());
        chat_with_data(&registry, "legacy")
    };
    // The previous layout; `st_module` is absent too in such databases,
    // which only makes the record older than the pointer, as here.
    std::fs::remove_dir_all(dir.join("modules")).unwrap();
    std::fs::write(dir.join("module.wasm"), module_bytes("chat")).unwrap();
    let old = serde_json::json!({
        "owner": owner().to_hex().to_string(),
        "names": ["legacy"],
        "locked": false,
        "state": "ready",
        "initial_program": hex(&v1),
    });
    write_meta(&dir, &old);
    let registry = open(root.path());
    let entry = serving(&registry, "legacy");
    assert_eq!(entry.module_hash(), v1);
    assert!(channel_names(&entry).iter().any(|n| n.contains("kept")));
    assert_eq!(meta(&dir)["module"], hex(&v1));
    assert_eq!(meta(&dir)["state"], "ready");
    assert_eq!(module_files(&dir), [format!("{}.wasm", hex(&v1))]);
    assert!(!dir.join("module.wasm").exists());
}

// Protects the spelling of `state`: an unknown state is not guessed at (the
// database is listed broken, its files kept), not treated as unfinished.
#[test]
fn an_unknown_state_is_broken_not_removed() {
    let root = tempfile::tempdir().unwrap();
    let (_, dir) = {
        let registry = open(root.path());
        chat_with_data(&registry, "future")
    };
    let mut m = meta(&dir);
    m["state"] = "migrating-to-v9".into();
    write_meta(&dir, &m);
    let registry = open(root.path());
    assert!(dir.is_dir());
    assert_broken(
        &registry,
        &registry.broken()[0].identity().to_hex(),
        BrokenReason::Metadata,
    );
}

// Protects the first publish's log: what `init` writes reaches the
// database's log like any call's output (the HTTP route is tested in
// orrery-edge).
#[test]
fn what_init_logs_on_the_first_publish_is_in_the_log() {
    let root = tempfile::tempdir().unwrap();
    let registry = open(root.path());
    let entry = create(&registry, "logged", "chat");
    let tail = entry.database().log().tail(50);
    assert!(
        tail.iter()
            .any(|e| e.message.contains("init created the general channel")),
        "{tail:#?}"
    );
}

#[test]
fn name_grammar() {
    for good in ["a", "chat", "chat-2", "a-b-c", "0x", "9lives"] {
        assert!(is_valid_name(good), "{good}");
    }
    for bad in [
        "",
        "-a",
        "a-",
        "a--b",
        "Chat",
        "a_b",
        "a.b",
        "a b",
        &"ab".repeat(32),
    ] {
        assert!(!is_valid_name(bad), "{bad}");
    }
}

#[test]
fn names_or_identities() {
    let hex = "c2".repeat(32);
    let id = Identity::from_hex(&hex).unwrap();
    assert_eq!(
        parse_name_or_identity(&hex).unwrap(),
        NameOrIdentity::Identity(id)
    );
    assert_eq!(
        parse_name_or_identity(&format!("0x{hex}")).unwrap(),
        NameOrIdentity::Identity(id)
    );
    assert_eq!(
        parse_name_or_identity("chat").unwrap(),
        NameOrIdentity::Name("chat".into())
    );
    assert!(matches!(
        parse_name_or_identity("Chat"),
        Err(RegistryError::InvalidName(_))
    ));
}
