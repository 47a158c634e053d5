//! The HTTP front of the client API over a real loopback socket: ping, CORS
//! preflights, minting identities, the WebSocket token, the public key,
//! identity verification, and refusals of bad credentials.

use std::sync::Arc;

use durable::clock::{Clock, ManualClock, SystemClock};
use orrery_edge::auth::{Keys, EXPIRY_LEEWAY_SECONDS, WEBSOCKET_TOKEN_SECONDS};
use orrery_edge::{serve, ApiState};
use orrery_module::Runtime;
use tenant_host::hosting::{Host, HostConfig};
use tenant_host::registry::Registry;

/// A server on an ephemeral loopback port; stops when the runtime is dropped.
struct Server {
    base: String,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn server() -> Server {
    server_with_clock(Arc::new(SystemClock))
}

/// [`server`] whose host reads time from `clock`.
fn server_with_clock(clock: Arc<dyn Clock>) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::with_clock(
        Runtime::new().unwrap(),
        HostConfig::default(),
        clock,
    ));
    let state = Arc::new(ApiState {
        keys: Keys::ephemeral().unwrap(),
        registry: Arc::new(Registry::open(dir.path(), host).unwrap()),
        ws: Default::default(),
        tenant_domain: None,
        access: orrery_edge::access::Access::open(),
        backups: None,
    });
    runtime.spawn(serve(listener, state, std::future::pending()));
    Server {
        base,
        _runtime: runtime,
        _dir: dir,
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().build()
}

/// Status, content type and body, whatever the status.
fn send(request: ureq::Request) -> (u16, String, String) {
    match request.call() {
        Ok(response) => {
            let content_type = response.header("content-type").unwrap_or("").to_owned();
            (
                response.status(),
                content_type,
                response.into_string().unwrap(),
            )
        }
        Err(ureq::Error::Status(status, response)) => {
            let content_type = response.header("content-type").unwrap_or("").to_owned();
            (status, content_type, response.into_string().unwrap())
        }
        Err(e) => panic!("request failed: {e}"),
    }
}

#[test]
fn ping_and_cors_preflight() {
    let s = server();
    let (status, _, body) = send(agent().get(&format!("{}/v1/ping", s.base)));
    assert_eq!((status, body.as_str()), (200, ""));
    let response = agent()
        .request(
            "OPTIONS",
            &format!("{}/v1/identity/websocket-token", s.base),
        )
        .set("Origin", "http://app.example")
        .set("Access-Control-Request-Method", "POST")
        .set("Access-Control-Request-Headers", "authorization")
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert!(response
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
}

#[test]
fn minted_identities_get_websocket_tokens_and_verify() {
    let s = server();
    let (status, content_type, body) = send(agent().post(&format!("{}/v1/identity", s.base)));
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    let minted: serde_json::Value = serde_json::from_str(&body).unwrap();
    let identity = minted["identity"].as_str().unwrap().to_owned();
    let token = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(identity.len(), 64);
    assert!(identity.starts_with("c200"));

    let (status, content_type, body) = send(
        agent()
            .post(&format!("{}/v1/identity/websocket-token", s.base))
            .set("Authorization", &format!("Bearer {token}")),
    );
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let short: serde_json::Value = serde_json::from_str(&body).unwrap();
    let short = short["token"].as_str().unwrap();
    assert_ne!(short, token);

    // Both tokens verify as the minted identity, by header or query.
    let verify = format!("{}/v1/identity/{identity}/verify", s.base);
    let (status, _, _) = send(
        agent()
            .get(&verify)
            .set("Authorization", &format!("Bearer {token}")),
    );
    assert_eq!(status, 204);
    let (status, _, _) = send(agent().get(&format!("{verify}?token={short}")));
    assert_eq!(status, 204);
    // Another identity's path is a 400; no token is a 401.
    let other = format!("{}/v1/identity/{}/verify", s.base, "c2".repeat(32));
    let (status, _, _) = send(
        agent()
            .get(&other)
            .set("Authorization", &format!("Bearer {token}")),
    );
    assert_eq!(status, 400);
    let (status, _, body) = send(agent().get(&verify));
    assert_eq!((status, body.as_str()), (401, "Authorization required"));
}

// Protects: the edge issues and checks tokens at the host's clock, not the
// system's, so a test (or a host) that moves its clock moves token expiry.
#[test]
fn tokens_are_issued_and_expire_on_the_host_clock() {
    let now_secs: i64 = 2_000_000_000;
    let clock = ManualClock::new(now_secs * 1_000_000);
    let s = server_with_clock(Arc::new(clock.clone()));
    let (status, _, body) = send(agent().post(&format!("{}/v1/identity", s.base)));
    assert_eq!(status, 200, "{body}");
    let minted: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&token)["iat"], now_secs);

    let (status, _, body) = send(
        agent()
            .post(&format!("{}/v1/identity/websocket-token", s.base))
            .set("Authorization", &format!("Bearer {token}")),
    );
    assert_eq!(status, 200, "{body}");
    let short: serde_json::Value = serde_json::from_str(&body).unwrap();
    let short = short["token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&short)["exp"], now_secs + WEBSOCKET_TOKEN_SECONDS);

    let verify = format!(
        "{}/v1/identity/{}/verify",
        s.base,
        minted["identity"].as_str().unwrap()
    );
    let (status, _, _) = send(agent().get(&format!("{verify}?token={short}")));
    assert_eq!(status, 204);
    // Past its expiry and the leeway on the host's clock, it is refused.
    clock.advance((WEBSOCKET_TOKEN_SECONDS + EXPIRY_LEEWAY_SECONDS + 1) * 1_000_000);
    let (status, _, body) = send(agent().get(&format!("{verify}?token={short}")));
    assert_eq!(status, 401, "{body}");
}

/// The JSON claims of a JWT (its middle part, unpadded base64url).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[test]
fn bad_credentials_are_refused_with_the_spec_statuses() {
    let s = server();
    let url = format!("{}/v1/identity/websocket-token", s.base);
    let (status, _, body) = send(agent().post(&url));
    assert_eq!((status, body.as_str()), (401, "Authorization required"));
    let (status, _, body) = send(agent().post(&url).set("Authorization", "Basic abc"));
    assert_eq!(
        (status, body.as_str()),
        (400, "Authorization is invalid: malformed token")
    );
    let (status, _, _) = send(agent().post(&url).set("Authorization", "Bearer not.a.jwt"));
    assert_eq!(status, 400);
    // A well-formed token signed by another server.
    let foreign = Keys::ephemeral().unwrap().mint_anonymous(0).unwrap().token;
    let (status, _, body) = send(
        agent()
            .post(&url)
            .set("Authorization", &format!("Bearer {foreign}")),
    );
    assert_eq!(status, 401, "{body}");
    // The server still serves.
    let (status, _, _) = send(agent().get(&format!("{}/v1/ping", s.base)));
    assert_eq!(status, 200);
}

#[test]
fn the_public_key_is_served_as_pem() {
    let s = server();
    let (status, content_type, body) =
        send(agent().get(&format!("{}/v1/identity/public-key", s.base)));
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/pem-certificate-chain");
    assert!(body.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{body}");
    assert!(body.ends_with("-----END PUBLIC KEY-----\n"));
}
