//! API tokens: create (shown once), list, revoke.
//!
//! Owns: the handlers of `/tokens` and `/tokens/{id}`, and reading a scope
//! and a lifetime from JSON.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use control_plane::{NewToken, Scope};

use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::schema::{CreatedTokenJson, ErrorBody, TokenInfoJson, TokenRequest};
use crate::ApiState;

/// Creates an API token; the response is the only time it is shown.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body = TokenRequest,
    responses(
        (status = 201, body = CreatedTokenJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "needs an account-wide admin credential"),
        (status = 404, body = ErrorBody, description = "a listed database does not exist"),
    )
)]
pub(crate) async fn create_token(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Body(request): Body<TokenRequest>,
) -> Result<(StatusCode, Json<CreatedTokenJson>), ApiError> {
    let scope = Scope::parse(&request.scope).ok_or_else(|| {
        ApiError::invalid(format!(
            "unknown scope {:?}: use read, deploy or admin",
            request.scope
        ))
    })?;
    let expires_in_ms = request
        .expires_in_secs
        .map(|secs| {
            secs.checked_mul(1000)
                .and_then(|ms| i64::try_from(ms).ok())
                .ok_or_else(|| ApiError::invalid("expires_in_secs is too large"))
        })
        .transpose()?;
    let created = state
        .control_plane
        .create_token(
            &caller.principal,
            NewToken {
                name: request.name,
                scope,
                databases: request.databases,
                expires_in_ms,
            },
            caller.client_ip,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// The account's API tokens, newest first (never the tokens themselves).
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    responses(
        (status = 200, body = [TokenInfoJson]),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
pub(crate) async fn list_tokens(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfoJson>>, ApiError> {
    let tokens = state.control_plane.list_tokens(&caller.principal).await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

/// Revokes an API token; it is refused from then on.
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "the token's id (`tok_…`)")),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn revoke_token(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .control_plane
        .revoke_token(&caller.principal, &id, caller.client_ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
