//! The metadata store itself: URLs, migrations run once, SQLite files and
//! WAL, and that data outlives a reconnect, on both backends.

#[path = "support/harness.rs"]
mod harness;

use control_plane::{Backend, Config, ControlPlane, Error, Store};
use harness::Harness;

on_both_backends!(control_plane::SignupMode::Open =>
    reconnecting_keeps_data_and_migrates_once,
);

async fn reconnecting_keeps_data_and_migrates_once(h: Harness) {
    let ann =
        h.cp.signup("ann@example.com", "correct horse 7", None, None)
            .await
            .unwrap();
    h.cp.store().close().await;
    let store = Store::connect(&h.url).await.expect("reconnect");
    let expected = if h.url.starts_with("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(store.backend(), expected);
    let cp = ControlPlane::new(
        store,
        Config {
            clock: std::sync::Arc::new(h.clock.clone()),
            ..Config::default()
        },
    );
    let who = cp
        .authenticate(&ann.session)
        .await
        .expect("the session survived");
    assert_eq!(who.account_id, ann.account.id);
}

// Protects "created if missing, WAL" for SQLite.
#[tokio::test]
async fn sqlite_files_are_created_in_wal_mode() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deeper/still/meta.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    assert!(path.exists());
    store.close().await;
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn other_urls_are_refused() {
    for url in ["mysql://x/y", "", "/tmp/meta.db"] {
        let error = Store::connect(url).await.unwrap_err();
        assert!(matches!(error, Error::InvalidRequest(_)), "{url}: {error}");
    }
}
