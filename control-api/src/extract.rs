//! What a handler reads from a request: the caller, the client's address,
//! and JSON bodies and queries whose rejections use the error shape.
//!
//! Owns: [`Caller`] (a credential from `Authorization: Bearer` or the
//! `orrery_session` cookie, authenticated by the control plane),
//! [`ClientIp`] (from `ConnectInfo<SocketAddr>` when the server provides
//! it), [`Body`] and [`Params`], and the session cookie's attributes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::Json;
use control_plane::{Principal, SESSION_LIFETIME_MS};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::ApiState;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "orrery_session";

/// The cookie's `Max-Age`: the session's lifetime (30 days).
pub const SESSION_COOKIE_MAX_AGE_S: i64 = SESSION_LIFETIME_MS / 1000;

/// The client's address, when the server passes `ConnectInfo<SocketAddr>`.
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientIp, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

/// An authenticated caller and where it calls from.
pub(crate) struct Caller {
    pub(crate) principal: Principal,
    pub(crate) client_ip: Option<IpAddr>,
}

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Caller, ApiError> {
        let bearer = credential(parts)?;
        let principal = state.control_plane.authenticate(&bearer).await?;
        let ClientIp(client_ip) = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientIp(None));
        Ok(Caller {
            principal,
            client_ip,
        })
    }
}

/// The credential of a request: the bearer header first, then the cookie.
fn credential(parts: &Parts) -> Result<String, ApiError> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let text = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        let (scheme, value) = text.trim().split_once(' ').ok_or_else(|| {
            ApiError::unauthorized("send `Authorization: Bearer <session or API token>`")
        })?;
        if !scheme.eq_ignore_ascii_case("bearer") || value.trim().is_empty() {
            return Err(ApiError::unauthorized(
                "send `Authorization: Bearer <session or API token>`",
            ));
        }
        return Ok(value.trim().to_owned());
    }
    for header in parts.headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                if name.trim() == SESSION_COOKIE && !value.trim().is_empty() {
                    return Ok(value.trim().to_owned());
                }
            }
        }
    }
    Err(ApiError::unauthorized(
        "no credential: log in (`orrery login`) or send `Authorization: Bearer <API token>`; \
         create a token with `orrery token create`",
    ))
}

/// The `Set-Cookie` value that carries a new session.
pub(crate) fn session_cookie(session: &str, behind_tls: bool) -> String {
    let secure = if behind_tls { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Lax; Path=/; Max-Age={SESSION_COOKIE_MAX_AGE_S}{secure}"
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub(crate) fn cleared_cookie(behind_tls: bool) -> String {
    let secure = if behind_tls { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}")
}

/// A JSON body; a malformed one is `invalid_request`.
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| Body(value))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// Query parameters; malformed ones are `invalid_request`.
pub(crate) struct Params<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params<T>, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Params(value))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}
