//! Accounts and sessions: sign up, log in, log out, the account, the
//! password.
//!
//! Owns: the handlers of `/signup`, `/login`, `/logout`, `/account` and
//! `/account/password`, and setting or clearing the session cookie.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::ApiError;
use crate::extract::{cleared_cookie, session_cookie, Body, Caller, ClientIp};
use crate::schema::{
    AccountJson, ErrorBody, LoginRequest, PasswordChange, SessionJson, SignupRequest,
};
use crate::ApiState;

/// Creates an account and logs it in (sets the session cookie).
#[utoipa::path(
    post,
    path = "/signup",
    tag = "accounts",
    security(()),
    request_body = SignupRequest,
    responses(
        (status = 201, body = SessionJson, description = "the account and its session; the cookie is set"),
        (status = 400, body = ErrorBody, description = "invalid email or weak password"),
        (status = 403, body = ErrorBody, description = "sign-up is by invitation only"),
        (status = 409, body = ErrorBody, description = "the email has an account"),
        (status = 429, body = ErrorBody, description = "too many sign-ups from this address"),
    )
)]
pub(crate) async fn signup(
    State(state): State<Arc<ApiState>>,
    ClientIp(client_ip): ClientIp,
    Body(request): Body<SignupRequest>,
) -> Result<Response, ApiError> {
    let logged_in = state
        .control_plane
        .signup(
            &request.email,
            &request.password,
            request.invite.as_deref(),
            client_ip,
        )
        .await?;
    let cookie = session_cookie(&logged_in.session, state.config.behind_tls);
    Ok((
        StatusCode::CREATED,
        [(SET_COOKIE, cookie)],
        Json(SessionJson::from(logged_in)),
    )
        .into_response())
}

/// Logs in with email and password (sets the session cookie).
#[utoipa::path(
    post,
    path = "/login",
    tag = "accounts",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, body = SessionJson, description = "the account and a new session; the cookie is set"),
        (status = 401, body = ErrorBody, description = "invalid_credentials: wrong email or password"),
        (status = 429, body = ErrorBody, description = "too many attempts; see Retry-After"),
    )
)]
pub(crate) async fn login(
    State(state): State<Arc<ApiState>>,
    ClientIp(client_ip): ClientIp,
    Body(request): Body<LoginRequest>,
) -> Result<Response, ApiError> {
    let logged_in = state
        .control_plane
        .login(&request.email, &request.password, client_ip)
        .await?;
    let cookie = session_cookie(&logged_in.session, state.config.behind_tls);
    Ok((
        StatusCode::OK,
        [(SET_COOKIE, cookie)],
        Json(SessionJson::from(logged_in)),
    )
        .into_response())
}

/// Ends the caller's session (and clears the cookie).
#[utoipa::path(
    post,
    path = "/logout",
    tag = "accounts",
    responses(
        (status = 204, description = "the session is gone; the cookie is cleared"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "an API token cannot log out"),
    )
)]
pub(crate) async fn logout(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    state.control_plane.logout(&caller.principal).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, cleared_cookie(state.config.behind_tls))],
    )
        .into_response())
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/account",
    tag = "accounts",
    responses(
        (status = 200, body = AccountJson),
        (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn account(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<AccountJson>, ApiError> {
    let account = state.control_plane.account(&caller.principal).await?;
    Ok(Json(account.into()))
}

/// Changes the password (a session only); every other session ends.
#[utoipa::path(
    post,
    path = "/account/password",
    tag = "accounts",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "changed"),
        (status = 400, body = ErrorBody, description = "weak new password"),
        (status = 401, body = ErrorBody, description = "wrong current password"),
        (status = 403, body = ErrorBody, description = "an API token cannot change the password"),
        (status = 429, body = ErrorBody),
    )
)]
pub(crate) async fn change_password(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Body(request): Body<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state
        .control_plane
        .change_password(
            &caller.principal,
            &request.current_password,
            &request.new_password,
            caller.client_ip,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
