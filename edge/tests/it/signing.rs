//! Signed modules at the edge: with a `ModuleSigner` and a registry
//! `ModuleVerifier`, a publish runs only the bytes the verifier vouches
//! for. A module the verifier refuses (unsigned, or its signed copy
//! tampered) is refused with the reason and counted in the metrics, and the
//! database keeps serving the module it had.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use orrery_edge::access::{Access, BoxFuture, Grant, ModuleSigner, Refusal};
use spacetimedb_lib::Identity;
use tenant_host::registry::ModuleVerifier;

use crate::database_api::{keys, mint, server_verified};
use crate::modules::module_bytes;

/// A stand-in object store of signed modules: the signer stores, the
/// verifier answers what is stored. `tamper` makes the signer store
/// altered bytes, as an attacker with write access to the store would.
#[derive(Clone, Default)]
struct Signed {
    inner: Arc<Mutex<SignedInner>>,
}

#[derive(Default)]
struct SignedInner {
    modules: HashMap<[u8; 32], Vec<u8>>,
    tamper: bool,
    signed: Vec<String>,
}

impl ModuleSigner for Signed {
    fn sign<'a>(
        &'a self,
        _grant: Option<&'a Grant>,
        _publisher: Identity,
        database: &'a str,
        wasm: axum::body::Bytes,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        let mut inner = self.inner.lock().unwrap();
        let mut stored = wasm.to_vec();
        if inner.tamper {
            let middle = stored.len() / 2;
            stored[middle] ^= 1;
        }
        inner
            .modules
            .insert(orrery_api::manifest::sha256(&wasm), stored);
        inner.signed.push(database.to_owned());
        Box::pin(async { Ok(()) })
    }
}

impl ModuleVerifier for Signed {
    fn verified(&self, sha256: [u8; 32]) -> Result<Vec<u8>, String> {
        self.inner
            .lock()
            .unwrap()
            .modules
            .get(&sha256)
            .cloned()
            .ok_or_else(|| "no signed manifest for this module".to_owned())
    }
}

fn send(base: &str, bearer: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut request = ureq::request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {bearer}"));
    if path.contains("/call/") {
        request = request.set("Content-Type", "application/json");
    }
    match request.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn refused_count(base: &str) -> String {
    let (_, body) = send(base, "", "GET", "/metrics", b"");
    body.lines()
        .find(|l| l.starts_with("orrery_modules_refused_total "))
        .unwrap_or_else(|| panic!("no refusal counter in:\n{body}"))
        .to_owned()
}

#[test]
fn a_refused_module_is_not_run_and_the_previous_one_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let signed = Signed::default();
    let access = Access {
        signer: Some(Arc::new(signed.clone())),
        ..Access::open()
    };
    let server = server_verified(
        dir.path(),
        keys(dir.path()),
        Default::default(),
        access,
        Some(Arc::new(signed.clone())),
    );
    let base = server.base.as_str();
    let me = mint(base);

    let (status, body) = send(base, &me, "PUT", "/v1/database/chat", &module_bytes("chat"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(signed.inner.lock().unwrap().signed, ["chat"]);
    let (status, body) = send(
        base,
        &me,
        "POST",
        "/v1/database/chat/call/set_name",
        br#"["v1"]"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(refused_count(base), "orrery_modules_refused_total 0");

    // The signed copy is tampered: the update is refused and says why.
    signed.inner.lock().unwrap().tamper = true;
    let (status, body) = send(
        base,
        &me,
        "PUT",
        "/v1/database/chat?clear=true",
        &module_bytes("bank"),
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("module refused"), "{body}");
    assert!(body.contains("differs"), "{body}");
    assert_eq!(refused_count(base), "orrery_modules_refused_total 1");

    // Nothing changed: the chat module serves, with its data.
    let (status, body) = send(
        base,
        &me,
        "POST",
        "/v1/database/chat/sql",
        b"SELECT * FROM user",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("v1"), "{body}");
    let (status, body) = send(
        base,
        &me,
        "POST",
        "/v1/database/chat/call/set_name",
        br#"["v1 again"]"#,
    );
    assert_eq!(status, 200, "{body}");

    // A first publish of a tampered module creates nothing.
    let (status, body) = send(
        base,
        &me,
        "PUT",
        "/v1/database/ledger",
        &module_bytes("bank"),
    );
    assert_eq!(status, 503, "{body}");
    let (status, body) = send(
        base,
        &me,
        "POST",
        "/v1/database/ledger/sql",
        b"SELECT * FROM account",
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(refused_count(base), "orrery_modules_refused_total 2");
}

#[test]
fn without_a_signer_every_module_is_refused_as_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let signed = Signed::default();
    let server = server_verified(
        dir.path(),
        keys(dir.path()),
        Default::default(),
        Access::open(),
        Some(Arc::new(signed)),
    );
    let base = server.base.as_str();
    let me = mint(base);
    let (status, body) = send(base, &me, "PUT", "/v1/database/chat", &module_bytes("chat"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no signed manifest"), "{body}");
    assert_eq!(refused_count(base), "orrery_modules_refused_total 1");
}
