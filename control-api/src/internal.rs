//! The control plane's internal API for hosts, under `/internal/v1`: what
//! an `orrery host` asks of the control plane, authenticated by the join
//! secret every host and the control plane share.
//!
//! Owns: [`internal_router`], the join-secret check, and the JSON the
//! host side reads ([`GrantJson`], [`RegisteredJson`], [`SignedJson`]).
//! Does not own: any rule (the `control-plane` crate decides; this
//! translates, as the public API does). The user's credential travels in
//! [`CREDENTIAL_HEADER`], the user's address in [`CLIENT_IP_HEADER`]; the
//! control plane re-authenticates the credential on every call, so a host
//! holds no authority of its own beyond the join secret.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{delete, post, put};
use axum::{Json, Router};
use control_plane::{ControlPlane, Principal};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The prefix of every internal route.
pub const INTERNAL_PREFIX: &str = "/internal/v1";
/// Header with the end user's credential (a session or an API token).
pub const CREDENTIAL_HEADER: &str = "x-orrery-credential";
/// Header with the end user's address, for the audit log and rate limits.
pub const CLIENT_IP_HEADER: &str = "x-orrery-client-ip";
/// Shortest join secret accepted.
pub const JOIN_SECRET_CHARS_MIN: usize = 32;

/// What the internal routes share.
pub struct InternalState {
    pub control_plane: Arc<ControlPlane>,
    /// The secret hosts present as `Authorization: Bearer`.
    pub join_secret: String,
}

/// The routes hosts call, state attached; everything needs the join secret.
pub fn internal_router(state: Arc<InternalState>) -> Router {
    let routes = Router::new()
        .route("/hosts/{id}", put(register_host))
        .route("/hosts/{id}/heartbeat", post(heartbeat))
        .route("/authenticate", post(authenticate))
        .route("/databases/{name}/claim", post(claim))
        .route("/databases/{name}/rename", post(rename))
        .route(
            "/databases/{name}/modules",
            post(sign_module).layer(DefaultBodyLimit::max(orrery_api::limits::MODULE_BYTES_MAX)),
        )
        .route("/databases/{name}/published", post(published))
        .route("/databases/{name}", delete(deleted));
    Router::new()
        .nest(INTERNAL_PREFIX, routes)
        .fallback(crate::error::no_route)
        .with_state(state)
}

/// A request from a host that presented the join secret.
struct FromHost;

impl FromRequestParts<Arc<InternalState>> for FromHost {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<InternalState>,
    ) -> Result<FromHost, ApiError> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if secrets_equal(presented.as_bytes(), state.join_secret.as_bytes()) {
            Ok(FromHost)
        } else {
            Err(ApiError::unauthorized(
                "internal routes need the join secret (Authorization: Bearer)",
            ))
        }
    }
}

/// Whether two secrets are equal, compared in time that depends on the
/// lengths only (the join-secret check of both ends).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The end user behind a host's request: authenticated again here.
struct OnBehalf {
    principal: Principal,
    client_ip: Option<IpAddr>,
}

impl FromRequestParts<Arc<InternalState>> for OnBehalf {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<InternalState>,
    ) -> Result<OnBehalf, ApiError> {
        FromHost::from_request_parts(parts, state).await?;
        let credential = parts
            .headers
            .get(CREDENTIAL_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("no end-user credential"))?;
        let principal = state.control_plane.authenticate(credential).await?;
        let client_ip = parts
            .headers
            .get(CLIENT_IP_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok(OnBehalf {
            principal,
            client_ip,
        })
    }
}

#[derive(Serialize, Deserialize, Debug)]
pub struct RegisterHostRequest {
    /// The URL the control plane reaches the host at.
    pub address: String,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct RegisteredJson {
    /// The key manifests are signed with (`ed25519:<hex>`), if signing is set up.
    pub module_public_key: Option<String>,
    /// The databases placed on the host.
    pub databases: Vec<String>,
}

async fn register_host(
    State(state): State<Arc<InternalState>>,
    _host: FromHost,
    Path(id): Path<String>,
    Json(request): Json<RegisterHostRequest>,
) -> Result<Json<RegisteredJson>, ApiError> {
    let plane = &state.control_plane;
    plane.register_host(&id, &request.address).await?;
    tracing::info!(host = %id, address = %request.address, "host registered");
    Ok(Json(RegisteredJson {
        module_public_key: plane.module_verifying_key().map(|k| k.to_string()),
        databases: plane.heartbeat(&id).await?,
    }))
}

async fn heartbeat(
    State(state): State<Arc<InternalState>>,
    _host: FromHost,
    Path(id): Path<String>,
) -> Result<Json<RegisteredJson>, ApiError> {
    let plane = &state.control_plane;
    Ok(Json(RegisteredJson {
        module_public_key: plane.module_verifying_key().map(|k| k.to_string()),
        databases: plane.heartbeat(&id).await?,
    }))
}

/// What a credential may do, for the host's owner checks.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GrantJson {
    /// The account's identity, hex.
    pub identity: String,
    pub account: String,
    pub issuer: String,
    /// `read`, `deploy` or `admin`.
    pub scope: String,
    /// The databases the credential is limited to; absent: all of the account's.
    pub databases: Option<Vec<String>>,
    /// `session` or the token id.
    pub credential: String,
}

async fn authenticate(
    State(state): State<Arc<InternalState>>,
    caller: OnBehalf,
) -> Result<Json<GrantJson>, ApiError> {
    let p = &caller.principal;
    let credential = match &p.credential {
        control_plane::Credential::Session { .. } => "session".to_owned(),
        control_plane::Credential::ApiToken { token_id, .. } => token_id.to_string(),
    };
    Ok(Json(GrantJson {
        identity: p.identity.to_hex().to_string(),
        account: p.account_id.to_string(),
        issuer: control_plane::PLATFORM_ISSUER.to_owned(),
        scope: p.credential.scope().as_str().to_owned(),
        databases: state.control_plane.credential_databases(p).await?,
        credential,
    }))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct ClaimRequest {
    /// The host that will serve the database.
    pub host: String,
}

/// Before a first publish on a host: the account's database `name` (created
/// if new), placed on that host.
async fn claim(
    State(state): State<Arc<InternalState>>,
    caller: OnBehalf,
    Path(name): Path<String>,
    Json(request): Json<ClaimRequest>,
) -> Result<Json<ClaimedJson>, ApiError> {
    let plane = &state.control_plane;
    let database = match plane
        .authorize(&caller.principal, &name, control_plane::Scope::Deploy)
        .await
    {
        Ok(database) => database,
        Err(control_plane::Error::NotFound { .. }) => {
            plane
                .create_database(&caller.principal, &name, caller.client_ip)
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    plane.place_database(&name, &request.host).await?;
    Ok(Json(ClaimedJson {
        durability: database.durability.map(|mode| mode.as_str().to_owned()),
        retention_days: database.retention_days,
    }))
}

/// What a host learns when it claims a database for a first publish.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimedJson {
    /// The database's durability mode (`local`, `object-store`); absent:
    /// the host's default.
    #[serde(default)]
    pub durability: Option<String>,
    /// Days of point-in-time history to keep (0: everything); absent: the
    /// host's default.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct RenameRequest {
    pub to: String,
}

async fn rename(
    State(state): State<Arc<InternalState>>,
    caller: OnBehalf,
    Path(name): Path<String>,
    Json(request): Json<RenameRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .control_plane
        .rename_database(&caller.principal, &name, &request.to, caller.client_ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, Debug)]
pub struct SignedJson {
    pub module_sha256: String,
    pub version: u64,
}

async fn sign_module(
    State(state): State<Arc<InternalState>>,
    caller: OnBehalf,
    Path(name): Path<String>,
    wasm: Bytes,
) -> Result<Json<SignedJson>, ApiError> {
    let signed = state
        .control_plane
        .sign_module(&caller.principal, &name, wasm.to_vec())
        .await?;
    Ok(Json(SignedJson {
        module_sha256: signed.module_sha256,
        version: signed.version,
    }))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct PublishedRequest {
    pub module_sha256: String,
}

async fn published(
    State(state): State<Arc<InternalState>>,
    caller: OnBehalf,
    Path(name): Path<String>,
    Json(request): Json<PublishedRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .control_plane
        .record_publish(
            &caller.principal,
            &name,
            &request.module_sha256,
            caller.client_ip,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A deletion the owner made on the host (the stock `DELETE` route).
async fn deleted(
    State(state): State<Arc<InternalState>>,
    caller: OnBehalf,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .control_plane
        .delete_database(&caller.principal, &name, caller.client_ip)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::secrets_equal;

    #[test]
    fn secrets_compare_whole() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
    }
}
