//! End to end on `orrery start` as it runs by default (no `--dev`): the
//! open server is closed. Sign up and create a token through the
//! control-plane API, publish with the token over plain HTTP, call the
//! database at its tenant URL as an app user, read its logs, delete it
//! through the API, and see every refusal on the way say what to do.

#[path = "../../../tests/support/modules.rs"]
mod modules;
#[path = "support/process.rs"]
mod support;

use serde_json::{json, Value};

use support::{send, Orrery};

/// `method` on `path` with an optional bearer and body: status and body.
fn request(
    o: &Orrery,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut r = ureq::request(method, &o.url(path));
    if let Some(bearer) = bearer {
        r = r.set("Authorization", &format!("Bearer {bearer}"));
    }
    if path.starts_with("/api/") || path.contains("/call/") {
        r = r.set("Content-Type", "application/json");
    }
    send(r, Some(body))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn sign_up_create_a_token_publish_call_read_logs_and_delete() {
    let data = tempfile::tempdir().unwrap();
    let o = Orrery::start_closed(data.path(), &[]);
    let wasm = modules::module_bytes("chat");

    // The open server is closed: no token, no publish, and the answer says
    // how to get one.
    let (status, body) = request(&o, "PUT", "/v1/database/chat?host_type=Wasm", None, &wasm);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("orrery token create"), "{body}");
    let (status, minted) = request(&o, "POST", "/v1/identity", None, b"");
    assert_eq!(status, 200, "{minted}");
    let app = json_of(&minted)["token"].as_str().unwrap().to_owned();
    let (status, body) = request(
        &o,
        "PUT",
        "/v1/database/chat?host_type=Wasm",
        Some(&app),
        &wasm,
    );
    assert_eq!(status, 403, "an app identity publishes nothing: {body}");

    // Sign up, then a deploy token for CI.
    let signup = json!({"email": "dev@example.com", "password": "correct horse battery"});
    let (status, body) = request(
        &o,
        "POST",
        "/api/v1/signup",
        None,
        signup.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let session = json_of(&body)["session"].as_str().unwrap().to_owned();
    let account_identity = json_of(&body)["account"]["identity"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = request(
        &o,
        "POST",
        "/api/v1/tokens",
        Some(&session),
        json!({"name": "ci", "scope": "deploy"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let deploy = json_of(&body)["token"].as_str().unwrap().to_owned();

    // Publish with the token over plain HTTP: the account owns the database.
    let (status, body) = request(
        &o,
        "PUT",
        "/v1/database/chat?host_type=Wasm",
        Some(&deploy),
        &wasm,
    );
    assert_eq!(status, 200, "{body}");
    let (status, info) = request(&o, "GET", "/v1/database/chat", None, b"");
    assert_eq!(status, 200, "{info}");
    assert!(
        info.contains(account_identity.trim_start_matches("0x")),
        "owner {account_identity}: {info}"
    );
    let (status, body) = request(&o, "GET", "/api/v1/databases", Some(&session), b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"chat\""), "{body}");

    // An app user calls the database at its tenant URL (the Host header
    // a browser sends for `http://chat.localhost:PORT`).
    let port = o.addr.rsplit(':').next().unwrap().to_owned();
    let (status, body) = send(
        ureq::post(&o.url("/call/set_name"))
            .set("Host", &format!("chat.localhost:{port}"))
            .set("Authorization", &format!("Bearer {app}"))
            .set("Content-Type", "application/json"),
        Some(br#"["app user"]"#),
    );
    assert_eq!(status, 200, "{body}");

    // Logs: the token may read them, the app user may not.
    let (status, body) = request(&o, "GET", "/v1/database/chat/logs", Some(&deploy), b"");
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(&o, "GET", "/v1/database/chat/logs", Some(&app), b"");
    assert_eq!(status, 403, "{body}");

    // Delete through the control-plane API: the host drops it too.
    let (status, body) = request(&o, "DELETE", "/api/v1/databases/chat", Some(&session), b"");
    assert_eq!(status, 428, "a delete is confirmed: {body}");
    let (status, body) = request(
        &o,
        "DELETE",
        "/api/v1/databases/chat?confirm=chat",
        Some(&session),
        b"",
    );
    assert_eq!(status, 204, "{body}");
    let (status, body) = request(&o, "GET", "/v1/database/chat", None, b"");
    assert_eq!(status, 404, "{body}");
    o.stop();
}

// `orrery start --invite-only --operator-email E`: the operator exists from
// the first start, strangers cannot sign up, and an invitation the
// operator makes lets one account in, once.
#[test]
fn invite_only_start_lets_in_whom_the_operator_invites() {
    let data = tempfile::tempdir().unwrap();
    let password = "correct horse battery staple";
    let o = Orrery::start_closed(
        data.path(),
        &[
            "--invite-only",
            "--operator-email",
            "op@example.com",
            "--operator-password",
            password,
        ],
    );
    let signup = |invite: Option<&str>| {
        let mut body = json!({"email": "ann@example.com", "password": password});
        if let Some(invite) = invite {
            body["invite"] = json!(invite);
        }
        request(
            &o,
            "POST",
            "/api/v1/signup",
            None,
            body.to_string().as_bytes(),
        )
    };
    let (status, body) = signup(None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("invit"), "{body}");
    let (status, body) = request(
        &o,
        "POST",
        "/api/v1/login",
        None,
        json!({"email": "op@example.com", "password": password})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let operator = json_of(&body)["session"].as_str().unwrap().to_owned();
    let (status, body) = request(&o, "POST", "/api/v1/admin/invites", Some(&operator), b"{}");
    assert_eq!(status, 201, "{body}");
    let invite = json_of(&body)["invite"].as_str().unwrap().to_owned();
    let (status, body) = signup(Some(&invite));
    assert_eq!(status, 201, "{body}");
    let (status, body) = request(&o, "GET", "/api/v1/admin/accounts", Some(&operator), b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ann@example.com"), "{body}");
    o.stop();
}
