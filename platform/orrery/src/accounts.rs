//! The accounts of `orrery start`: the edge's `Authenticator` answered in
//! process by the embedded control plane, and the control-plane API's
//! `DatabaseHosts` answered by the in-process registry.
//!
//! Owns: [`Embedded`] (translating between `control_plane` principals and
//! errors and the edge's grants and refusals) and [`LocalHosts`] (renames
//! and deletions the control-plane API makes, applied to the registry).
//! Does not own: any rule of who may do what (the control plane decides;
//! the edge applies the grant).

use std::net::IpAddr;
use std::sync::Arc;

use control_plane::{ControlPlane, Credential, Error, ErrorCode, Principal};
use orrery_edge::access::{
    Authenticator, BoxFuture, Grant, Handle, ModuleSigner, OwnerEvent, Refusal,
};
use sha2::{Digest, Sha256};
use spacetimedb_lib::Identity;
use tenant_host::registry::Registry;

/// The edge's authenticator over a control plane in the same process.
pub(crate) struct Embedded {
    pub(crate) plane: Arc<ControlPlane>,
    /// `--dev`: modules published without an account are signed too.
    pub(crate) open_publishing: bool,
}

/// What a grant carries for the later calls of its request.
struct Carried {
    principal: Principal,
    client: Option<IpAddr>,
}

fn refusal(error: Error) -> Refusal {
    let message = error.to_string();
    match error.code() {
        ErrorCode::Unauthorized => Refusal::Unauthorized(message),
        ErrorCode::Forbidden | ErrorCode::NotFound => Refusal::Forbidden(message),
        ErrorCode::Conflict => Refusal::Conflict(message),
        ErrorCode::InvalidRequest => Refusal::Invalid(message),
        _ => {
            tracing::error!(error = %message, "the control plane failed");
            Refusal::Unavailable(message)
        }
    }
}

fn carried(grant: &Grant) -> Result<&Carried, Refusal> {
    grant
        .handle
        .get::<Carried>()
        .ok_or_else(|| Refusal::Unavailable("a grant this server did not make".into()))
}

impl Embedded {
    async fn grant(&self, credential: &str, client: Option<IpAddr>) -> Result<Grant, Error> {
        let principal = self.plane.authenticate(credential).await?;
        let scope = principal.credential.scope();
        let databases = self.plane.credential_databases(&principal).await?;
        let credential_id = match &principal.credential {
            Credential::Session { .. } => "session".to_owned(),
            Credential::ApiToken { token_id, .. } => token_id.to_string(),
        };
        Ok(Grant {
            identity: principal.identity,
            account: principal.account_id.to_string(),
            issuer: control_plane::PLATFORM_ISSUER.to_owned(),
            scope,
            databases,
            credential: credential_id,
            handle: Handle::new(Carried { principal, client }),
        })
    }
}

impl Authenticator for Embedded {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
        client: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<Grant, Refusal>> {
        Box::pin(async move { self.grant(credential, client).await.map_err(refusal) })
    }

    fn claim_database<'a>(
        &'a self,
        grant: &'a Grant,
        name: &'a str,
    ) -> BoxFuture<'a, Result<orrery_api::DatabaseSettings, Refusal>> {
        Box::pin(async move {
            let carried = carried(grant)?;
            match self
                .plane
                .authorize(&carried.principal, name, control_plane::Scope::Deploy)
                .await
            {
                Ok(database) => Ok(database.settings()),
                Err(Error::NotFound { .. }) => self
                    .plane
                    .create_database(&carried.principal, name, carried.client)
                    .await
                    .map(|database| database.settings())
                    .map_err(refusal),
                Err(e) => Err(refusal(e)),
            }
        })
    }

    fn rename_database<'a>(
        &'a self,
        grant: &'a Grant,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            let carried = carried(grant)?;
            self.plane
                .rename_database(&carried.principal, from, to, carried.client)
                .await
                .map(|_| ())
                .map_err(refusal)
        })
    }

    fn record<'a>(&'a self, grant: &'a Grant, event: OwnerEvent) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(carried) = carried(grant) else { return };
            let (what, result) = match event {
                OwnerEvent::Published {
                    database, module, ..
                } => {
                    let sha = hex::encode(Sha256::digest(&module));
                    let result = self
                        .plane
                        .record_publish(&carried.principal, &database, &sha, carried.client)
                        .await
                        .map(|_| ());
                    (format!("the publish of {database}"), result)
                }
                OwnerEvent::Deleted { database } => {
                    let result = self
                        .plane
                        .delete_database(&carried.principal, &database, carried.client)
                        .await;
                    (format!("the deletion of {database}"), result)
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "the control plane did not record {what}");
            }
        })
    }
}

impl ModuleSigner for Embedded {
    fn sign<'a>(
        &'a self,
        grant: Option<&'a Grant>,
        publisher: Identity,
        database: &'a str,
        wasm: axum::body::Bytes,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            let signed = match grant {
                Some(grant) => {
                    let carried = carried(grant)?;
                    self.plane
                        .sign_module(&carried.principal, database, wasm.to_vec())
                        .await
                }
                None if self.open_publishing => {
                    let publisher = publisher.to_hex().to_string();
                    self.plane
                        .sign_module_unowned(database, &publisher, wasm.to_vec())
                        .await
                }
                None => {
                    return Err(Refusal::Unauthorized(
                        "publishing needs an account credential".into(),
                    ))
                }
            };
            signed.map(|_| ()).map_err(refusal)
        })
    }
}

/// The databases of this process's registry, as the control-plane API
/// renames and deletes them.
pub(crate) struct LocalHosts {
    pub(crate) plane: Arc<ControlPlane>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) backups: Arc<dyn orrery_edge::backups::Backups>,
}

impl LocalHosts {
    fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Registry) -> Result<T, String> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, String>> {
        let registry = self.registry.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || job(&registry))
                .await
                .map_err(|e| format!("the host task failed: {e}"))?
        })
    }
}

/// Renames database `from` of the registry to `to`, as its owner.
pub(crate) fn rename_local(registry: &Registry, from: &str, to: &str) -> Result<(), String> {
    let Some(id) = registry.lookup_name(from) else {
        // Created in the control plane but never published: nothing here.
        return Ok(());
    };
    let entry = registry
        .get(&id)
        .ok_or_else(|| format!("`{from}` has no database on this host"))?;
    registry
        .replace_names(&id, &entry.owner(), vec![to.to_owned()])
        .map_err(|e| e.to_string())
}

/// Sets the retention of database `name` of the registry, as the control
/// plane chose it.
pub(crate) fn retention_local(registry: &Registry, name: &str, days: u32) -> Result<(), String> {
    let Some(id) = registry.lookup_name(name) else {
        // Created in the control plane but never published: the claim
        // carries the setting when it is.
        return Ok(());
    };
    registry
        .set_retention_days(&id, days)
        .map_err(|e| e.to_string())
}

/// Deletes database `name` of the registry, as its owner.
pub(crate) fn delete_local(registry: &Registry, name: &str) -> Result<(), String> {
    let Some(id) = registry.lookup_name(name) else {
        return Ok(());
    };
    let Some(entry) = registry.get(&id) else {
        return Ok(());
    };
    registry
        .delete(&id, &entry.owner())
        .map_err(|e| e.to_string())
}

/// Restores database `name` of the registry as the control plane asks
/// (it authorized the caller, and created and placed a new database).
pub(crate) fn restore_local(
    registry: &Registry,
    backups: &dyn orrery_edge::backups::Backups,
    name: &str,
    request: &control_api::RestoreDatabase,
) -> Result<serde_json::Value, control_api::HostRefusal> {
    use orrery_edge::backups::{restore_on_host, RestoreRequest};
    let refused = |status: u16, message: String| control_api::HostRefusal { status, message };
    let request = RestoreRequest {
        into: request.into.clone(),
        in_place: request.in_place,
        snapshot: request.snapshot.clone(),
        offset: request.offset,
        at: request.at.clone(),
    };
    let (point, target) = request.parse().map_err(|e| refused(400, e))?;
    let entry = registry
        .lookup_name(name)
        .and_then(|id| registry.get(&id))
        .ok_or_else(|| {
            refused(
                503,
                format!("`{name}` has no database on this host yet (publish it first)"),
            )
        })?;
    restore_on_host(registry, backups, &entry, &point, &target)
        .map_err(|failed| refused(failed.status, failed.message))
}

/// Before a host imports a database of another object store: this control
/// plane validates and signs its module, which hosts run only signed.
pub(crate) async fn sign_foreign_module(
    plane: &ControlPlane,
    import: &control_api::HostImport,
) -> Result<(), control_api::HostRefusal> {
    let request = &import.restore;
    let wasm = crate::replica::foreign_module(&request.store, &request.database)
        .await
        .map_err(|message| control_api::HostRefusal {
            status: 503,
            message,
        })?;
    plane
        .sign_module_unowned(&request.into, &import.owner, wasm)
        .await
        .map(|_| ())
        .map_err(|e| control_api::HostRefusal {
            status: e.code().http_status(),
            message: e.to_string(),
        })
}

/// Restores into the new database the control plane made a database of
/// another object store, as an operator asked.
pub(crate) fn import_local(
    registry: &Registry,
    backups: &dyn orrery_edge::backups::Backups,
    import: &control_api::HostImport,
) -> Result<serde_json::Value, control_api::HostRefusal> {
    use orrery_edge::backups::{ForeignDatabase, RestorePoint};
    let refused = |status: u16, message: String| control_api::HostRefusal { status, message };
    let request = &import.restore;
    let point = RestorePoint::from_fields(
        request.snapshot.as_deref(),
        request.offset,
        request.at.as_deref(),
    )
    .map_err(|e| refused(400, e))?
    .unwrap_or(RestorePoint::Latest);
    let from = ForeignDatabase {
        store: request.store.clone(),
        database: Identity::from_hex(&request.database)
            .map_err(|e| refused(400, format!("`database` is not an identity: {e}")))?,
    };
    let owner = Identity::from_hex(&import.owner)
        .map_err(|e| refused(400, format!("`owner` is not an identity: {e}")))?;
    let into = &request.into;
    if registry.name_target(into).is_some() {
        return Err(refused(
            409,
            format!("Cannot restore into {into} because it already is in use."),
        ));
    }
    let identity = Identity::from_byte_array(orrery_api::ids::random_bytes());
    let dir = registry.root().join(identity.to_hex().as_str());
    let offset = backups
        .import(&from, &point, identity, into, owner, &dir)
        .map_err(|e| refused(503, format!("the restore failed: {e}")))?;
    registry
        .adopt(identity)
        .map_err(|e| refused(503, format!("the restored database did not open: {e}")))?;
    tracing::info!(database = %into, from = %request.store, source = %request.database, offset, "database restored from another object store");
    Ok(serde_json::json!({
        "database": into,
        "identity": identity.to_hex().to_string(),
        "offset": offset,
    }))
}

impl control_api::DatabaseHosts for LocalHosts {
    fn rename<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> control_api::BoxFuture<'a, Result<(), control_api::HostError>> {
        let (from, to) = (from.to_owned(), to.to_owned());
        let done = self.run(move |registry| rename_local(registry, &from, &to));
        Box::pin(async move { done.await.map_err(control_api::HostError) })
    }

    fn delete<'a>(
        &'a self,
        name: &'a str,
    ) -> control_api::BoxFuture<'a, Result<(), control_api::HostError>> {
        let name = name.to_owned();
        let done = self.run(move |registry| delete_local(registry, &name));
        Box::pin(async move { done.await.map_err(control_api::HostError) })
    }

    fn set_retention<'a>(
        &'a self,
        name: &'a str,
        days: u32,
    ) -> control_api::BoxFuture<'a, Result<(), control_api::HostError>> {
        let name = name.to_owned();
        let done = self.run(move |registry| retention_local(registry, &name, days));
        Box::pin(async move { done.await.map_err(control_api::HostError) })
    }

    fn import<'a>(
        &'a self,
        import: &'a control_api::HostImport,
    ) -> control_api::BoxFuture<'a, Result<serde_json::Value, control_api::HostRefusal>> {
        let (registry, backups, import) =
            (self.registry.clone(), self.backups.clone(), import.clone());
        let plane = self.plane.clone();
        Box::pin(async move {
            sign_foreign_module(&plane, &import).await?;
            tokio::task::spawn_blocking(move || import_local(&registry, backups.as_ref(), &import))
                .await
                .map_err(|e| control_api::HostRefusal {
                    status: 500,
                    message: format!("the host task failed: {e}"),
                })?
        })
    }

    fn restore<'a>(
        &'a self,
        name: &'a str,
        request: &'a control_api::RestoreDatabase,
    ) -> control_api::BoxFuture<'a, Result<serde_json::Value, control_api::HostRefusal>> {
        let (registry, backups) = (self.registry.clone(), self.backups.clone());
        let (name, request) = (name.to_owned(), request.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                restore_local(&registry, backups.as_ref(), &name, &request)
            })
            .await
            .map_err(|e| control_api::HostRefusal {
                status: 500,
                message: format!("the host task failed: {e}"),
            })?
        })
    }
}
