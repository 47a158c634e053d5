//! A database's backups over HTTP: `GET /v1/database/{name}/backups` lists
//! them (read), `POST` takes one now (deploy), and `POST
//! /v1/database/{name}/restore` makes a new database of the state after
//! one of its transactions (deploy, and the new name must be free). Orrery
//! extensions beside the reference's database routes.
//!
//! Owns: the [`Backups`] seam the binary fills (snapshots and logs in the
//! object store, `orrery_objstore`), the JSON of a backup: `id`, `offset`,
//! `time` (RFC 3339, UTC) and `size` (bytes), and the restore request
//! `{"into": NAME}` with one of `"snapshot": ID`, `"offset": N` or
//! `"at": RFC3339`.
//! Does not own: taking, storing or reading back snapshots and logs.

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

/// The point of a database's history a restore goes back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestorePoint {
    /// The newest point the store holds.
    Latest,
    /// Exactly the backup with this id.
    Backup(String),
    /// Right after the transaction at this offset.
    Offset(u64),
    /// Right after the last transaction committed at or before this time
    /// (microseconds since the Unix epoch).
    Time(i64),
}

/// A database in another object store: its URL (`s3://bucket/prefix`,
/// `file:///dir`) and the database's identity there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignDatabase {
    pub store: String,
    pub database: spacetimedb_lib::Identity,
}

/// What an in-place restore did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InPlace {
    /// The last transaction of the restored point.
    pub restored_offset: u64,
    /// The last transaction before the restore: restoring to it undoes it.
    pub replaced_through: Option<u64>,
    /// The restore's own transaction (`None` when nothing differed).
    pub offset: Option<u64>,
    pub rows_deleted: u64,
    pub rows_inserted: u64,
}

/// Where a host's databases are backed up. Called from blocking contexts.
pub trait Backups: Send + Sync + 'static {
    /// Writes into `dir` (absent) the directory of a new database
    /// `identity` named `name`, holding `entry`'s state at `point` and its
    /// module; returns the offset of the last transaction restored.
    fn restore(
        &self,
        entry: &Entry,
        point: &RestorePoint,
        identity: spacetimedb_lib::Identity,
        name: &str,
        dir: &std::path::Path,
    ) -> Result<u64, String>;
    /// Brings `entry` back to its state at `point` in place: one new
    /// transaction after every shipped one, so the state it replaces stays
    /// restorable. Every client is disconnected.
    fn restore_in_place(&self, entry: &Entry, point: &RestorePoint) -> Result<InPlace, String>;
    /// Writes into `dir` (absent) the directory of a new database
    /// `identity` named `name` and owned by `owner`, holding the state at
    /// `point` of a database in another object store (another bucket or
    /// deployment) and its module; returns the offset of the last
    /// transaction restored. For operators only: the store is any URL.
    fn import(
        &self,
        from: &ForeignDatabase,
        point: &RestorePoint,
        identity: spacetimedb_lib::Identity,
        name: &str,
        owner: spacetimedb_lib::Identity,
        dir: &std::path::Path,
    ) -> Result<u64, String>;
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

/// A restore as `POST …/restore` asks for it: `{"into": NAME}` or
/// `{"in_place": true}`, with one of `snapshot`, `offset` and `at`. The
/// control plane sends the same to the host holding the database.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The new database's name; absent for an in-place restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Restore the database itself (it must be said: an in-place restore
    /// replaces the current state, which stays restorable).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_place: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// RFC 3339, e.g. `2026-12-06T21:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// Where a restore goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreTarget {
    /// A new database with this (valid, free) name.
    Into(String),
    /// The database itself.
    InPlace,
}

impl RestorePoint {
    /// The point that one of `snapshot` (a backup id), `offset` and `at`
    /// (RFC 3339) names; `None` when none is given, an error for more.
    pub fn from_fields(
        snapshot: Option<&str>,
        offset: Option<u64>,
        at: Option<&str>,
    ) -> Result<Option<RestorePoint>, String> {
        Ok(Some(match (snapshot, offset, at) {
            (None, None, None) => return Ok(None),
            (Some(id), None, None) => RestorePoint::Backup(id.to_owned()),
            (None, Some(offset), None) => RestorePoint::Offset(offset),
            (None, None, Some(at)) => {
                let time = humantime::parse_rfc3339_weak(at)
                    .map_err(|e| format!("`at` is not an RFC 3339 time ({e}): {at}"))?;
                RestorePoint::Time(
                    time.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
                )
            }
            _ => return Err("give only one of `snapshot`, `offset` and `at`".into()),
        }))
    }
}

impl RestoreRequest {
    /// The point and the target, or why the request is not a restore.
    pub fn parse(&self) -> Result<(RestorePoint, RestoreTarget), String> {
        let point = RestorePoint::from_fields(
            self.snapshot.as_deref(),
            self.offset,
            self.at.as_deref(),
        )?
        .ok_or("give one of `snapshot` (a backup id), `offset` and `at` (an RFC 3339 time)")?;
        let target = match (&self.into, self.in_place) {
            (Some(into), false) => {
                if !tenant_host::registry::is_valid_name(into) {
                    return Err(format!("`{into}` is not a valid database name"));
                }
                RestoreTarget::Into(into.clone())
            }
            (None, true) => RestoreTarget::InPlace,
            _ => {
                return Err(
                    "give either `into` (a new database's name) or `\"in_place\": true`".into(),
                )
            }
        };
        Ok((point, target))
    }
}

/// Why a restore on this host failed: the HTTP status it answers with and
/// the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreFailed {
    pub status: u16,
    pub message: String,
}

/// Runs a restore the caller is authorized for, on this host (blocking):
/// into a new database, which the registry then serves, or in place.
/// Answers the JSON the restore routes return.
pub fn restore_on_host(
    registry: &tenant_host::registry::Registry,
    backups: &dyn Backups,
    entry: &Entry,
    point: &RestorePoint,
    target: &RestoreTarget,
) -> Result<Value, RestoreFailed> {
    let unavailable = |message: String| RestoreFailed {
        status: 503,
        message,
    };
    match target {
        RestoreTarget::Into(into) => {
            if registry.name_target(into).is_some() {
                return Err(RestoreFailed {
                    status: 409,
                    message: format!("Cannot restore into {into} because it already is in use."),
                });
            }
            let identity =
                spacetimedb_lib::Identity::from_byte_array(orrery_api::ids::random_bytes());
            let dir = registry.root().join(identity.to_hex().as_str());
            let offset = backups
                .restore(entry, point, identity, into, &dir)
                .map_err(|e| unavailable(format!("the restore failed: {e}")))?;
            registry.adopt(identity).map_err(|e| {
                unavailable(format!(
                    "the restore failed: the restored database did not open: {e}"
                ))
            })?;
            Ok(json!({
                "database": into,
                "identity": identity.to_hex().to_string(),
                "offset": offset,
            }))
        }
        RestoreTarget::InPlace => {
            let name = entry
                .names()
                .first()
                .cloned()
                .unwrap_or_else(|| entry.identity().to_hex().to_string());
            let done = backups
                .restore_in_place(entry, point)
                .map_err(|e| unavailable(format!("the restore failed: {e}")))?;
            tracing::info!(
                database = %name,
                restored_offset = done.restored_offset,
                replaced_through = ?done.replaced_through,
                "database restored in place"
            );
            Ok(json!({
                "database": name,
                "identity": entry.identity().to_hex().to_string(),
                "in_place": true,
                "restored_offset": done.restored_offset,
                "replaced_through": done.replaced_through,
                "offset": done.offset,
                "rows_deleted": done.rows_deleted,
                "rows_inserted": done.rows_inserted,
            }))
        }
    }
}

pub(crate) async fn restore(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<RestoreRequest>(&body)
        .map_err(|e| format!("a restore is {{\"into\": NAME}} or {{\"in_place\": true}} with one of \"snapshot\", \"offset\" and \"at\": {e}"))
        .and_then(|request| request.parse());
    let (point, target_db) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return fail(ErrorCode::InvalidRequest, e),
    };
    // An in-place restore replaces every row, as a delete would: admin.
    let needed = match target_db {
        RestoreTarget::InPlace => Scope::Admin,
        RestoreTarget::Into(_) => Scope::Deploy,
    };
    let (entry, backups) = match target(&state, &caller, &name_or_identity, needed) {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let RestoreTarget::Into(into) = &target_db {
        if state.registry.name_target(into).is_some() {
            return fail(
                ErrorCode::Conflict,
                format!("Cannot restore into {into} because it already is in use."),
            );
        }
        // With accounts, the new database is the account's like any first publish.
        if let (Some(grant), Some(authenticator)) = (&caller.grant, &state.access.authenticator) {
            if let Err(refusal) = authenticator.claim_database(grant, into).await {
                return refusal.into_response();
            }
        }
    }
    let registry = state.registry.clone();
    let restored = blocking(move || {
        restore_on_host(&registry, backups.as_ref(), &entry, &point, &target_db)
            .map(|answer| (target_db, answer))
    })
    .await;
    match restored {
        Ok(Ok((RestoreTarget::Into(_), answer))) => {
            (StatusCode::CREATED, Json(answer)).into_response()
        }
        Ok(Ok((RestoreTarget::InPlace, answer))) => Json(answer).into_response(),
        Ok(Err(failed)) => fail(
            match failed.status {
                409 => ErrorCode::Conflict,
                _ => ErrorCode::Unavailable,
            },
            failed.message,
        ),
        Err(response) => response,
    }
}
