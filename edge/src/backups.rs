//! A database's backups over HTTP: `GET /v1/database/{name}/backups` lists
//! them (read), `POST` takes one now (deploy). An Orrery extension beside
//! the reference's database routes.
//!
//! Owns: the [`Backups`] seam the binary fills (snapshots in the object
//! store, `orrery_objstore`) and the JSON of a backup: `id`, `offset`,
//! `time` (RFC 3339, UTC) and `size` (bytes).
//! Does not own: taking or storing snapshots, or restoring them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::database::{blocking, resolve_database, Caller};
use crate::error::{fail, ErrorCode};
use crate::ApiState;
use orrery_api::access::Scope;
use tenant_host::registry::Entry;

/// One backup: a snapshot the object store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// Names it for a restore.
    pub id: String,
    /// The last transaction it holds.
    pub offset: u64,
    /// When it was taken, microseconds since the Unix epoch.
    pub taken_at_micros: i64,
    /// Its bytes (parts shared with other backups count in each).
    pub bytes: u64,
}

/// Where a host's databases are backed up. Called from blocking contexts.
pub trait Backups: Send + Sync + 'static {
    /// The backups of `entry`, newest first.
    fn list(&self, entry: &Entry) -> Result<Vec<Backup>, String>;
    /// Takes a snapshot of `entry` now and returns it once the object
    /// store holds it.
    fn create(&self, entry: &Entry) -> Result<Backup, String>;
}

fn backup_json(backup: &Backup) -> Value {
    let time = std::time::UNIX_EPOCH
        + std::time::Duration::from_micros(u64::try_from(backup.taken_at_micros).unwrap_or(0));
    json!({
        "id": backup.id,
        "offset": backup.offset,
        "time": humantime::format_rfc3339_micros(time).to_string(),
        "size": backup.bytes,
    })
}

/// The database and the backups seam, or the response refusing the call.
#[allow(clippy::result_large_err)]
fn target(
    state: &ApiState,
    caller: &Caller,
    name_or_identity: &str,
    needed: Scope,
) -> Result<(Arc<Entry>, Arc<dyn Backups>), Response> {
    let entry = resolve_database(&state.registry, name_or_identity)?;
    caller.owner_may(&state.access, &entry, needed)?;
    let backups = state.backups.clone().ok_or_else(|| {
        fail(
            ErrorCode::Unavailable,
            "this host keeps no backups (it has no object store)",
        )
    })?;
    Ok((entry, backups))
}

pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
) -> Response {
    let (entry, backups) = match target(&state, &caller, &name_or_identity, Scope::Read) {
        Ok(found) => found,
        Err(response) => return response,
    };
    match blocking(move || backups.list(&entry)).await {
        Ok(Ok(list)) => Json(Value::Array(list.iter().map(backup_json).collect())).into_response(),
        Ok(Err(e)) => fail(ErrorCode::Unavailable, format!("cannot list backups: {e}")),
        Err(response) => response,
    }
}

pub(crate) async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
) -> Response {
    let (entry, backups) = match target(&state, &caller, &name_or_identity, Scope::Deploy) {
        Ok(found) => found,
        Err(response) => return response,
    };
    match blocking(move || backups.create(&entry)).await {
        Ok(Ok(backup)) => (StatusCode::CREATED, Json(backup_json(&backup))).into_response(),
        Ok(Err(e)) => fail(ErrorCode::Unavailable, format!("the backup failed: {e}")),
        Err(response) => response,
    }
}
