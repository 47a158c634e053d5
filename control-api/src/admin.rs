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
use crate::schema::{AccountJson, ErrorBody, InviteJson, InviteRequest};
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
