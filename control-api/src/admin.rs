//! The operator's routes: accounts, invitations, suspending and deleting
//! any database.
//!
//! Owns: the handlers under `/admin`. The control plane checks the operator
//! role; the API checks it too before telling the hosts anything.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use control_plane::{Principal, Role, Scope};

use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::schema::{
    AccountJson, ErrorBody, HostImport, InviteJson, InviteRequest, RestoreFromStore, RestoredJson,
};
use crate::ApiState;

/// Every account, oldest first.
#[utoipa::path(
    get,
    path = "/admin/accounts",
    tag = "admin",
    responses(
        (status = 200, body = [AccountJson]),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "needs the operator role"),
    )
)]
pub(crate) async fn list_accounts(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<Vec<AccountJson>>, ApiError> {
    let accounts = state.control_plane.list_accounts(&caller.principal).await?;
    Ok(Json(accounts.into_iter().map(Into::into).collect()))
}

/// An invitation for invite-only sign-up, shown once.
#[utoipa::path(
    post,
    path = "/admin/invites",
    tag = "admin",
    request_body = InviteRequest,
    responses(
        (status = 201, body = InviteJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "needs the operator role"),
    )
)]
pub(crate) async fn create_invite(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Body(request): Body<InviteRequest>,
) -> Result<(StatusCode, Json<InviteJson>), ApiError> {
    let invite = state
        .control_plane
        .create_invite(&caller.principal, request.email.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(InviteJson { invite })))
}

/// Suspends a database of any account: it takes no new publish.
#[utoipa::path(
    post,
    path = "/admin/databases/{name}/suspend",
    tag = "admin",
    params(("name" = String, Path, description = "the database's name")),
    responses(
        (status = 204, description = "suspended"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "needs the operator role"),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn suspend_database(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_operator(&caller.principal)?;
    state
        .tell_hosts("suspend", &name, |hosts| hosts.suspend(&name))
        .await?;
    state
        .control_plane
        .suspend_database(&caller.principal, &name, caller.client_ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a database of any account.
#[utoipa::path(
    delete,
    path = "/admin/databases/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "the database's name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "needs the operator role"),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn delete_database(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_operator(&caller.principal)?;
    state
        .tell_hosts("delete", &name, |hosts| hosts.delete(&name))
        .await?;
    state
        .control_plane
        .operator_delete_database(&caller.principal, &name, caller.client_ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restores a database of another object store (another bucket or
/// deployment, given by URL) into a new database of an account (the
/// operator's unless `account` names another by email),
/// on a host of this platform: at a backup, a time, an offset, or (none
/// given) its newest point.
#[utoipa::path(
    post,
    path = "/admin/restores",
    tag = "admin",
    request_body = RestoreFromStore,
    responses(
        (status = 201, body = RestoredJson),
        (status = 400, body = ErrorBody, description = "not an identity, a DNS label, or more than one point"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "needs the operator role"),
        (status = 404, body = ErrorBody, description = "no account has that email"),
        (status = 409, body = ErrorBody, description = "the new name is taken"),
        (status = 503, body = ErrorBody, description = "the store or the point could not be read, or no host is up; nothing is left behind"),
    )
)]
pub(crate) async fn restore_from_store(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Body(request): Body<RestoreFromStore>,
) -> Result<(StatusCode, Json<RestoredJson>), ApiError> {
    require_operator(&caller.principal)?;
    control_plane::validate_database_name(&request.into)?;
    let is_identity =
        request.database.len() == 64 && request.database.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_identity {
        return Err(ApiError::invalid(
            "`database` is the identity of the database in that store: 64 hex digits",
        ));
    }
    let points = [
        request.snapshot.is_some(),
        request.offset.is_some(),
        request.at.is_some(),
    ];
    if points.iter().filter(|given| **given).count() > 1 {
        return Err(ApiError::invalid(
            "give at most one of `snapshot`, `offset` and `at` (none: the newest point)",
        ));
    }
    let hosts = state
        .hosts
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("no host serves this control plane's databases"))?;
    let cp = &state.control_plane;
    let created = match &request.account {
        Some(email) => {
            cp.operator_create_database(&caller.principal, email, &request.into, caller.client_ip)
                .await?
        }
        None => {
            cp.create_database_with(
                &caller.principal,
                &request.into,
                Default::default(),
                caller.client_ip,
            )
            .await?
        }
    };
    let import = HostImport {
        owner: created.owner_identity.to_hex().to_string(),
        restore: request.clone(),
    };
    let answer = match hosts.import(&import).await {
        Ok(answer) => answer,
        Err(refusal) => {
            let reason = format!("the restore into it failed: {}", refusal.message);
            if let Err(e) = cp
                .undo_create_database(&caller.principal, &created, &reason)
                .await
            {
                tracing::error!(database = %created.name, error = %e, "control-plane API: cannot remove a database whose restore failed; delete it by hand");
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
    let detail = format!(
        "from {} database {} into {}",
        request.store, request.database, request.into
    );
    cp.record_restore(&caller.principal, &request.into, &detail, caller.client_ip)
        .await?;
    Ok((StatusCode::CREATED, Json(restored)))
}

/// The control plane's operator check, made before the hosts are told.
fn require_operator(principal: &Principal) -> Result<(), ApiError> {
    let credential = &principal.credential;
    if principal.role != Role::Operator
        || !credential.is_account_wide()
        || !credential.scope().covers(Scope::Admin)
    {
        return Err(control_plane::Error::Forbidden(
            "this needs the operator role with an account-wide admin credential".into(),
        )
        .into());
    }
    Ok(())
}
