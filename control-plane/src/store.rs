//! The metadata store: one `sqlx::AnyPool` over SQLite or PostgreSQL, and the
//! migrations of `control-plane/migrations/`, run at connect.
//!
//! Owns: [`Store::connect`] (URL forms, SQLite file creation and WAL), the
//! embedded migrations, and the pool the domain code queries.
//! Does not own: what the tables mean (the rest of the crate).
//! Queries use `$1`-style parameters, which both backends accept, and only
//! portable SQL (TEXT, BIGINT; see the migration file's header).

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Transaction};

use crate::error::{Error, StoreContext};

/// Connections a pool keeps open at most.
const POOL_CONNECTIONS_MAX: u32 = 8;

/// The migrations, embedded in the binary so a deployed control plane needs
/// no files beside it. Add new ones at the end; never edit an applied one
/// (sqlx refuses a changed checksum).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "durability",
        include_str!("../migrations/0002_durability.sql"),
    ),
    (
        3,
        "retention",
        include_str!("../migrations/0003_retention.sql"),
    ),
];

/// Which database the store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The control plane's metadata store. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens the store at `url` and brings its schema up to date.
    ///
    /// `sqlite://PATH` (or `sqlite:PATH`; `sqlite:///abs/path` for an
    /// absolute one) creates the file and its folder if missing and puts the
    /// database in WAL mode; `postgres://…` (or `postgresql://…`) connects to
    /// an existing database.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = sqlite_path(url) {
            if let Some(parent) = Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Internal(format!("create the folder of {path}: {e}"))
                    })?;
                }
            }
            let mode = if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            };
            (Backend::Sqlite, format!("{url}{mode}"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(Error::invalid(format!(
                "the metadata store URL must start with sqlite:// or postgres:// (got {:?})",
                url.split(':').next().unwrap_or_default()
            )));
        };
        let options = AnyConnectOptions::from_str(&url).context("parse the metadata store URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(POOL_CONNECTIONS_MAX)
            .connect_with(options)
            .await
            .context("connect to the metadata store")?;
        if backend == Backend::Sqlite {
            // WAL is a property of the file: set once, kept by every later open.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .context("put the SQLite metadata store in WAL mode")?;
        }
        let migrator = Migrator::new(EmbeddedMigrations)
            .await
            .map_err(|e| Error::Internal(format!("load the migrations: {e}")))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::Internal(format!("migrate the metadata store: {e}")))?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`, waiting up to the busy timeout), so
    /// a transaction that read first never fails to upgrade its lock when
    /// another writer went ahead.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, Error> {
        let begun = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        begun.context("begin a transaction")
    }

    /// Closes every connection (waits for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The path of a `sqlite:` URL, without its query.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or_default())
}

#[derive(Debug)]
struct EmbeddedMigrations;

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://data/meta.db"), Some("data/meta.db"));
        assert_eq!(
            sqlite_path("sqlite:///tmp/meta.db?x=1"),
            Some("/tmp/meta.db")
        );
        assert_eq!(sqlite_path("sqlite:meta.db"), Some("meta.db"));
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}
