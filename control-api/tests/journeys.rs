//! The API's journeys and refusals over real HTTP on loopback, against
//! SQLite and PostgreSQL (docs/design/control-plane.md, "HTTP API").

#[path = "support/server.rs"]
mod server;

use control_plane::{API_TOKEN_PREFIX, SESSION_PREFIX};
use serde_json::{json, Value};
use server::{Auth, Server};

const PASSWORD: &str = "correct horse battery 9";

fn signup(server: &Server, email: &str) -> String {
    let reply = server.call(
        "POST",
        "/signup",
        Auth::None,
        Some(json!({"email": email, "password": PASSWORD})),
    );
    reply.expect(201)["session"]
        .as_str()
        .expect("a session")
        .to_owned()
}

fn token(server: &Server, session: &str, body: Value) -> String {
    let reply = server.call("POST", "/tokens", Auth::Bearer(session), Some(body));
    reply.expect(201)["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

fn create_database(server: &Server, credential: &str, name: &str) -> server::Reply {
    server.call(
        "POST",
        "/databases",
        Auth::Bearer(credential),
        Some(json!({"name": name})),
    )
}

fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .map(|part| part.trim().to_owned())
        .collect()
}

// Protects the whole account journey of the design's API table: cookies,
// tokens shown once, databases, audit order, revocation and logout.
fn journey(server: &Server) {
    // Sign up: the session comes back and as a cookie with its attributes.
    let reply = server.call(
        "POST",
        "/signup",
        Auth::None,
        Some(json!({"email": "Ada@Example.com", "password": PASSWORD})),
    );
    let body = reply.expect(201);
    let session = body["session"].as_str().unwrap().to_owned();
    assert!(session.starts_with(SESSION_PREFIX), "{body}");
    assert_eq!(body["account"]["role"], "member");
    assert_eq!(reply.set_cookie.len(), 1, "{reply:?}");
    let attributes = cookie_attributes(&reply.set_cookie[0]);
    assert_eq!(attributes[0], format!("orrery_session={session}"));
    for wanted in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "{wanted} in {attributes:?}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a == "Secure"),
        "no TLS: {attributes:?}"
    );

    // Log in: another session, by cookie this time.
    let reply = server.call(
        "POST",
        "/login",
        Auth::None,
        Some(json!({"email": "ada@example.com", "password": PASSWORD})),
    );
    let body = reply.expect(200);
    let cookie_session = body["session"].as_str().unwrap().to_owned();
    assert_ne!(cookie_session, session);
    assert!(reply.set_cookie[0].starts_with(&format!("orrery_session={cookie_session};")));
    let account = server
        .call("GET", "/account", Auth::Cookie(&cookie_session), None)
        .expect(200);
    assert_eq!(account["email"], "ada@example.com");
    assert_eq!(account["id"], body["account"]["id"]);
    assert_eq!(account["identity"].as_str().unwrap().len(), 64);

    // A token, shown once; the list never shows it.
    let created = server
        .call(
            "POST",
            "/tokens",
            Auth::Bearer(&session),
            Some(json!({"name": "laptop", "scope": "admin", "expires_in_secs": 3600})),
        )
        .expect(201);
    let api_token = created["token"].as_str().unwrap().to_owned();
    let token_id = created["id"].as_str().unwrap().to_owned();
    assert!(api_token.starts_with(API_TOKEN_PREFIX), "{created}");
    assert_eq!(created["scope"], "admin");
    assert!(created["expires_at_ms"].is_i64());
    let listed = server.call("GET", "/tokens", Auth::Bearer(&session), None);
    let tokens = listed.expect(200);
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert_eq!(tokens[0]["id"], token_id.as_str());
    assert_eq!(tokens[0]["name"], "laptop");
    assert!(tokens[0].get("token").is_none(), "{tokens}");
    assert!(!listed.body.contains(&api_token));

    // Databases with the token: create, list, get, rename, delete.
    let database = create_database(server, &api_token, "chat").expect(201);
    assert_eq!(database["name"], "chat");
    assert_eq!(database["owner_identity"], account["identity"]);
    let databases = server
        .call("GET", "/databases", Auth::Bearer(&api_token), None)
        .expect(200);
    assert_eq!(databases.as_array().unwrap().len(), 1);
    assert_eq!(databases[0]["name"], "chat");
    let got = server
        .call("GET", "/databases/chat", Auth::Bearer(&api_token), None)
        .expect(200);
    assert_eq!(got["id"], database["id"]);
    let renamed = server
        .call(
            "PATCH",
            "/databases/chat",
            Auth::Bearer(&api_token),
            Some(json!({"name": "chat-two"})),
        )
        .expect(200);
    assert_eq!(renamed["name"], "chat-two");
    assert_eq!(renamed["id"], database["id"]);
    server
        .call("GET", "/databases/chat", Auth::Bearer(&api_token), None)
        .expect_error(404, "not_found");
    let message = server
        .call(
            "DELETE",
            "/databases/chat-two",
            Auth::Bearer(&api_token),
            None,
        )
        .expect_error(428, "confirmation_required");
    assert!(message.contains("?confirm=chat-two"), "{message}");
    server
        .call(
            "DELETE",
            "/databases/chat-two?confirm=chat",
            Auth::Bearer(&api_token),
            None,
        )
        .expect_error(428, "confirmation_required");
    server
        .call("GET", "/databases/chat-two", Auth::Bearer(&api_token), None)
        .expect(200);
    server
        .call(
            "DELETE",
            "/databases/chat-two?confirm=chat-two",
            Auth::Bearer(&api_token),
            None,
        )
        .expect(204);
    server
        .call("GET", "/databases/chat-two", Auth::Bearer(&api_token), None)
        .expect_error(404, "not_found");
    assert_eq!(
        *server.hosts.calls.lock().unwrap(),
        ["rename chat chat-two", "delete chat-two"],
        "the hosts hear of renames and deletions"
    );

    // The audit log, newest first, with who, how and from where.
    let audit = server
        .call("GET", "/audit?limit=10", Auth::Bearer(&session), None)
        .expect(200);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "database.delete",
            "database.rename",
            "database.create",
            "token.create"
        ],
        "{audit}"
    );
    assert_eq!(audit[0]["via"], token_id.as_str());
    assert_eq!(audit[3]["via"], "session");
    assert_eq!(audit[0]["client_ip"], "127.0.0.1");
    assert_eq!(audit[0]["target"], "chat-two");
    let at: Vec<i64> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "{at:?}");
    server
        .call("GET", "/audit?limit=many", Auth::Bearer(&session), None)
        .expect_error(400, "invalid_request");

    // An API token cannot log out or change the password: 403, as documented.
    server
        .call("POST", "/logout", Auth::Bearer(&api_token), None)
        .expect_error(403, "forbidden");

    // Revoke the token: it is refused from then on.
    server
        .call(
            "DELETE",
            &format!("/tokens/{token_id}"),
            Auth::Cookie(&cookie_session),
            None,
        )
        .expect(204);
    let message = server
        .call("GET", "/account", Auth::Bearer(&api_token), None)
        .expect_error(401, "unauthorized");
    assert!(message.contains("revoked"), "{message}");
    let tokens = server
        .call("GET", "/tokens", Auth::Bearer(&session), None)
        .expect(200);
    assert!(tokens[0]["revoked_at_ms"].is_i64(), "{tokens}");

    // Log out: the cookie is cleared and the session refused.
    let reply = server.call("POST", "/logout", Auth::Cookie(&cookie_session), None);
    reply.expect(204);
    let attributes = cookie_attributes(&reply.set_cookie[0]);
    assert_eq!(attributes[0], "orrery_session=");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0"),
        "{attributes:?}"
    );
    server
        .call("GET", "/account", Auth::Cookie(&cookie_session), None)
        .expect_error(401, "unauthorized");
    // The other session lives on.
    server
        .call("GET", "/account", Auth::Bearer(&session), None)
        .expect(200);
    server
        .call("GET", "/account", Auth::None, None)
        .expect_error(401, "unauthorized");
}

// Protects the refusals of issue 14, each in the one error shape and with
// nothing changed.
fn refusals(server: &Server) {
    let ada = signup(server, "ada@example.com");
    let bob = signup(server, "bob@example.com");

    // Wrong password and unknown email: one generic answer.
    let wrong = server.call(
        "POST",
        "/login",
        Auth::None,
        Some(json!({"email": "ada@example.com", "password": "not the password 1"})),
    );
    let message = wrong.expect_error(401, "unauthorized");
    assert!(message.contains("invalid_credentials"), "{message}");
    let unknown = server.call(
        "POST",
        "/login",
        Auth::None,
        Some(json!({"email": "nobody@example.com", "password": "not the password 1"})),
    );
    unknown.expect_error(401, "unauthorized");
    assert_eq!(wrong.body, unknown.body);
    assert!(wrong.set_cookie.is_empty());
    let audit = server
        .call("GET", "/audit", Auth::Bearer(&ada), None)
        .expect(200);
    assert_eq!(audit[0]["action"], "login.failed");
    assert_eq!(audit[0]["client_ip"], "127.0.0.1");

    // A name taken by another account.
    create_database(server, &bob, "shared").expect(201);
    let message = create_database(server, &ada, "shared").expect_error(409, "conflict");
    assert!(message.contains("shared"), "{message}");
    // Not a DNS label.
    create_database(server, &ada, "Not_A_Label").expect_error(400, "invalid_request");
    server
        .call(
            "PATCH",
            "/databases/shared",
            Auth::Bearer(&bob),
            Some(json!({"name": "-bad-"})),
        )
        .expect_error(400, "invalid_request");
    // Malformed bodies use the shape too.
    server
        .call(
            "POST",
            "/databases",
            Auth::Bearer(&ada),
            Some(json!({"nom": 1})),
        )
        .expect_error(400, "invalid_request");
    server
        .call(
            "POST",
            "/tokens",
            Auth::Bearer(&ada),
            Some(json!({"name": "x", "scope": "root"})),
        )
        .expect_error(400, "invalid_request");

    // A read token may not create a database.
    let read = token(server, &ada, json!({"name": "reader", "scope": "read"}));
    create_database(server, &read, "by-reader").expect_error(403, "forbidden");

    // A token for database A, used on B.
    create_database(server, &ada, "alpha").expect(201);
    create_database(server, &ada, "beta").expect(201);
    let alpha_only = token(
        server,
        &ada,
        json!({"name": "alpha", "scope": "admin", "databases": ["alpha"]}),
    );
    server
        .call("GET", "/databases/alpha", Auth::Bearer(&alpha_only), None)
        .expect(200);
    server
        .call("GET", "/databases/beta", Auth::Bearer(&alpha_only), None)
        .expect_error(403, "forbidden");
    server
        .call(
            "DELETE",
            "/databases/beta?confirm=beta",
            Auth::Bearer(&alpha_only),
            None,
        )
        .expect_error(403, "forbidden");
    let listed = server
        .call("GET", "/databases", Auth::Bearer(&alpha_only), None)
        .expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // Another account's database.
    server
        .call(
            "PATCH",
            "/databases/shared",
            Auth::Bearer(&ada),
            Some(json!({"name": "mine-now"})),
        )
        .expect_error(403, "forbidden");
    // Operators only.
    server
        .call("GET", "/admin/accounts", Auth::Bearer(&ada), None)
        .expect_error(403, "forbidden");
    server
        .call(
            "DELETE",
            "/admin/databases/shared",
            Auth::Bearer(&ada),
            None,
        )
        .expect_error(403, "forbidden");
    // A garbage credential.
    server
        .call("GET", "/account", Auth::Bearer("hello"), None)
        .expect_error(401, "unauthorized");
    assert!(
        server.hosts.calls.lock().unwrap().is_empty(),
        "no refused request reached the hosts"
    );
    server
        .call("GET", "/databases/shared", Auth::Bearer(&bob), None)
        .expect(200);

    // A login flood: 429 with Retry-After, in the error shape.
    let mut limited = None;
    for _ in 0..30 {
        let reply = server.call(
            "POST",
            "/login",
            Auth::None,
            Some(json!({"email": "bob@example.com", "password": "guess guess 12"})),
        );
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        reply.expect_error(401, "unauthorized");
    }
    let limited = limited.expect("the login flood is limited");
    limited.expect_error(429, "rate_limited");
    let retry_after: u64 = limited
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
}

// Protects invite-only sign-up and the operator's routes.
fn invite_only(server: &Server) {
    let message = server
        .call(
            "POST",
            "/signup",
            Auth::None,
            Some(json!({"email": "eve@example.com", "password": PASSWORD})),
        )
        .expect_error(403, "forbidden");
    assert!(message.contains("invitation"), "{message}");
    server
        .runtime
        .block_on(server.cp.bootstrap_operator("op@example.com", PASSWORD))
        .expect("bootstrap the operator");
    let operator = server
        .call(
            "POST",
            "/login",
            Auth::None,
            Some(json!({"email": "op@example.com", "password": PASSWORD})),
        )
        .expect(200)["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let invite = server
        .call(
            "POST",
            "/admin/invites",
            Auth::Bearer(&operator),
            Some(json!({"email": "eve@example.com"})),
        )
        .expect(201)["invite"]
        .as_str()
        .unwrap()
        .to_owned();
    let eve = server
        .call(
            "POST",
            "/signup",
            Auth::None,
            Some(json!({"email": "eve@example.com", "password": PASSWORD, "invite": invite})),
        )
        .expect(201)["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let accounts = server
        .call("GET", "/admin/accounts", Auth::Cookie(&operator), None)
        .expect(200);
    let mut roles: Vec<(&str, &str)> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["email"].as_str().unwrap(), a["role"].as_str().unwrap()))
        .collect();
    // Both were made at the same instant of the test clock.
    roles.sort();
    assert_eq!(
        roles,
        [
            ("eve@example.com", "member"),
            ("op@example.com", "operator")
        ]
    );

    create_database(server, &eve, "eves").expect(201);
    create_database(server, &eve, "eves-two").expect(201);
    server
        .call(
            "POST",
            "/admin/databases/eves/suspend",
            Auth::Bearer(&operator),
            None,
        )
        .expect(204);
    let suspended = server
        .call("GET", "/databases/eves", Auth::Bearer(&eve), None)
        .expect(200);
    assert!(suspended["suspended_at_ms"].is_i64(), "{suspended}");
    server
        .call(
            "DELETE",
            "/admin/databases/eves-two",
            Auth::Bearer(&operator),
            None,
        )
        .expect(204);
    server
        .call("GET", "/databases/eves-two", Auth::Bearer(&eve), None)
        .expect_error(404, "not_found");
    server
        .call(
            "DELETE",
            "/admin/databases/nothing",
            Auth::Bearer(&operator),
            None,
        )
        .expect_error(404, "not_found");
    assert_eq!(
        server.hosts.calls.lock().unwrap()[0],
        "delete eves-two",
        "the hosts hear of the operator's deletion"
    );
}

on_both_backends!(control_plane::SignupMode::Open => journey, refusals);

mod invite {
    use super::server;

    fn invite_only(server: &server::Server) {
        super::invite_only(server)
    }

    crate::on_both_backends!(control_plane::SignupMode::InviteOnly => invite_only);
}
