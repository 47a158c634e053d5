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
use crate::schema::{AuditEntryJson, CreateDatabase, DatabaseJson, DatabaseName, ErrorBody};
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
        (status = 400, body = ErrorBody, description = "the name is not a DNS label, or the durability mode is unknown"),
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
    let database = state
        .control_plane
        .create_database_with(
            &caller.principal,
            &request.name,
            durability,
            caller.client_ip,
        )
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
