//! The two ends of the calls a separate control plane makes to its pooled
//! hosts: [`HttpHosts`] (the control plane's `DatabaseHosts`, over HTTP to
//! the host a database is placed on) and [`host_router`] (the host's
//! internal routes that answer it, with the join secret).
//!
//! Owns: those two and the paths between them (rename, delete, restore).
//! Does not own: placement (`control_plane`), or what a rename, deletion or
//! restore does on the host (`accounts::{rename_local, delete_local,
//! restore_local}`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use control_api::{
    BoxFuture, DatabaseHosts, HostError, HostImport, HostRefusal, RenameRequest, RestoreDatabase,
    INTERNAL_PREFIX,
};
use control_plane::ControlPlane;
use tenant_host::registry::Registry;

use crate::accounts::{delete_local, import_local, rename_local, restore_local, retention_local};

/// The control plane's hosts, reached at the addresses they registered.
pub(crate) struct HttpHosts {
    pub(crate) plane: Arc<ControlPlane>,
    pub(crate) join_secret: String,
    pub(crate) http: reqwest::Client,
}

impl HttpHosts {
    pub(crate) fn new(plane: Arc<ControlPlane>, join_secret: String) -> anyhow::Result<HttpHosts> {
        Ok(HttpHosts {
            plane,
            join_secret,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        })
    }

    /// The address of the host serving `name` (or, during the undo of a
    /// rename, `other`), if it is placed.
    async fn address(&self, name: &str, other: Option<&str>) -> Result<Option<String>, HostError> {
        for candidate in std::iter::once(name).chain(other) {
            let placement = self
                .plane
                .placement(candidate)
                .await
                .map_err(|e| HostError(e.to_string()))?;
            if let Some(placement) = placement {
                return Ok(Some(placement.address));
            }
        }
        Ok(None)
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<(), HostError> {
        let response = request
            .bearer_auth(&self.join_secret)
            .send()
            .await
            .map_err(|e| HostError(format!("the host did not answer to {what}: {e}")))?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Err(HostError(format!(
            "the host refused to {what}: {status} {body}"
        )))
    }
}

impl DatabaseHosts for HttpHosts {
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        Box::pin(async move {
            let Some(address) = self.address(from, Some(to)).await? else {
                return Ok(());
            };
            let url = format!("{address}{INTERNAL_PREFIX}/databases/{from}/rename");
            let request = self
                .http
                .post(url)
                .json(&RenameRequest { to: to.to_owned() });
            self.send(request, &format!("rename {from} to {to}")).await
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        Box::pin(async move {
            let Some(address) = self.address(name, None).await? else {
                return Ok(());
            };
            let url = format!("{address}{INTERNAL_PREFIX}/databases/{name}");
            self.send(self.http.delete(url), &format!("delete {name}"))
                .await
        })
    }

    fn set_retention<'a>(
        &'a self,
        name: &'a str,
        days: u32,
    ) -> BoxFuture<'a, Result<(), HostError>> {
        Box::pin(async move {
            let Some(address) = self.address(name, None).await? else {
                return Ok(());
            };
            let url = format!("{address}{INTERNAL_PREFIX}/databases/{name}/retention");
            let request = self.http.post(url).json(&control_api::RetentionRequest {
                retention_days: days,
            });
            self.send(request, &format!("set the retention of {name}"))
                .await
        })
    }

    fn import<'a>(
        &'a self,
        import: &'a HostImport,
    ) -> BoxFuture<'a, Result<serde_json::Value, HostRefusal>> {
        Box::pin(async move {
            // The host heard from last; the new database lives there.
            crate::accounts::sign_foreign_module(&self.plane, import).await?;
            let hosts = self.plane.list_hosts().await.map_err(unreachable)?;
            let host = hosts
                .iter()
                .max_by_key(|h| h.last_heartbeat_at_ms)
                .ok_or_else(|| unreachable("no host has registered"))?;
            self.plane
                .place_database(&import.restore.into, &host.id)
                .await
                .map_err(unreachable)?;
            let url = format!("{}{INTERNAL_PREFIX}/restores", host.address);
            self.answer(self.http.post(url).json(import)).await
        })
    }

    fn restore<'a>(
        &'a self,
        name: &'a str,
        request: &'a RestoreDatabase,
    ) -> BoxFuture<'a, Result<serde_json::Value, HostRefusal>> {
        Box::pin(async move {
            let address = self
                .address(name, None)
                .await
                .map_err(|e| unreachable(e.0))?
                .ok_or_else(|| {
                    unreachable(format!("`{name}` is on no host yet (publish it first)"))
                })?;
            let url = format!("{address}{INTERNAL_PREFIX}/databases/{name}/restore");
            self.answer(self.http.post(url).json(request)).await
        })
    }
}

/// A host that could not be asked or could not answer.
fn unreachable(message: impl std::fmt::Display) -> HostRefusal {
    HostRefusal {
        status: 503,
        message: message.to_string(),
    }
}

impl HttpHosts {
    /// Sends a host request answered with JSON, with the join secret.
    async fn answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, HostRefusal> {
        let response = request
            .bearer_auth(&self.join_secret)
            .send()
            .await
            .map_err(|e| unreachable(format!("the host did not answer: {e}")))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| unreachable(format!("the host's answer is not JSON: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(HostRefusal {
            status: status.as_u16(),
            message: body["error"]["message"]
                .as_str()
                .map_or_else(|| body.to_string(), str::to_owned),
        })
    }
}

struct HostState {
    registry: Arc<Registry>,
    backups: Arc<dyn orrery_edge::backups::Backups>,
    join_secret: String,
    control_plane_url: String,
}

/// The host's routes besides the client API: the internal routes the
/// control plane calls, and a pointer to the control plane for `/api/`.
pub(crate) fn host_router(
    registry: Arc<Registry>,
    backups: Arc<dyn orrery_edge::backups::Backups>,
    join_secret: String,
    control_plane_url: String,
) -> Router {
    let state = Arc::new(HostState {
        registry,
        backups,
        join_secret,
        control_plane_url,
    });
    Router::new()
        .route(
            &format!("{INTERNAL_PREFIX}/databases/{{name}}/rename"),
            post(rename),
        )
        .route(
            &format!("{INTERNAL_PREFIX}/databases/{{name}}"),
            axum::routing::delete(delete),
        )
        .route(
            &format!("{INTERNAL_PREFIX}/databases/{{name}}/restore"),
            post(restore),
        )
        .route(&format!("{INTERNAL_PREFIX}/restores"), post(import))
        .route(
            &format!("{INTERNAL_PREFIX}/databases/{{name}}/retention"),
            post(retention),
        )
        .fallback(elsewhere)
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Whether the request carries the join secret.
fn has_secret(state: &HostState, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    control_api::secrets_equal(presented.as_bytes(), state.join_secret.as_bytes())
}

fn no_secret() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "internal routes need the join secret".into(),
    )
}

async fn run(
    state: &HostState,
    job: impl FnOnce(&Registry) -> Result<(), String> + Send + 'static,
) -> Response {
    let registry = state.registry.clone();
    match tokio::task::spawn_blocking(move || job(&registry)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(message)) => error(StatusCode::CONFLICT, "conflict", message),
        Err(e) => {
            tracing::error!(error = %e, "a host task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the host task failed: {e}"),
            )
        }
    }
}

async fn rename(
    State(state): State<Arc<HostState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(request): Json<RenameRequest>,
) -> Response {
    if !has_secret(&state, &headers) {
        return no_secret();
    }
    run(&state, move |registry| {
        rename_local(registry, &name, &request.to)
    })
    .await
}

async fn delete(
    State(state): State<Arc<HostState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if !has_secret(&state, &headers) {
        return no_secret();
    }
    run(&state, move |registry| delete_local(registry, &name)).await
}

async fn restore(
    State(state): State<Arc<HostState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(request): Json<RestoreDatabase>,
) -> Response {
    if !has_secret(&state, &headers) {
        return no_secret();
    }
    run_json(&state, move |registry, backups| {
        restore_local(registry, backups, &name, &request)
    })
    .await
}

async fn retention(
    State(state): State<Arc<HostState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(request): Json<control_api::RetentionRequest>,
) -> Response {
    if !has_secret(&state, &headers) {
        return no_secret();
    }
    run(&state, move |registry| {
        retention_local(registry, &name, request.retention_days)
    })
    .await
}

async fn import(
    State(state): State<Arc<HostState>>,
    headers: HeaderMap,
    Json(request): Json<HostImport>,
) -> Response {
    if !has_secret(&state, &headers) {
        return no_secret();
    }
    run_json(&state, move |registry, backups| {
        import_local(registry, backups, &request)
    })
    .await
}

/// Runs a host task answering JSON off the async threads; its answer or
/// refusal as a response.
async fn run_json(
    state: &HostState,
    job: impl FnOnce(
            &Registry,
            &dyn orrery_edge::backups::Backups,
        ) -> Result<serde_json::Value, HostRefusal>
        + Send
        + 'static,
) -> Response {
    let (registry, backups) = (state.registry.clone(), state.backups.clone());
    let done = tokio::task::spawn_blocking(move || job(&registry, backups.as_ref())).await;
    match done {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(refusal)) => {
            let status =
                StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let code = match refusal.status {
                400 => "invalid_request",
                409 => "conflict",
                _ => "unavailable",
            };
            error(status, code, refusal.message)
        }
        Err(e) => {
            tracing::error!(error = %e, "a host task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the host task failed: {e}"),
            )
        }
    }
}

/// `/api/…` on a host: the control-plane API lives elsewhere.
async fn elsewhere(State(state): State<Arc<HostState>>) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "this is a host; the control-plane API is served by the control plane at {}",
            state.control_plane_url
        ),
    )
}
