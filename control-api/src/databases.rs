//! Databases of an account, and its audit log.
//!
//! Owns: the handlers of `/databases`, `/databases/{name}` and `/audit`;
//! the confirmation of deletions (`?confirm=NAME`, else 428); telling the
//! [`crate::DatabaseHosts`] about renames and deletions after authorizing
//! and before the control plane records them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use control_plane::{validate_database_name, Scope};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Body, Caller, Params};
use crate::schema::{
    AuditEntryJson, CreateDatabase, DatabaseJson, DatabaseName, ErrorBody, RestoreDatabase,
    RestoredJson, RetentionRequest,
};
use crate::ApiState;

/// Entries `GET /audit` returns without `?limit`.
const AUDIT_DEFAULT_LIMIT: u32 = 100;

/// Creates a database in the caller's account.
#[utoipa::path(
    post,
    path = "/databases",
    tag = "databases",
    request_body = CreateDatabase,
    responses(
        (status = 201, body = DatabaseJson),
        (status = 400, body = ErrorBody, description = "the name is not a DNS label, the durability mode is unknown, or retention_days is over 3650"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "needs an account-wide deploy credential"),
        (status = 409, body = ErrorBody, description = "the name is taken"),
    )
)]
pub(crate) async fn create_database(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Body(request): Body<CreateDatabase>,
) -> Result<(StatusCode, Json<DatabaseJson>), ApiError> {
    let durability = match request.durability.as_deref() {
        Some(text) => Some(
            text.parse::<orrery_api::Durability>()
                .map_err(control_plane::Error::InvalidRequest)?,
        ),
        None => None,
    };
    let settings = orrery_api::DatabaseSettings {
        durability,
        retention_days: request.retention_days,
    };
    let database = state
        .control_plane
        .create_database_with(&caller.principal, &request.name, settings, caller.client_ip)
        .await?;
    Ok((StatusCode::CREATED, Json(database.into())))
}

/// The databases the credential may see, by name.
#[utoipa::path(
    get,
    path = "/databases",
    tag = "databases",
    responses(
        (status = 200, body = [DatabaseJson]),
        (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn list_databases(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<Vec<DatabaseJson>>, ApiError> {
    let databases = state
        .control_plane
        .list_databases(&caller.principal)
        .await?;
    Ok(Json(databases.into_iter().map(Into::into).collect()))
}

/// One database.
#[utoipa::path(
    get,
    path = "/databases/{name}",
    tag = "databases",
    params(("name" = String, Path, description = "the database's name")),
    responses(
        (status = 200, body = DatabaseJson),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn get_database(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<DatabaseJson>, ApiError> {
    let database = state
        .control_plane
        .get_database(&caller.principal, &name)
        .await?;
    Ok(Json(database.into()))
}

/// Renames a database; its tokens, versions and owner stay.
#[utoipa::path(
    patch,
    path = "/databases/{name}",
    tag = "databases",
    params(("name" = String, Path, description = "the database's current name")),
    request_body = DatabaseName,
    responses(
        (status = 200, body = DatabaseJson, description = "the renamed database"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the new name is taken"),
    )
)]
pub(crate) async fn rename_database(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(request): Body<DatabaseName>,
) -> Result<Json<DatabaseJson>, ApiError> {
    let cp = &state.control_plane;
    validate_database_name(&request.name)?;
    let database = cp.authorize(&caller.principal, &name, Scope::Admin).await?;
    if database.name == request.name {
        return Ok(Json(database.into()));
    }
    state
        .tell_hosts("rename", &name, |hosts| {
            hosts.rename(&database.name, &request.name)
        })
        .await?;
    let renamed = cp
        .rename_database(&caller.principal, &name, &request.name, caller.client_ip)
        .await;
    match renamed {
        Ok(database) => Ok(Json(database.into())),
        Err(error) => {
            if let Some(hosts) = &state.hosts {
                if let Err(undo) = hosts.rename(&request.name, &database.name).await {
                    tracing::error!(
                        "control-plane API: renaming {:?} back to {:?} on its host failed: {undo}",
                        request.name,
                        database.name
                    );
                }
            }
            Err(error.into())
        }
    }
}

/// `?confirm=NAME`.
#[derive(Deserialize)]
pub(crate) struct Confirm {
    confirm: Option<String>,
}

/// Deletes a database and its module versions; its name is free again.
#[utoipa::path(
    delete,
    path = "/databases/{name}",
    tag = "databases",
    params(
        ("name" = String, Path, description = "the database's name"),
        ("confirm" = Option<String>, Query, description = "the database's name again: required"),
    ),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 428, body = ErrorBody, description = "confirmation_required: repeat with ?confirm=NAME"),
    )
)]
pub(crate) async fn delete_database(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
    Params(confirm): Params<Confirm>,
) -> Result<StatusCode, ApiError> {
    let cp = &state.control_plane;
    let database = cp.authorize(&caller.principal, &name, Scope::Admin).await?;
    if confirm.confirm.as_deref() != Some(database.name.as_str()) {
        return Err(ApiError::confirmation_required(&database.name));
    }
    state
        .tell_hosts("delete", &name, |hosts| hosts.delete(&database.name))
        .await?;
    cp.delete_database(&caller.principal, &name, caller.client_ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets how many days of point-in-time history a database keeps in the
/// object store (admin); the host holding it applies it at once.
#[utoipa::path(
    put,
    path = "/databases/{name}/retention",
    tag = "databases",
    params(("name" = String, Path, description = "the database's name")),
    request_body = RetentionRequest,
    responses(
        (status = 200, body = DatabaseJson),
        (status = 400, body = ErrorBody, description = "over 3650 days"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn set_retention(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(request): Body<RetentionRequest>,
) -> Result<Json<DatabaseJson>, ApiError> {
    let cp = &state.control_plane;
    let days = request.retention_days;
    if days > orrery_api::limits::RETENTION_DAYS_MAX {
        return Err(ApiError::invalid(format!(
            "retention_days is at most {} (0 keeps everything), not {days}",
            orrery_api::limits::RETENTION_DAYS_MAX
        )));
    }
    let database = cp.authorize(&caller.principal, &name, Scope::Admin).await?;
    state
        .tell_hosts("set the retention of", &name, |hosts| {
            hosts.set_retention(&database.name, days)
        })
        .await?;
    let changed = cp
        .set_retention(&caller.principal, &name, days, caller.client_ip)
        .await;
    match changed {
        Ok(database) => Ok(Json(database.into())),
        Err(error) => {
            // The host applied it; put back what the control plane keeps.
            if let (Some(hosts), Some(before)) = (&state.hosts, database.retention_days) {
                if let Err(undo) = hosts.set_retention(&database.name, before).await {
                    tracing::error!(
                        database = %database.name,
                        "control-plane API: putting back the retention on its host failed: {undo}"
                    );
                }
            }
            Err(error.into())
        }
    }
}

/// Restores a database to a backup, a time or right after a transaction:
/// into a new database of the account (deploy, account-wide; placed with
/// the source), or in place (admin; every client is disconnected, and
/// restoring to `replaced_through` undoes it). The host holding the
/// database does the work; the audit log records it.
#[utoipa::path(
    post,
    path = "/databases/{name}/restore",
    tag = "databases",
    params(("name" = String, Path, description = "the database to restore")),
    request_body = RestoreDatabase,
    responses(
        (status = 200, body = RestoredJson, description = "restored in place"),
        (status = 201, body = RestoredJson, description = "restored into a new database"),
        (status = 400, body = ErrorBody, description = "not exactly one point, or neither `into` nor `in_place`"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the new name is taken"),
        (status = 503, body = ErrorBody, description = "the host could not restore (a point outside the history, the object store unreachable); nothing changed"),
    )
)]
pub(crate) async fn restore_database(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(request): Body<RestoreDatabase>,
) -> Result<(StatusCode, Json<RestoredJson>), ApiError> {
    let cp = &state.control_plane;
    let points = [
        request.snapshot.is_some(),
        request.offset.is_some(),
        request.at.is_some(),
    ];
    if points.iter().filter(|given| **given).count() != 1 {
        return Err(ApiError::invalid(
            "give exactly one of `snapshot` (a backup id), `offset` and `at` (an RFC 3339 time)",
        ));
    }
    let needed = match (&request.into, request.in_place) {
        (Some(into), false) => {
            validate_database_name(into)?;
            Scope::Deploy
        }
        (None, true) => Scope::Admin,
        _ => {
            return Err(ApiError::invalid(
                "give either `into` (a new database's name) or `\"in_place\": true`",
            ))
        }
    };
    let database = cp.authorize(&caller.principal, &name, needed).await?;
    let hosts = state
        .hosts
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("no host serves this control plane's databases"))?;
    let created = match &request.into {
        Some(into) => {
            let created = cp
                .create_database_with(
                    &caller.principal,
                    into,
                    database.settings(),
                    caller.client_ip,
                )
                .await?;
            if let Some(placement) = cp.placement(&database.name).await? {
                if let Err(e) = cp.place_database(into, &placement.host_id).await {
                    undo_create(&state, &caller, &created, &e.to_string()).await;
                    return Err(e.into());
                }
            }
            Some(created)
        }
        None => None,
    };
    let answer = hosts.restore(&database.name, &request).await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(refusal) => {
            if let Some(created) = &created {
                undo_create(&state, &caller, created, &refusal.message).await;
            }
            return Err(match refusal.status {
                400 => ApiError::invalid(refusal.message),
                409 => ApiError::conflict(refusal.message),
                _ => ApiError::unavailable(refusal.message),
            });
        }
    };
    let restored: RestoredJson = serde_json::from_value(answer)
        .map_err(|e| ApiError::internal(format!("the host's answer to a restore: {e}")))?;
    let point = match (&request.snapshot, request.offset, &request.at) {
        (Some(id), _, _) => format!("backup {id}"),
        (_, Some(offset), _) => format!("offset {offset}"),
        (_, _, at) => format!("time {}", at.as_deref().unwrap_or_default()),
    };
    let detail = match &request.into {
        Some(into) => format!("{point} into {into}"),
        None => format!(
            "{point} in place (replaced through offset {})",
            restored
                .replaced_through
                .map_or_else(|| "none".to_owned(), |o| o.to_string())
        ),
    };
    cp.record_restore(&caller.principal, &database.name, &detail, caller.client_ip)
        .await?;
    let status = match created {
        Some(_) => StatusCode::CREATED,
        None => StatusCode::OK,
    };
    Ok((status, Json(restored)))
}

/// Removes a database created for a restore the host then refused.
async fn undo_create(
    state: &ApiState,
    caller: &Caller,
    created: &control_plane::Database,
    reason: &str,
) {
    let reason = format!("the restore into it failed: {reason}");
    if let Err(e) = state
        .control_plane
        .undo_create_database(&caller.principal, created, &reason)
        .await
    {
        tracing::error!(
            database = %created.name,
            error = %e,
            "control-plane API: cannot remove a database whose restore failed; delete it by hand"
        );
    }
}

/// `?limit=N`.
#[derive(Deserialize)]
pub(crate) struct Limit {
    limit: Option<u32>,
}

/// The account's audit log, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    params(("limit" = Option<u32>, Query, description = "at most this many entries (1 to 1000, default 100)")),
    responses(
        (status = 200, body = [AuditEntryJson]),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "needs an account-wide admin credential"),
    )
)]
pub(crate) async fn audit_log(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Params(limit): Params<Limit>,
) -> Result<Json<Vec<AuditEntryJson>>, ApiError> {
    let entries = state
        .control_plane
        .audit_log(
            &caller.principal,
            limit.limit.unwrap_or(AUDIT_DEFAULT_LIMIT),
        )
        .await?;
    Ok(Json(entries.into_iter().map(Into::into).collect()))
}
