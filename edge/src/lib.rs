//! The HTTP and WebSocket edge of a host (client-protocol §2): the routes
//! stock clients use, served with axum on tokio.
//!
//! Owns: the router ([`router`]), CORS on `/v1/*`, credential extraction
//! (`Authorization: Bearer` first, then `?token=`), and the identity routes:
//! `GET /v1/ping`, `POST /v1/identity`, `POST /v1/identity/websocket-token`,
//! `GET /v1/identity/public-key`, `GET /v1/identity/:identity/verify`,
//! and `GET /metrics` (rendered by `tenant_host::metrics`).
//! The database routes under `/v1/database` live in `database`, a
//! database's own HTTP handlers under `…/route` in [`route`], the
//! WebSocket sessions in [`ws`], tokens and identities in [`auth`].
//! Does not own: the
//! databases (`tenant_host::registry`), the WebSocket protocol, or process concerns
//! such as the listen address and shutdown (`orrery start`).
//!
//! Success bodies in JSON carry exactly `Content-Type: application/json`;
//! errors are plain text with a stable code in `x-orrery-error` ([`error`];
//! client-protocol §2.1).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    AUTHORIZATION, CONTENT_TYPE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use spacetimedb_lib::Identity;

use crate::auth::{AuthError, Claims, Keys};
use crate::error::{fail, ErrorCode};
use tenant_host::registry::Registry;

pub mod access;
pub mod auth;
pub mod backups;
mod database;
pub mod error;
pub mod route;
pub mod tenant_url;
pub mod ws;

// For the WebSocket route, which resolves and authenticates the same way.
#[allow(unused_imports)]
pub(crate) use database::{caller_or_mint, identity_headers, resolve_database, Caller};

/// What every handler can reach.
pub struct ApiState {
    pub keys: Keys,
    pub registry: Arc<Registry>,
    /// Limits and timers of WebSocket sessions.
    pub ws: ws::WsConfig,
    /// The domain under which `<database>.<domain>` is a tenant URL
    /// ([`tenant_url`]); `None` serves the path form only.
    pub tenant_domain: Option<String>,
    /// Who may act as a database's owner ([`access`]).
    pub access: access::Access,
    /// Where databases are backed up; `None` answers 503 to backup calls.
    pub backups: Option<Arc<dyn backups::Backups>>,
}

/// The router of the client API.
pub fn router(state: Arc<ApiState>) -> Router {
    let domain = state.tenant_domain.clone();
    let routes = routes(state);
    match domain {
        // Tenant hosts are rewritten before routing, so the outer router
        // only forwards to the inner one.
        Some(domain) => Router::new()
            .fallback_service(tower::util::MapRequest::new(routes, move |request| {
                tenant_url::rewrite(request, &domain)
            })),
        None => routes,
    }
}

fn routes(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/ping", get(ping))
        .route("/v1/identity", post(mint_identity))
        .route("/v1/identity/websocket-token", post(websocket_token))
        .route("/v1/identity/public-key", get(public_key))
        .route("/v1/identity/{identity}/verify", get(verify))
        .route("/metrics", get(metrics))
        .merge(database::routes(state.clone()))
        .merge(route::routes())
        .layer(axum::middleware::from_fn(error::log_errors))
        .layer(axum::middleware::from_fn(cors))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Router::new(), shutdown).await
}

/// [`serve`] with `api` answering every path under `/api/` (the
/// control-plane API of `orrery start`, whose routes carry that prefix)
/// beside the client API.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    api: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = state.registry.clone();
    // Paths under `/api/` (the control-plane API) and `/internal/` (calls
    // between the control plane and hosts) go to `api` whole (no path
    // parameters added, the prefix kept); everything else to the client API.
    let api = api.into_service::<axum::body::Body>();
    let client = router(state).into_service::<axum::body::Body>();
    let dispatch = tower::service_fn(move |request: axum::extract::Request| {
        let path = request.uri().path();
        let service = if path.starts_with("/api/") || path.starts_with("/internal/") {
            api.clone()
        } else {
            client.clone()
        };
        tower::ServiceExt::oneshot(service, request)
    });
    let app = Router::new()
        .fallback_service(dispatch)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Log followers would otherwise keep their responses open.
            registry.begin_shutdown();
        })
        .await
}

/// `GET /metrics`: Prometheus text exposition of every database.
async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let registry = state.registry.clone();
    match tokio::task::spawn_blocking(move || tenant_host::metrics::render(&registry)).await {
        Ok(text) => ([(CONTENT_TYPE, tenant_host::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => fail(
            ErrorCode::Internal,
            format!("rendering the metrics failed: {e}"),
        ),
    }
}

/// CORS for browsers (client-protocol §2.1): any origin, any method, the
/// headers the SDK sends. Preflights (an `OPTIONS` naming the method it
/// asks for) are answered here; any other `OPTIONS` is routed, so a
/// module's HTTP handler for `OPTIONS` is reachable.
async fn cors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(axum::http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, accept, content-type"),
    );
    response
}

/// A JSON success body with exactly `Content-Type: application/json`.
fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        value.to_string(),
    )
        .into_response()
}

impl ApiState {
    /// Seconds since the Unix epoch on the host's clock: what tokens are
    /// issued and checked at (tests steer it with a `ManualClock`).
    fn now_secs(&self) -> i64 {
        self.registry
            .host()
            .clock()
            .now_micros()
            .div_euclid(1_000_000)
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The caller's credentials: `Ok(None)` if none were given, an error
/// response if a token was given but is not valid (even where auth is
/// optional).
#[allow(clippy::result_large_err)]
fn credentials(
    state: &ApiState,
    headers: &HeaderMap,
    query: &TokenQuery,
) -> Result<Option<Claims>, Response> {
    Ok(credentials_with_token(state, headers, query)?.map(|(claims, _)| claims))
}

/// [`credentials`] with the token they came in.
#[allow(clippy::result_large_err)]
fn credentials_with_token(
    state: &ApiState,
    headers: &HeaderMap,
    query: &TokenQuery,
) -> Result<Option<(Claims, String)>, Response> {
    let token = match headers.get(AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
            match value {
                Some(token) => token.trim().to_owned(),
                None => {
                    return Err(fail(
                        ErrorCode::InvalidRequest,
                        "Authorization is invalid: malformed token",
                    ))
                }
            }
        }
        None => match &query.token {
            Some(token) => token.clone(),
            None => return Ok(None),
        },
    };
    match state.keys.validate(&token, state.now_secs()) {
        Ok(claims) => Ok(Some((claims, token))),
        Err(AuthError::Malformed(_)) => Err(fail(
            ErrorCode::InvalidRequest,
            "Authorization is invalid: malformed token",
        )),
        Err(e) => Err(fail(ErrorCode::Unauthorized, e.to_string())),
    }
}

#[allow(clippy::result_large_err)]
fn required(state: &ApiState, headers: &HeaderMap, query: &TokenQuery) -> Result<Claims, Response> {
    credentials(state, headers, query)?
        .ok_or_else(|| fail(ErrorCode::Unauthorized, "Authorization required"))
}

async fn ping() -> StatusCode {
    StatusCode::OK
}

async fn mint_identity(State(state): State<Arc<ApiState>>) -> Response {
    match state.keys.mint_anonymous(state.now_secs()) {
        Ok(minted) => json(
            StatusCode::OK,
            serde_json::json!({
                "identity": minted.identity.to_hex().as_str(),
                "token": minted.token,
            }),
        ),
        Err(e) => fail(ErrorCode::Internal, e.to_string()),
    }
}

async fn websocket_token(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    // An account credential gets a short-lived token for the account's
    // identity (what the stock SDKs fetch before they connect).
    let claims = if database::account_credential(&headers, query.token.as_deref()).is_some() {
        let uri = query
            .token
            .as_deref()
            .and_then(|token| format!("/?token={token}").parse().ok())
            .unwrap_or_else(|| axum::http::Uri::from_static("/"));
        match caller_or_mint(&state, &headers, &uri, None).await {
            Ok(caller) => caller.claims,
            Err(response) => return response,
        }
    } else {
        match required(&state, &headers, &query) {
            Ok(claims) => claims,
            Err(response) => return response,
        }
    };
    match state.keys.websocket_token(&claims, state.now_secs()) {
        Ok(token) => json(StatusCode::OK, serde_json::json!({ "token": token })),
        Err(e) => fail(ErrorCode::Internal, e.to_string()),
    }
}

async fn public_key(State(state): State<Arc<ApiState>>) -> Response {
    (
        StatusCode::OK,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/pem-certificate-chain"),
        )],
        state.keys.public_key_pem(),
    )
        .into_response()
}

async fn verify(
    State(state): State<Arc<ApiState>>,
    Path(identity): Path<String>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let claims = match required(&state, &headers, &query) {
        Ok(claims) => claims,
        Err(response) => return response,
    };
    let hex = identity.strip_prefix("0x").unwrap_or(&identity);
    match Identity::from_hex(hex) {
        Ok(path) if path == claims.identity => StatusCode::NO_CONTENT.into_response(),
        Ok(_) => fail(
            ErrorCode::InvalidRequest,
            "the token is for another identity",
        ),
        Err(_) => fail(
            ErrorCode::InvalidRequest,
            format!("`{identity}` is not an identity"),
        ),
    }
}
