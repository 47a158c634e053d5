//! The control-plane API served on 127.0.0.1:0 for one test, over a fresh
//! store (SQLite in a temporary folder, or a new database in the PostgreSQL
//! server of `ORRERY_TEST_POSTGRES_URL`), and a plain HTTP client for it.
//! Without that variable the Postgres tests are skipped loudly, except in
//! CI (`CI=true`), where they fail.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use control_api::{ApiConfig, ApiState, BoxFuture, DatabaseHosts, HostError};
use control_plane::{Config, ControlPlane, ManualClock, SignupMode, Store};
use serde_json::Value;
use sqlx::Connection;

/// 2026-01-01T00:00:00Z, in Unix milliseconds: where test clocks start.
pub const START_MS: i64 = 1_767_225_600_000;

/// Hosts that only remember what they were told.
#[derive(Default)]
pub struct RecordingHosts {
    pub calls: Mutex<Vec<String>>,
}

impl DatabaseHosts for RecordingHosts {
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("rename {from} {to}"));
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        self.calls.lock().unwrap().push(format!("delete {name}"));
        Box::pin(async { Ok(()) })
    }

    fn set_retention<'a>(
        &'a self,
        name: &'a str,
        days: u32,
    ) -> BoxFuture<'a, Result<(), HostError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("retention {name} {days}"));
        Box::pin(async { Ok(()) })
    }
}

pub struct Server {
    pub base: String,
    pub cp: Arc<ControlPlane>,
    pub clock: ManualClock,
    pub hosts: Arc<RecordingHosts>,
    pub runtime: tokio::runtime::Runtime,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Server {
    /// `None` when Postgres is asked for and not configured outside CI.
    pub fn start(backend: Backend, signup: SignupMode, behind_tls: bool) -> Option<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a runtime");
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("make a temporary folder");
                let url = format!("sqlite://{}/meta/control-plane.db", dir.path().display());
                (url, Some(dir))
            }
            Backend::Postgres => (runtime.block_on(postgres_test_database())?, None),
        };
        let clock = ManualClock::new(START_MS);
        let hosts = Arc::new(RecordingHosts::default());
        let (cp, address) = runtime.block_on(async {
            let store = Store::connect(&url).await.expect("connect the store");
            let cp = Arc::new(ControlPlane::new(
                store,
                Config {
                    signup,
                    clock: Arc::new(clock.clone()),
                },
            ));
            let state =
                ApiState::new(cp.clone(), ApiConfig { behind_tls }).with_hosts(hosts.clone());
            let router = control_api::router(Arc::new(state));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port");
            let address = listener.local_addr().expect("the bound address");
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .expect("serve the API");
            });
            (cp, address)
        });
        Some(Server {
            base: format!("http://{address}"),
            cp,
            clock,
            hosts,
            runtime,
            _dir: dir,
        })
    }

    /// Sends `method /api/v1{path}` with an optional bearer credential or
    /// cookie and an optional JSON body.
    pub fn call(&self, method: &str, path: &str, auth: Auth<'_>, body: Option<Value>) -> Reply {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = ureq::request(method, &url);
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.set("Authorization", &format!("Bearer {token}"))
            }
            Auth::Cookie(session) => {
                request = request.set("Cookie", &format!("other=1; orrery_session={session}"))
            }
        }
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: {error}"),
        };
        let status = response.status();
        let set_cookie = response
            .all("set-cookie")
            .into_iter()
            .map(str::to_owned)
            .collect();
        let retry_after = response.header("retry-after").map(str::to_owned);
        let content_type = response.header("content-type").map(str::to_owned);
        let body = response.into_string().expect("read the body");
        Reply {
            status,
            body,
            set_cookie,
            retry_after,
            content_type,
        }
    }
}

#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub set_cookie: Vec<String>,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts the status and returns the JSON body (or `null` when empty).
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts the error shape, the status and the code; returns the message.
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json")),
            "{self:?}"
        );
        let json = self.json();
        let object = json.as_object().expect("an object");
        assert_eq!(object.len(), 1, "only `error`: {json}");
        let error = json["error"].as_object().expect("`error` is an object");
        assert_eq!(error.len(), 2, "code and message: {json}");
        assert_eq!(json["error"]["code"], code, "{json}");
        let message = json["error"]["message"].as_str().expect("a message");
        assert!(!message.is_empty());
        message.to_owned()
    }
}

/// The URL of a new, empty database in the test server.
// The skip must show in the test output, where no tracing subscriber is.
#[allow(clippy::disallowed_macros)]
pub async fn postgres_test_database() -> Option<String> {
    let Ok(server) = std::env::var("ORRERY_TEST_POSTGRES_URL") else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "ORRERY_TEST_POSTGRES_URL is not set in CI: scripts/test starts PostgreSQL and sets it"
            );
        }
        eprintln!(
            "\n!!! SKIPPED: ORRERY_TEST_POSTGRES_URL is not set, so this Postgres test did not run.\n\
             !!! Run ./scripts/test (it starts PostgreSQL), or eval \"$(scripts/postgres start)\" first.\n"
        );
        return None;
    };
    sqlx::any::install_default_drivers();
    let mut suffix = [0u8; 8];
    rand::fill(&mut suffix);
    let name = format!("test_{}", hex::encode(suffix));
    let mut admin = sqlx::AnyConnection::connect(&server)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    admin.close().await.expect("close the admin connection");
    let (base, _) = server
        .rsplit_once('/')
        .expect("the server URL names a database");
    Some(format!("{base}/{name}"))
}

/// Runs each listed `fn NAME(&Server)` of the enclosing module on both
/// backends, as the tests `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($signup:expr => $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let server = super::server::Server::start(
                        super::server::Backend::Sqlite, $signup, false,
                    ).expect("SQLite is always there");
                    super::$name(&server);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(server) = super::server::Server::start(
                        super::server::Backend::Postgres, $signup, false,
                    ) {
                        super::$name(&server);
                    }
                }
            )*
        }
    };
}
