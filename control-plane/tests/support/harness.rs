//! A control plane on a fresh store for one test: SQLite in a temporary
//! folder, or a new database (`test_<random>`) in the PostgreSQL server of
//! `ORRERY_TEST_POSTGRES_URL` (started by scripts/test). Without that
//! variable the Postgres tests are skipped loudly, except in CI (`CI=true`),
//! where they fail.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use control_plane::{Config, ControlPlane, ManualClock, SignupMode, Store};
use sqlx::Connection;

/// 2026-01-01T00:00:00Z, in Unix milliseconds: where test clocks start.
pub const START_MS: i64 = 1_767_225_600_000;

pub struct Harness {
    pub cp: Arc<ControlPlane>,
    pub clock: ManualClock,
    pub url: String,
    // Keeps the SQLite folder alive for the test.
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    pub async fn sqlite(signup: SignupMode) -> Harness {
        let dir = tempfile::tempdir().expect("make a temporary folder");
        let url = format!("sqlite://{}/meta/control-plane.db", dir.path().display());
        Harness::open(url, signup, Some(dir)).await
    }

    /// `None` when Postgres is not configured outside CI (the test is
    /// skipped, with a message).
    pub async fn postgres(signup: SignupMode) -> Option<Harness> {
        let url = postgres_test_database().await?;
        Some(Harness::open(url, signup, None).await)
    }

    async fn open(url: String, signup: SignupMode, dir: Option<tempfile::TempDir>) -> Harness {
        let store = Store::connect(&url).await.expect("connect the store");
        let clock = ManualClock::new(START_MS);
        let cp = Arc::new(ControlPlane::new(
            store,
            Config {
                signup,
                clock: Arc::new(clock.clone()),
            },
        ));
        Harness {
            cp,
            clock,
            url,
            _dir: dir,
        }
    }
}

/// The URL of the test server, if there is one (see the module header).
fn postgres_server() -> Option<String> {
    let Ok(server) = std::env::var("ORRERY_TEST_POSTGRES_URL") else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "ORRERY_TEST_POSTGRES_URL is not set in CI: scripts/test starts PostgreSQL and sets it"
            );
        }
        skipped_loudly();
        return None;
    };
    Some(server)
}

/// Says on stderr, which the test runner shows, that a Postgres test did not
/// run (tracing has no subscriber in tests).
#[allow(clippy::disallowed_macros)]
fn skipped_loudly() {
    eprintln!(
            "\n!!! SKIPPED: ORRERY_TEST_POSTGRES_URL is not set, so this Postgres test did not run.\n\
             !!! Run ./scripts/test (it starts PostgreSQL), or eval \"$(scripts/postgres start)\" first.\n"
    );
}

/// The URL of a new, empty database in the test server.
pub async fn postgres_test_database() -> Option<String> {
    let server = postgres_server()?;
    sqlx::any::install_default_drivers();
    let name = format!("test_{}", hex::encode(rand_bytes()));
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

fn rand_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    bytes
}

/// Runs each listed `async fn NAME(Harness)` of the enclosing module on both
/// backends, as the tests `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($signup:expr => $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::harness::Harness::sqlite($signup).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(harness) = super::harness::Harness::postgres($signup).await {
                        super::$name(harness).await;
                    }
                }
            )*
        }
    };
}
