//! Hosts, placement and signed modules, on SQLite and PostgreSQL.
//!
//! Protects: host registration and heartbeats (leases renewed), a database
//! placed on the host of its first publish and refused to any other host
//! with where it lives, and module signing: a valid module is stored
//! content-addressed with a manifest that verifies, an invalid one or a
//! credential without deploy stores nothing.

#[path = "support/harness.rs"]
mod harness;

use std::sync::Arc;

use control_plane::{
    Config, ControlPlane, Error, ModuleSigning, ModuleValidator, NewToken, Principal, Scope, Store,
    LEASE_MS,
};
use harness::Harness;
use orrery_api::manifest::SigningKey;
use orrery_objstore::{ModuleHash, ModuleStore, ObjectStoreUrl};

const PASSWORD: &str = "correct horse 7";

on_both_backends!(control_plane::SignupMode::Open =>
    hosts_register_heartbeat_and_hold_their_databases,
    modules_are_validated_stored_and_signed,
);

async fn account(h: &Harness, email: &str) -> Principal {
    let logged_in = h.cp.signup(email, PASSWORD, None, None).await.unwrap();
    h.cp.authenticate(&logged_in.session).await.unwrap()
}

async fn hosts_register_heartbeat_and_hold_their_databases(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    h.cp.create_database(&ann, "chat", None).await.unwrap();

    let a =
        h.cp.register_host("host-a", "http://127.0.0.1:7001")
            .await
            .unwrap();
    assert_eq!(a.address, "http://127.0.0.1:7001");
    h.cp.register_host("host-b", "http://127.0.0.1:7002")
        .await
        .unwrap();
    for (id, address) in [("", "http://x"), ("a b", "http://x"), ("ok", "ftp://x")] {
        let refused = h.cp.register_host(id, address).await.unwrap_err();
        assert!(matches!(refused, Error::InvalidRequest(_)), "{refused}");
    }
    let hosts: Vec<String> =
        h.cp.list_hosts()
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
    assert_eq!(hosts, ["host-a", "host-b"]);

    assert_eq!(h.cp.placement("chat").await.unwrap(), None);
    let placed = h.cp.place_database("chat", "host-a").await.unwrap();
    assert_eq!((placed.host_id.as_str(), placed.generation), ("host-a", 1));
    assert_eq!(placed.expires_at_ms, harness::START_MS + LEASE_MS);
    // Again from its holder: the same placement.
    assert_eq!(
        h.cp.place_database("chat", "host-a")
            .await
            .unwrap()
            .generation,
        1
    );
    // Another host is told where it lives.
    let elsewhere = h.cp.place_database("chat", "host-b").await.unwrap_err();
    assert!(matches!(elsewhere, Error::Conflict(_)), "{elsewhere}");
    assert!(
        elsewhere.to_string().contains("http://127.0.0.1:7001"),
        "{elsewhere}"
    );
    let unknown = h.cp.place_database("nope", "host-a").await.unwrap_err();
    assert!(matches!(unknown, Error::NotFound { .. }), "{unknown}");

    // A heartbeat renews the lease and lists the host's databases.
    h.clock.advance_ms(10_000);
    assert_eq!(h.cp.heartbeat("host-a").await.unwrap(), ["chat"]);
    assert!(h.cp.heartbeat("host-b").await.unwrap().is_empty());
    let renewed = h.cp.placement("chat").await.unwrap().unwrap();
    assert_eq!(renewed.expires_at_ms, harness::START_MS + 10_000 + LEASE_MS);
    let stranger = h.cp.heartbeat("host-z").await.unwrap_err();
    assert!(matches!(stranger, Error::NotFound { .. }), "{stranger}");
}

/// Accepts modules that start with the wasm magic, like a runtime would
/// refuse anything else.
struct MagicValidator;

impl ModuleValidator for MagicValidator {
    fn validate(&self, wasm: &[u8]) -> Result<(), String> {
        if wasm.starts_with(b"\0asm") {
            Ok(())
        } else {
            Err("not a WebAssembly module".into())
        }
    }
}

async fn modules_are_validated_stored_and_signed(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    h.cp.create_database(&ann, "chat", None).await.unwrap();
    let store = ModuleStore::open(&ObjectStoreUrl::Memory).unwrap();
    let key = SigningKey::from_seed([7; 32]);
    let verifying = key.verifying_key();
    let cp = ControlPlane::new(
        Store::connect(&h.url).await.unwrap(),
        Config {
            signup: control_plane::SignupMode::Open,
            clock: Arc::new(h.clock.clone()),
        },
    )
    .with_module_signing(ModuleSigning::new(
        store.clone(),
        key,
        Arc::new(MagicValidator),
    ));
    assert_eq!(cp.module_verifying_key(), Some(verifying));
    // Without signing set up, signing is an error, not a silent success.
    let unset =
        h.cp.sign_module(&ann, "chat", b"\0asm1".to_vec())
            .await
            .unwrap_err();
    assert!(matches!(unset, Error::Internal(_)), "{unset}");

    let wasm = b"\0asm version one".to_vec();
    let signed = cp.sign_module(&ann, "chat", wasm.clone()).await.unwrap();
    assert_eq!(signed.version, 1);
    let hash = ModuleHash::parse(&signed.module_sha256).unwrap();
    assert_eq!(hash, ModuleHash::of(&wasm));
    let loaded = store.load_verified(&hash, &verifying).await.unwrap();
    assert_eq!(loaded.wasm, wasm);
    assert_eq!(loaded.manifest.database(), "chat");
    assert_eq!(
        loaded.manifest.published_by(),
        ann.identity.to_hex().as_str()
    );
    assert_eq!(
        loaded.manifest.published_at_unix_ms(),
        harness::START_MS as u64
    );
    // The version follows the recorded publishes.
    cp.record_publish(&ann, "chat", &signed.module_sha256, None)
        .await
        .unwrap();
    let next = cp
        .sign_module(&ann, "chat", b"\0asm version two".to_vec())
        .await
        .unwrap();
    assert_eq!(next.version, 2);

    // An invalid module is refused and nothing is stored.
    let bad = b"not wasm".to_vec();
    let refused = cp.sign_module(&ann, "chat", bad.clone()).await.unwrap_err();
    assert!(matches!(refused, Error::InvalidRequest(_)), "{refused}");
    assert!(
        refused.to_string().contains("not a WebAssembly module"),
        "{refused}"
    );
    assert!(store.get_module(&ModuleHash::of(&bad)).await.is_err());

    // A read token, or another account, signs nothing.
    let read = cp
        .create_token(
            &ann,
            NewToken {
                name: "reader".into(),
                scope: Scope::Read,
                databases: None,
                expires_in_ms: None,
            },
            None,
        )
        .await
        .unwrap();
    let reader = cp.authenticate(&read.token).await.unwrap();
    let other = b"\0asm by a reader".to_vec();
    let refused = cp
        .sign_module(&reader, "chat", other.clone())
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Forbidden(_)), "{refused}");
    let ben = account(&h, "ben@example.com").await;
    let refused = cp
        .sign_module(&ben, "chat", other.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::NotFound { .. } | Error::Forbidden(_)),
        "{refused}"
    );
    assert!(store.get_module(&ModuleHash::of(&other)).await.is_err());
}
