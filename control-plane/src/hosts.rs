//! Hosts and placement: which `orrery host` process serves which database.
//!
//! Owns: registering hosts and their heartbeats ([`ControlPlane::register_host`],
//! [`ControlPlane::heartbeat`]), placing a database on the host that first
//! publishes it ([`ControlPlane::place_database`]), and where a database is
//! served ([`ControlPlane::placement`]). A placement holds a lease
//! (generation, expiry) that heartbeats renew.
//! Does not own: moving a database between hosts (its data is on the
//! holder's disk until logs ship to the object store), or routing requests.
//!
//! Rules: a database stays on the host it was placed on; another host that
//! is asked for it is refused with where it lives. Host ids are short
//! printable names; addresses are the URLs the control plane reaches the
//! host at.

use crate::error::StoreContext;
use crate::plane::get;
use crate::{ControlPlane, Error};

/// How long a lease lasts without a heartbeat.
pub const LEASE_MS: i64 = 30_000;

/// Longest host id.
pub const HOST_ID_BYTES_MAX: usize = 64;

/// A registered host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    pub id: String,
    /// The URL the control plane reaches the host at.
    pub address: String,
    pub registered_at_ms: i64,
    pub last_heartbeat_at_ms: i64,
}

/// Where a database is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub database: String,
    pub host_id: String,
    pub address: String,
    /// Increases by one at every grant of the database's lease.
    pub generation: i64,
    pub expires_at_ms: i64,
}

fn check_host(id: &str, address: &str) -> Result<(), Error> {
    let id_ok = !id.is_empty()
        && id.len() <= HOST_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !id_ok {
        return Err(Error::invalid(format!(
            "host id {id:?}: 1 to {HOST_ID_BYTES_MAX} letters, digits, '-', '_' or '.'"
        )));
    }
    if !(address.starts_with("http://") || address.starts_with("https://")) || address.len() > 512 {
        return Err(Error::invalid(format!(
            "host address {address:?} is not an http(s) URL"
        )));
    }
    Ok(())
}

impl ControlPlane {
    /// Registers host `id` reachable at `address` (or updates its address),
    /// counting as a heartbeat.
    pub async fn register_host(&self, id: &str, address: &str) -> Result<HostInfo, Error> {
        check_host(id, address)?;
        let now = self.clock.now_ms();
        sqlx::query(
            "INSERT INTO hosts (id, address, registered_at, last_heartbeat_at) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET address = excluded.address, \
             last_heartbeat_at = excluded.last_heartbeat_at",
        )
        .bind(id)
        .bind(address)
        .bind(now)
        .execute(self.store.pool())
        .await
        .context("register a host")?;
        self.renew_leases(id, now).await?;
        self.host(id).await
    }

    /// Host `id` is alive: renews the leases of its databases and returns
    /// their names.
    pub async fn heartbeat(&self, id: &str) -> Result<Vec<String>, Error> {
        let now = self.clock.now_ms();
        let updated = sqlx::query("UPDATE hosts SET last_heartbeat_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.store.pool())
            .await
            .context("record a heartbeat")?;
        if updated.rows_affected() == 0 {
            return Err(Error::NotFound {
                what: "host",
                name: id.to_owned(),
            });
        }
        self.renew_leases(id, now).await?;
        let rows = sqlx::query(
            "SELECT d.name AS name FROM placements p JOIN databases d ON d.id = p.database_id \
             WHERE p.host_id = $1 ORDER BY d.name",
        )
        .bind(id)
        .fetch_all(self.store.pool())
        .await
        .context("list a host's databases")?;
        rows.iter().map(|row| get::<String>(row, "name")).collect()
    }

    async fn renew_leases(&self, host: &str, now: i64) -> Result<(), Error> {
        sqlx::query("UPDATE placements SET expires_at = $1 WHERE host_id = $2")
            .bind(now + LEASE_MS)
            .bind(host)
            .execute(self.store.pool())
            .await
            .context("renew leases")?;
        Ok(())
    }

    /// The names of the databases a credential is limited to; `None` for
    /// an account-wide credential (what a host needs to check it).
    pub async fn credential_databases(
        &self,
        principal: &crate::Principal,
    ) -> Result<Option<Vec<String>>, Error> {
        match &principal.credential {
            crate::Credential::ApiToken {
                databases: crate::TokenDatabases::Listed(ids),
                ..
            } => Ok(Some(
                self.list_databases(principal)
                    .await?
                    .into_iter()
                    .filter(|d| ids.contains(&d.id))
                    .map(|d| d.name)
                    .collect(),
            )),
            _ => Ok(None),
        }
    }

    /// Host `id`.
    pub async fn host(&self, id: &str) -> Result<HostInfo, Error> {
        let row = sqlx::query(
            "SELECT id, address, registered_at, last_heartbeat_at FROM hosts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.store.pool())
        .await
        .context("read a host")?
        .ok_or_else(|| Error::NotFound {
            what: "host",
            name: id.to_owned(),
        })?;
        host_from_row(&row)
    }

    /// Every registered host, by id.
    pub async fn list_hosts(&self) -> Result<Vec<HostInfo>, Error> {
        let rows = sqlx::query(
            "SELECT id, address, registered_at, last_heartbeat_at FROM hosts ORDER BY id",
        )
        .fetch_all(self.store.pool())
        .await
        .context("list hosts")?;
        rows.iter().map(host_from_row).collect()
    }

    /// Places database `name` on host `host` unless it is placed already:
    /// the first publish decides where a database lives. Asked by another
    /// host than the holder, it is refused with where the database lives.
    pub async fn place_database(&self, name: &str, host: &str) -> Result<Placement, Error> {
        let database = self.database_by_name(name).await?;
        let now = self.clock.now_ms();
        let mut tx = self.store.begin_write().await?;
        let existing = sqlx::query(
            "SELECT p.host_id AS host_id, h.address AS address, p.generation AS generation, \
             p.expires_at AS expires_at FROM placements p JOIN hosts h ON h.id = p.host_id \
             WHERE p.database_id = $1",
        )
        .bind(database.id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .context("read a placement")?;
        if let Some(row) = existing {
            let placement = Placement {
                database: name.to_owned(),
                host_id: get(&row, "host_id")?,
                address: get(&row, "address")?,
                generation: get(&row, "generation")?,
                expires_at_ms: get(&row, "expires_at")?,
            };
            if placement.host_id == host {
                return Ok(placement);
            }
            return Err(Error::Conflict(format!(
                "database {name:?} is served by host {} at {}",
                placement.host_id, placement.address
            )));
        }
        let address: String =
            sqlx::query_scalar::<sqlx::Any, String>("SELECT address FROM hosts WHERE id = $1")
                .bind(host)
                .fetch_optional(&mut *tx)
                .await
                .context("read a host")?
                .ok_or_else(|| Error::NotFound {
                    what: "host",
                    name: host.to_owned(),
                })?;
        sqlx::query(
            "INSERT INTO placements (database_id, host_id, generation, expires_at) \
             VALUES ($1, $2, 1, $3)",
        )
        .bind(database.id.as_str())
        .bind(host)
        .bind(now + LEASE_MS)
        .execute(&mut *tx)
        .await
        .context("place a database")?;
        tx.commit().await.context("commit a placement")?;
        Ok(Placement {
            database: name.to_owned(),
            host_id: host.to_owned(),
            address,
            generation: 1,
            expires_at_ms: now + LEASE_MS,
        })
    }

    /// Where database `name` is served, if it is placed.
    pub async fn placement(&self, name: &str) -> Result<Option<Placement>, Error> {
        let row = sqlx::query(
            "SELECT p.host_id AS host_id, h.address AS address, p.generation AS generation, \
             p.expires_at AS expires_at FROM placements p JOIN hosts h ON h.id = p.host_id \
             JOIN databases d ON d.id = p.database_id WHERE d.name = $1",
        )
        .bind(name)
        .fetch_optional(self.store.pool())
        .await
        .context("read a placement")?;
        row.map(|row| {
            Ok(Placement {
                database: name.to_owned(),
                host_id: get(&row, "host_id")?,
                address: get(&row, "address")?,
                generation: get(&row, "generation")?,
                expires_at_ms: get(&row, "expires_at")?,
            })
        })
        .transpose()
    }
}

fn host_from_row(row: &sqlx::any::AnyRow) -> Result<HostInfo, Error> {
    Ok(HostInfo {
        id: get(row, "id")?,
        address: get(row, "address")?,
        registered_at_ms: get(row, "registered_at")?,
        last_heartbeat_at_ms: get(row, "last_heartbeat_at")?,
    })
}
