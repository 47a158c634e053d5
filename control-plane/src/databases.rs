//! Databases and their names, module versions, and the operator's database
//! functions.
//!
//! Owns: create (account-wide deploy; names are DNS labels, unique
//! platform-wide), list (what the credential may see), get, rename, delete,
//! suspend, and [`ControlPlane::record_publish`] (a new module version; a
//! first publish with an account-wide deploy credential creates the
//! database).
//! Does not own: the wasm bytes and the signed manifest (not built yet).

use std::net::IpAddr;

use spacetimedb_lib::Identity;
use sqlx::any::AnyRow;

use crate::audit::{AuditAction, NewEntry};
use crate::error::{Error, StoreContext};
use crate::ids::{AccountId, DatabaseId};
use crate::names::validate_database_name;
use crate::plane::{get, ip_text, is_unique_violation, ControlPlane, Principal};
use crate::token::{self, Scope};

/// A database of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    pub id: DatabaseId,
    pub name: String,
    pub account_id: AccountId,
    /// The owner identity: the account's.
    pub owner_identity: Identity,
    pub created_at_ms: i64,
    /// When an operator suspended it: it takes no new publishes.
    pub suspended_at_ms: Option<i64>,
    /// Its durability mode; `None` leaves it to the host's default.
    pub durability: Option<orrery_api::Durability>,
    /// Days of point-in-time history kept (0: everything); `None` leaves
    /// it to the host's default.
    pub retention_days: Option<u32>,
}

impl Database {
    /// What its hosts apply.
    pub fn settings(&self) -> orrery_api::DatabaseSettings {
        orrery_api::DatabaseSettings {
            durability: self.durability,
            retention_days: self.retention_days,
        }
    }
}

/// A published module version of a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleVersion {
    pub database_id: DatabaseId,
    /// 1 for the first publish, then one more each time.
    pub version: i64,
    /// SHA-256 of the wasm, lowercase hex.
    pub module_sha256: String,
    pub published_by: AccountId,
    pub published_at_ms: i64,
}

const DATABASE_COLUMNS: &str =
    "id, name, account_id, created_at, suspended_at, durability, retention_days";

impl ControlPlane {
    /// Creates a database named `name` in the principal's account (an
    /// account-wide credential with deploy). `conflict` when the name is
    /// taken by any account; `invalid_request` when it is not a DNS label.
    pub async fn create_database(
        &self,
        principal: &Principal,
        name: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Database, Error> {
        self.create_database_with(principal, name, Default::default(), client_ip)
            .await
    }

    /// [`ControlPlane::create_database`] with settings (each `None`: the
    /// host's default). A retention over
    /// [`orrery_api::limits::RETENTION_DAYS_MAX`] days is `invalid_request`.
    pub async fn create_database_with(
        &self,
        principal: &Principal,
        name: &str,
        settings: orrery_api::DatabaseSettings,
        client_ip: Option<IpAddr>,
    ) -> Result<Database, Error> {
        self.require_account_scope(principal, Scope::Deploy)?;
        validate_database_name(name)?;
        check_retention(settings.retention_days)?;
        let mut tx = self.store.begin_write().await?;
        let database = self
            .insert_database(&mut tx, principal, None, name, settings, client_ip)
            .await?;
        tx.commit().await.context("commit a database creation")?;
        Ok(database)
    }

    /// Inserts database `name` into `account` (the principal's when
    /// `None`), recording that `principal` created it.
    async fn insert_database(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        principal: &Principal,
        account: Option<&AccountId>,
        name: &str,
        settings: orrery_api::DatabaseSettings,
        client_ip: Option<IpAddr>,
    ) -> Result<Database, Error> {
        let account_id = account.unwrap_or(&principal.account_id).clone();
        let database = Database {
            id: DatabaseId::generate(),
            name: name.to_owned(),
            owner_identity: token::account_identity(account_id.as_str()),
            account_id,
            created_at_ms: self.now_ms(),
            suspended_at_ms: None,
            durability: settings.durability,
            retention_days: settings.retention_days,
        };
        let inserted = sqlx::query(
            "INSERT INTO databases (id, name, account_id, created_at, durability, retention_days) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(database.id.as_str())
        .bind(name)
        .bind(database.account_id.as_str())
        .bind(database.created_at_ms)
        .bind(settings.durability.map(|mode| mode.as_str()))
        .bind(settings.retention_days.map(i64::from))
        .execute(&mut **tx)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => return Err(name_taken(name)),
            other => other.context("insert a database")?,
        };
        self.record_in(
            tx,
            NewEntry {
                account_id: Some(database.account_id.clone()),
                ..NewEntry::by(
                    principal,
                    AuditAction::DatabaseCreate,
                    name,
                    ip_text(client_ip),
                )
                .detail(database.id.to_string())
            },
        )
        .await?;
        Ok(database)
    }

    /// Creates database `name` in the account with this email, for the
    /// operator (a database brought over from another store for a
    /// customer); the account's admins see it in their audit log.
    pub async fn operator_create_database(
        &self,
        operator: &Principal,
        email: &str,
        name: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Database, Error> {
        self.require_operator(operator)?;
        validate_database_name(name)?;
        let email = crate::accounts::valid_email(email)?;
        let row = self
            .account_row_by_email(&email)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "account",
                name: email.clone(),
            })?;
        let account = crate::accounts::account_from_row(&row)?;
        let mut tx = self.store.begin_write().await?;
        let database = self
            .insert_database(
                &mut tx,
                operator,
                Some(&account.id),
                name,
                Default::default(),
                client_ip,
            )
            .await?;
        tx.commit().await.context("commit a database creation")?;
        Ok(database)
    }

    /// The databases of the principal's account that its credential covers,
    /// by name.
    pub async fn list_databases(&self, principal: &Principal) -> Result<Vec<Database>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {DATABASE_COLUMNS} FROM databases WHERE account_id = $1 ORDER BY name"
        ))
        .bind(principal.account_id.as_str())
        .fetch_all(self.store.pool())
        .await
        .context("list databases")?;
        let databases = rows
            .iter()
            .map(database_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(databases
            .into_iter()
            .filter(|database| principal.credential.covers(&database.id))
            .collect())
    }

    /// The database named `name` (read).
    pub async fn get_database(&self, principal: &Principal, name: &str) -> Result<Database, Error> {
        self.authorize(principal, name, Scope::Read).await
    }

    /// Renames a database (admin). Its id, tokens and versions stay.
    pub async fn rename_database(
        &self,
        principal: &Principal,
        name: &str,
        new_name: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Database, Error> {
        validate_database_name(new_name)?;
        let database = self.authorize(principal, name, Scope::Admin).await?;
        if new_name == database.name {
            return Ok(database);
        }
        let mut tx = self.store.begin_write().await?;
        let renamed = sqlx::query("UPDATE databases SET name = $1 WHERE id = $2")
            .bind(new_name)
            .bind(database.id.as_str())
            .execute(&mut *tx)
            .await;
        match renamed {
            Err(error) if is_unique_violation(&error) => return Err(name_taken(new_name)),
            other => other.context("rename a database")?,
        };
        self.record_in(
            &mut tx,
            NewEntry::by(
                principal,
                AuditAction::DatabaseRename,
                new_name,
                ip_text(client_ip),
            )
            .detail(format!("renamed from {}", database.name)),
        )
        .await?;
        tx.commit().await.context("commit a rename")?;
        Ok(Database {
            name: new_name.to_owned(),
            ..database
        })
    }

    /// Deletes a database and its module versions (admin); its name is free
    /// again. The HTTP layer asks for the name as confirmation first.
    pub async fn delete_database(
        &self,
        principal: &Principal,
        name: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        let database = self.authorize(principal, name, Scope::Admin).await?;
        self.remove_database(principal, &database, client_ip, None)
            .await
    }

    /// The module versions of a database, newest first (read).
    pub async fn module_versions(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<Vec<ModuleVersion>, Error> {
        let database = self.authorize(principal, name, Scope::Read).await?;
        let rows = sqlx::query(
            "SELECT database_id, version, module_sha256, published_by, published_at \
             FROM module_versions WHERE database_id = $1 ORDER BY version DESC",
        )
        .bind(database.id.as_str())
        .fetch_all(self.store.pool())
        .await
        .context("list module versions")?;
        rows.iter().map(version_from_row).collect()
    }

    /// Sets how many days of point-in-time history database `name` keeps
    /// (admin; 0 keeps everything, at most
    /// [`orrery_api::limits::RETENTION_DAYS_MAX`]).
    pub async fn set_retention(
        &self,
        principal: &Principal,
        name: &str,
        days: u32,
        client_ip: Option<IpAddr>,
    ) -> Result<Database, Error> {
        check_retention(Some(days))?;
        let database = self.authorize(principal, name, Scope::Admin).await?;
        let mut tx = self.store.begin_write().await?;
        sqlx::query("UPDATE databases SET retention_days = $1 WHERE id = $2")
            .bind(i64::from(days))
            .bind(database.id.as_str())
            .execute(&mut *tx)
            .await
            .context("set a database's retention")?;
        let before = database
            .retention_days
            .map_or_else(|| "the host's default".to_owned(), |d| format!("{d} days"));
        self.record_in(
            &mut tx,
            NewEntry::by(
                principal,
                AuditAction::DatabaseRetention,
                name,
                ip_text(client_ip),
            )
            .detail(format!("{days} days (was {before})")),
        )
        .await?;
        tx.commit().await.context("commit a retention change")?;
        Ok(Database {
            retention_days: Some(days),
            ..database
        })
    }

    /// Removes database `created`, made by `principal` for work a host
    /// then failed to do (a restore into it); the audit log says why.
    pub async fn undo_create_database(
        &self,
        principal: &Principal,
        created: &Database,
        reason: &str,
    ) -> Result<(), Error> {
        self.remove_database(principal, created, None, Some(reason))
            .await
    }

    /// Records that `principal` restored database `name` (`detail` says
    /// to what point, and into which database); the host did the restore.
    pub async fn record_restore(
        &self,
        principal: &Principal,
        name: &str,
        detail: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        self.record(
            NewEntry::by(
                principal,
                AuditAction::DatabaseRestore,
                name,
                ip_text(client_ip),
            )
            .detail(detail),
        )
        .await
    }

    /// Records a publish of the module whose wasm has SHA-256
    /// `module_sha256` to the database `name` (deploy) and returns the new
    /// version. When no database has that name, an account-wide deploy
    /// credential creates it (first publish); a suspended database takes no
    /// publish.
    pub async fn record_publish(
        &self,
        principal: &Principal,
        name: &str,
        module_sha256: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<ModuleVersion, Error> {
        let is_sha256 = module_sha256.len() == 64
            && module_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_sha256 {
            return Err(Error::invalid(
                "module_sha256 is 64 lowercase hex digits (the SHA-256 of the wasm)",
            ));
        }
        let existing = match self.authorize(principal, name, Scope::Deploy).await {
            Ok(database) => Some(database),
            Err(Error::NotFound { .. }) => {
                // A first publish creates the database, with the rights of
                // `create_database`; other credentials just find nothing.
                self.require_account_scope(principal, Scope::Deploy)
                    .map_err(|_| Error::NotFound {
                        what: "database",
                        name: name.to_owned(),
                    })?;
                validate_database_name(name)?;
                None
            }
            Err(error) => return Err(error),
        };
        let mut tx = self.store.begin_write().await?;
        let database = match existing {
            Some(database) => database,
            None => {
                self.insert_database(
                    &mut tx,
                    principal,
                    None,
                    name,
                    Default::default(),
                    client_ip,
                )
                .await?
            }
        };
        // Publishes to one database take turns: this no-op write locks the
        // database's row (Postgres) or the file (SQLite, already locked)
        // until the commit, so versions are numbered without gaps or races.
        sqlx::query("UPDATE databases SET name = name WHERE id = $1")
            .bind(database.id.as_str())
            .execute(&mut *tx)
            .await
            .context("lock a database for a publish")?;
        if database.suspended_at_ms.is_some() {
            return Err(Error::forbidden(format!(
                "database {name:?} is suspended by the operator"
            )));
        }
        let latest: i64 = sqlx::query_scalar::<sqlx::Any, i64>(
            "SELECT COALESCE(MAX(version), 0) FROM module_versions WHERE database_id = $1",
        )
        .bind(database.id.as_str())
        .fetch_one(&mut *tx)
        .await
        .context("read the latest module version")?;
        let version = ModuleVersion {
            database_id: database.id.clone(),
            version: latest + 1,
            module_sha256: module_sha256.to_owned(),
            published_by: principal.account_id.clone(),
            published_at_ms: self.now_ms(),
        };
        let inserted = sqlx::query(
            "INSERT INTO module_versions (database_id, version, module_sha256, published_by, \
             published_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(version.database_id.as_str())
        .bind(version.version)
        .bind(&version.module_sha256)
        .bind(version.published_by.as_str())
        .bind(version.published_at_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => {
                return Err(Error::Conflict(format!(
                    "another publish to {name:?} happened at the same time; publish again"
                )))
            }
            other => other.context("insert a module version")?,
        };
        self.record_in(
            &mut tx,
            NewEntry::by(principal, AuditAction::Publish, name, ip_text(client_ip)).detail(
                format!("version {} sha256 {}", version.version, module_sha256),
            ),
        )
        .await?;
        tx.commit().await.context("commit a publish")?;
        Ok(version)
    }

    /// Operator: suspends a database of any account (no more publishes).
    pub async fn suspend_database(
        &self,
        principal: &Principal,
        name: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        self.require_operator(principal)?;
        let database = self.database_by_name(name).await?;
        let mut tx = self.store.begin_write().await?;
        sqlx::query(
            "UPDATE databases SET suspended_at = $1 WHERE id = $2 AND suspended_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(database.id.as_str())
        .execute(&mut *tx)
        .await
        .context("suspend a database")?;
        self.record_in(
            &mut tx,
            NewEntry {
                account_id: Some(database.account_id.clone()),
                ..NewEntry::by(
                    principal,
                    AuditAction::DatabaseSuspend,
                    name,
                    ip_text(client_ip),
                )
            },
        )
        .await?;
        tx.commit().await.context("commit a suspension")?;
        Ok(())
    }

    /// Operator: deletes a database of any account.
    pub async fn operator_delete_database(
        &self,
        principal: &Principal,
        name: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        self.require_operator(principal)?;
        let database = self.database_by_name(name).await?;
        self.remove_database(principal, &database, client_ip, Some("by the operator"))
            .await
    }

    async fn remove_database(
        &self,
        principal: &Principal,
        database: &Database,
        client_ip: Option<IpAddr>,
        detail: Option<&str>,
    ) -> Result<(), Error> {
        let mut tx = self.store.begin_write().await?;
        // Children first: SQLite enforces the cascades only with its
        // foreign-key pragma on, so the order does not rely on it.
        for table in ["api_token_databases", "module_versions", "placements"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE database_id = $1"))
                .bind(database.id.as_str())
                .execute(&mut *tx)
                .await
                .context("delete a database's records")?;
        }
        sqlx::query("DELETE FROM databases WHERE id = $1")
            .bind(database.id.as_str())
            .execute(&mut *tx)
            .await
            .context("delete a database")?;
        let mut entry = NewEntry {
            account_id: Some(database.account_id.clone()),
            ..NewEntry::by(
                principal,
                AuditAction::DatabaseDelete,
                &database.name,
                ip_text(client_ip),
            )
        };
        entry.detail = Some(match detail {
            Some(detail) => format!("{} {detail}", database.id),
            None => database.id.to_string(),
        });
        self.record_in(&mut tx, entry).await?;
        tx.commit().await.context("commit a deletion")?;
        Ok(())
    }

    /// The database named `name`, whoever owns it.
    pub(crate) async fn database_by_name(&self, name: &str) -> Result<Database, Error> {
        let row = sqlx::query(&format!(
            "SELECT {DATABASE_COLUMNS} FROM databases WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.store.pool())
        .await
        .context("look up a database")?;
        match row {
            Some(row) => database_from_row(&row),
            None => Err(Error::NotFound {
                what: "database",
                name: name.to_owned(),
            }),
        }
    }
}

fn name_taken(name: &str) -> Error {
    Error::Conflict(format!(
        "the database name {name:?} is taken; choose another"
    ))
}

/// A retention in days is at most [`orrery_api::limits::RETENTION_DAYS_MAX`].
fn check_retention(days: Option<u32>) -> Result<(), Error> {
    match days {
        Some(days) if days > orrery_api::limits::RETENTION_DAYS_MAX => {
            Err(Error::invalid(format!(
                "retention_days is at most {} (0 keeps everything), not {days}",
                orrery_api::limits::RETENTION_DAYS_MAX
            )))
        }
        _ => Ok(()),
    }
}

fn database_from_row(row: &AnyRow) -> Result<Database, Error> {
    let account_id = AccountId::from_stored(get::<String>(row, "account_id")?);
    Ok(Database {
        id: DatabaseId::from_stored(get::<String>(row, "id")?),
        name: get(row, "name")?,
        owner_identity: token::account_identity(account_id.as_str()),
        account_id,
        created_at_ms: get(row, "created_at")?,
        suspended_at_ms: get(row, "suspended_at")?,
        durability: match get::<Option<String>>(row, "durability")? {
            Some(text) => Some(
                text.parse()
                    .map_err(|e: String| Error::Internal(format!("stored durability mode: {e}")))?,
            ),
            None => None,
        },
        retention_days: match get::<Option<i64>>(row, "retention_days")? {
            Some(days) => Some(u32::try_from(days).map_err(|_| {
                Error::Internal(format!("stored retention_days {days} is out of range"))
            })?),
            None => None,
        },
    })
}

fn version_from_row(row: &AnyRow) -> Result<ModuleVersion, Error> {
    Ok(ModuleVersion {
        database_id: DatabaseId::from_stored(get::<String>(row, "database_id")?),
        version: get(row, "version")?,
        module_sha256: get(row, "module_sha256")?,
        published_by: AccountId::from_stored(get::<String>(row, "published_by")?),
        published_at_ms: get(row, "published_at")?,
    })
}
