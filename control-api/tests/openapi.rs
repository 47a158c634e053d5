//! The OpenAPI document matches the router: the same (method, path) pairs,
//! each answered, and the document served at `/api/v1/openapi.json`.

#[path = "support/server.rs"]
mod server;

use std::collections::BTreeSet;

use control_plane::SignupMode;
use server::{Auth, Backend, Server};

/// The design's API table (docs/design/control-plane.md), plus the
/// operator's invitations.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/signup"),
    ("POST", "/api/v1/login"),
    ("POST", "/api/v1/logout"),
    ("GET", "/api/v1/account"),
    ("POST", "/api/v1/account/password"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{id}"),
    ("POST", "/api/v1/databases"),
    ("GET", "/api/v1/databases"),
    ("GET", "/api/v1/databases/{name}"),
    ("PATCH", "/api/v1/databases/{name}"),
    ("DELETE", "/api/v1/databases/{name}"),
    ("POST", "/api/v1/databases/{name}/restore"),
    ("PUT", "/api/v1/databases/{name}/retention"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/admin/accounts"),
    ("POST", "/api/v1/admin/invites"),
    ("POST", "/api/v1/admin/databases/{name}/suspend"),
    ("DELETE", "/api/v1/admin/databases/{name}"),
    ("POST", "/api/v1/admin/restores"),
    ("GET", "/api/v1/openapi.json"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn documented(document: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("a path item") {
            if METHODS.contains(&key.as_str()) {
                pairs.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    pairs
}

// Protects "the OpenAPI document matches the routes" (issue 14): the
// documented pairs are the design's, and each one is routed.
#[test]
fn the_document_matches_the_routes() {
    let document = serde_json::to_value(control_api::openapi()).expect("serialize the document");
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3."),
        "OpenAPI 3"
    );
    let pairs = documented(&document);
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(pairs.len(), ROUTES.len());
    assert_eq!(pairs, expected);
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());

    let server = Server::start(Backend::Sqlite, SignupMode::Open, false).expect("SQLite");
    for (method, path) in &pairs {
        let concrete = path
            .trim_start_matches("/api/v1")
            .replace("{name}", "some-db")
            .replace("{id}", "tok_0");
        let reply = server.call(method, &concrete, Auth::None, None);
        assert!(
            ![404, 405].contains(&reply.status),
            "{method} {path} is documented but not routed: {reply:?}"
        );
        if path != "/api/v1/openapi.json" {
            assert!(
                [400, 401].contains(&reply.status),
                "{method} {path} without credentials or body: {reply:?}"
            );
            reply.json()["error"]["code"]
                .as_str()
                .expect("the error shape");
        }
    }

    // Served as JSON, identical to `openapi()`.
    let served = server.call("GET", "/openapi.json", Auth::None, None);
    assert_eq!(served.expect(200), document);

    // Outside the table: the error shape, 404 and 405.
    server
        .call("GET", "/nothing-here", Auth::None, None)
        .expect_error(404, "not_found");
    server
        .call("PUT", "/databases", Auth::None, None)
        .expect_error(405, "method_not_allowed");
}

// Protects the `Secure` attribute under TLS.
#[test]
fn cookies_are_secure_behind_tls() {
    let server = Server::start(Backend::Sqlite, SignupMode::Open, true).expect("SQLite");
    let reply = server.call(
        "POST",
        "/signup",
        Auth::None,
        Some(
            serde_json::json!({"email": "tls@example.com", "password": "correct horse battery 9"}),
        ),
    );
    reply.expect(201);
    assert!(
        reply.set_cookie[0].split("; ").any(|a| a == "Secure"),
        "{reply:?}"
    );
}
