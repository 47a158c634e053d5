//! The control plane's HTTP API: JSON under `/api/v1`, its OpenAPI 3
//! document, the session cookie and the one error shape
//! (docs/design/control-plane.md, "HTTP API").
//!
//! Owns: the routes and their request and response bodies ([`router`]), the
//! OpenAPI document generated from the same annotations ([`openapi`],
//! served at `GET /api/v1/openapi.json`), reading credentials (a bearer
//! header or the `orrery_session` cookie) and the client address, setting
//! and clearing the cookie, mapping [`control_plane::Error`] to statuses and
//! `{"error":{"code","message"}}`, the confirmation of deletions, and the
//! [`DatabaseHosts`] seam through which renames and deletions reach the
//! hosts before the control plane records them.
//! Does not own: any rule about who may do what, or any stored state (the
//! `control-plane` crate decides and stores; this crate only translates), or
//! listening on a socket (the `orrery` binary serves [`router`]).
//!
//! Start with [`ApiState`], [`router`] and [`openapi`].

mod accounts;
mod admin;
mod databases;
mod error;
mod extract;
mod hosts;
mod internal;
mod schema;
mod tokens;

use std::sync::{Arc, OnceLock};

use axum::Router;
use control_plane::ControlPlane;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, CONFIRMATION_REQUIRED};
pub use extract::{SESSION_COOKIE, SESSION_COOKIE_MAX_AGE_S};
pub use hosts::{BoxFuture, DatabaseHosts, HostError, HostRefusal};
pub use internal::{
    internal_router, secrets_equal, ClaimRequest, ClaimedJson, GrantJson, InternalState,
    PublishedRequest, RegisterHostRequest, RegisteredJson, RenameRequest, SignedJson,
    CLIENT_IP_HEADER, CREDENTIAL_HEADER, INTERNAL_PREFIX, JOIN_SECRET_CHARS_MIN,
};
pub use schema::*;

/// Where every route of this API lives.
pub const API_PREFIX: &str = "/api/v1";

/// Settings of the API.
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// The server is reached over TLS: cookies get `Secure`.
    pub behind_tls: bool,
}

/// What every handler shares.
pub struct ApiState {
    pub control_plane: Arc<ControlPlane>,
    pub config: ApiConfig,
    /// The hosts to tell about renames and deletions; `None`: no hosts.
    pub hosts: Option<Arc<dyn DatabaseHosts>>,
}

impl ApiState {
    pub fn new(control_plane: Arc<ControlPlane>, config: ApiConfig) -> ApiState {
        ApiState {
            control_plane,
            config,
            hosts: None,
        }
    }

    pub fn with_hosts(self, hosts: Arc<dyn DatabaseHosts>) -> ApiState {
        ApiState {
            hosts: Some(hosts),
            ..self
        }
    }

    /// Tells the hosts, if any, through `call`; their refusal fails the
    /// request with `internal`, saying the host could not `what` `name`.
    pub(crate) async fn tell_hosts<'a>(
        &'a self,
        what: &str,
        name: &str,
        call: impl FnOnce(&'a dyn DatabaseHosts) -> hosts::BoxFuture<'a, Result<(), HostError>>,
    ) -> Result<(), ApiError> {
        match &self.hosts {
            Some(hosts) => call(hosts.as_ref()).await.map_err(|e| {
                ApiError::internal(format!("the host could not {what} {name:?}: {e}"))
            }),
            None => Ok(()),
        }
    }
}

type Shared = Arc<ApiState>;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Orrery control-plane API",
        description = "Accounts, sessions, API tokens, databases and the audit log. \
                       Errors are {\"error\":{\"code\",\"message\"}}.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Credentials),
    security(("bearer" = []), ("session_cookie" = [])),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct ApiDoc;

/// The two ways to send a credential, as OpenAPI security schemes.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("a session (`orrs_…`) or an API token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
    }
}

/// The routes and the document, built from the same annotations.
fn api() -> OpenApiRouter<Shared> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(accounts::signup))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::account))
        .routes(routes!(accounts::change_password))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(
            databases::create_database,
            databases::list_databases
        ))
        .routes(routes!(
            databases::get_database,
            databases::rename_database,
            databases::delete_database
        ))
        .routes(routes!(databases::restore_database))
        .routes(routes!(databases::set_retention))
        .routes(routes!(databases::audit_log))
        .routes(routes!(admin::list_accounts))
        .routes(routes!(admin::create_invite))
        .routes(routes!(admin::suspend_database))
        .routes(routes!(admin::delete_database))
        .routes(routes!(admin::restore_from_store))
        .routes(routes!(serve_openapi));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest(API_PREFIX, v1)
}

/// The API's router, state attached. Unknown paths and methods answer with
/// the error shape too.
pub fn router(state: Arc<ApiState>) -> Router {
    let (router, _) = api().split_for_parts();
    router
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

/// The OpenAPI 3 document of [`router`].
pub fn openapi() -> OpenApi {
    api().into_openapi()
}

fn cached_openapi() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(openapi)
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "the OpenAPI 3 document", content_type = "application/json"))
)]
async fn serve_openapi() -> axum::Json<&'static OpenApi> {
    axum::Json(cached_openapi())
}
