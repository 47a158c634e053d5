//! The database routes of the client API (client-protocol §2.3.5–§2.3.17):
//! publish, pre-publish, info, delete, identity, names, call, schema, logs,
//! SQL, lock/unlock and the server clock, plus `/v1/health`.
//!
//! Owns: the HTTP shape of those routes (statuses, content types, bodies),
//! "get or create" credentials with the `spacetime-identity` headers on every
//! `/v1/database…` route, resolving `{name_or_identity}`, decoding JSON
//! arguments with typed SATS-JSON, and the short-lived connection around
//! `call` and `sql`.
//! Does not own: the databases (`tenant_host::registry`), running calls
//! (`tenant_host::hosting`), SQL semantics (`orrery_query::sql`), migrations
//! (`crate::migrate`) or the WebSocket protocol.
//!
//! Blocking work (publishing, calls, SQL) runs on tokio's blocking pool,
//! never on the async workers.

// Handlers and their helpers return the error reply itself (`Response`),
// which is large; replies are built once per request, so boxing buys nothing.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::{Extension, Router};
use http_body_util::BodyExt;
use orrery_api::limits;
use serde::Deserialize;
use serde_json::{json, Value};
use spacetimedb_lib::{ConnectionId, Hash, Identity, RawModuleDef};
use spacetimedb_sats::de::DeserializeSeed;
use spacetimedb_sats::serde::SerdeWrapper;
use spacetimedb_sats::{AlgebraicValue, ProductValue};

use super::{credentials_with_token, json as json_response, ApiState, TokenQuery};
use crate::access::{owner_may, Access, Grant, OwnerEvent, Refusal, NEEDS_ACCOUNT_TOKEN};
use crate::auth::Claims;
use crate::error::{fail, ErrorCode};
use orrery_api::access::{is_account_credential, Scope};
use orrery_module::{CallResult, CallerContext, ProcedureOutcome, ReducerOutcome};
use tenant_host::hosting::HostedDatabase;
use tenant_host::logs::{FollowEvent, LogEntry};
use tenant_host::registry::{
    parse_name_or_identity, Entry, NameOrIdentity, NameTarget, Registry, RegistryError,
};

const IDENTITY_HEADER: HeaderName = HeaderName::from_static("spacetime-identity");
const TOKEN_HEADER: HeaderName = HeaderName::from_static("spacetime-identity-token");
const ENERGY_HEADER: HeaderName = HeaderName::from_static("spacetime-energy-used");
const DURATION_HEADER: HeaderName = HeaderName::from_static("spacetime-execution-duration-micros");

/// Who a `/v1/database…` request runs as: the caller's credentials or
/// freshly minted ones.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) claims: Claims,
    pub(crate) token: String,
    /// Whether the credentials were minted for this request (the WebSocket
    /// route tells the client its new token).
    pub(crate) minted: bool,
    /// What the account credential the caller came with may do; `None` for
    /// an app identity.
    pub(crate) grant: Option<Arc<Grant>>,
}

impl Caller {
    pub(crate) fn identity(&self) -> Identity {
        self.claims.identity
    }

    /// [`owner_may`] for this caller on `entry`.
    #[allow(clippy::result_large_err)]
    pub(crate) fn owner_may(
        &self,
        access: &Access,
        entry: &Entry,
        needed: Scope,
    ) -> Result<(), Response> {
        owner_may(
            access,
            self.identity(),
            self.grant.as_deref(),
            entry.owner(),
            &entry.names(),
            needed,
        )
    }

    /// The account half of the owner check, for routes whose registry call
    /// checks the identity itself (and answers a stranger in its own words).
    #[allow(clippy::result_large_err)]
    pub(crate) fn account_may(
        &self,
        access: &Access,
        entry: &Entry,
        needed: Scope,
    ) -> Result<(), Response> {
        if self.identity() != entry.owner() {
            return Ok(());
        }
        self.owner_may(access, entry, needed)
    }

    /// Whether the caller sees the database as its owner does (private
    /// tables, SQL writes): the owner check for `read`.
    pub(crate) fn is_owner(&self, access: &Access, entry: &Entry) -> bool {
        self.owner_may(access, entry, Scope::Read).is_ok()
    }
}

/// The account credential of a request, if it came with one: the bearer
/// token, or a `?token=` when there is no `Authorization` header.
pub(crate) fn account_credential(headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    match headers.get(AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| is_account_credential(token))
            .map(str::to_owned),
        None => query_token
            .filter(|token| is_account_credential(token))
            .map(str::to_owned),
    }
}

/// "Get or create" credentials (client-protocol §2.1): `Authorization:
/// Bearer` first, then a `?token=` that looks like a JWT (publish and delete
/// use `token` for a confirmation hash); without either a fresh identity is
/// minted. Invalid tokens are refused with the usual 400/401. An account
/// credential (a session or an API token) is checked by the access's
/// authenticator and acts as the account's identity.
pub(crate) async fn caller_or_mint(
    state: &ApiState,
    headers: &HeaderMap,
    uri: &Uri,
    client: Option<std::net::IpAddr>,
) -> Result<Caller, Response> {
    let keys = &state.keys;
    let token = Query::<TokenQuery>::try_from_uri(uri)
        .ok()
        .and_then(|q| q.0.token)
        .filter(|t| t.matches('.').count() == 2);
    if let Some(credential) = account_credential(headers, token.as_deref()) {
        let Some(authenticator) = &state.access.authenticator else {
            return Err(fail(
                ErrorCode::Unauthorized,
                "this server has no accounts: account tokens are not accepted here",
            ));
        };
        let grant = authenticator
            .authenticate(&credential, client)
            .await
            .map_err(Refusal::into_response)?;
        return Ok(Caller {
            claims: Claims {
                identity: grant.identity,
                issuer: grant.issuer.clone(),
                subject: grant.account.clone(),
                payload: grant.claims_payload(),
            },
            token: credential,
            minted: false,
            grant: Some(Arc::new(grant)),
        });
    }
    if let Some((claims, token)) = credentials_with_token(state, headers, &TokenQuery { token })? {
        return Ok(Caller {
            claims,
            token,
            minted: false,
            grant: None,
        });
    }
    let now = state.now_secs();
    let minted = keys
        .mint_anonymous(now)
        .map_err(|e| fail(ErrorCode::Internal, e.to_string()))?;
    let claims = keys
        .validate(&minted.token, now)
        .map_err(|e| fail(ErrorCode::Internal, e.to_string()))?;
    Ok(Caller {
        claims,
        token: minted.token,
        minted: true,
        grant: None,
    })
}

/// Adds `spacetime-identity` and `spacetime-identity-token` for `caller`.
pub(crate) fn identity_headers(caller: &Caller, headers: &mut HeaderMap) {
    if let Ok(value) = HeaderValue::from_str(caller.identity().to_hex().as_str()) {
        headers.insert(IDENTITY_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&caller.token) {
        headers.insert(TOKEN_HEADER, value);
    }
}

/// What the reference answers (404) for a name or identity that resolves
/// but has no database, e.g. a name whose first publish failed.
pub(crate) const NO_SUCH_DATABASE: &str = "No such database.";

/// Resolves `{name_or_identity}` to a database: 400 for an invalid name,
/// 404 `` `name` not found `` for unknown names, 404 `No such database.` for
/// an identity with no database and a name registered to no database (its
/// first publish failed), 503 with the reason for a database that did not
/// open on this host.
pub(crate) fn resolve_database(
    registry: &Registry,
    name_or_identity: &str,
) -> Result<Arc<Entry>, Response> {
    match registry.resolve(name_or_identity) {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) => {
            let resolved = match parse_name_or_identity(name_or_identity) {
                Ok(NameOrIdentity::Identity(_)) => true,
                _ => matches!(
                    registry.name_target(name_or_identity),
                    Some(NameTarget::NoDatabase { .. })
                ),
            };
            if resolved {
                Err(fail(ErrorCode::NotFound, NO_SUCH_DATABASE))
            } else {
                Err(fail(
                    ErrorCode::NotFound,
                    format!("`{name_or_identity}` not found"),
                ))
            }
        }
        Err(e) => Err(registry_error(e)),
    }
}

/// The routes under `/v1/database`, `/v1/identity/{identity}/databases` and health.
pub(super) fn routes(state: Arc<ApiState>) -> Router<Arc<ApiState>> {
    let databases = Router::new()
        .route(
            "/v1/database",
            limited(post(publish_new), limits::MODULE_BYTES_MAX, "the module"),
        )
        .route(
            "/v1/database/{name_or_identity}",
            get(info)
                .merge(limited(
                    put(publish_named),
                    limits::MODULE_BYTES_MAX,
                    "the module",
                ))
                .delete(delete),
        )
        .route(
            "/v1/database/{name_or_identity}/pre_publish",
            limited(post(pre_publish), limits::MODULE_BYTES_MAX, "the module"),
        )
        .route("/v1/database/{name_or_identity}/identity", get(identity))
        .route(
            "/v1/database/{name_or_identity}/names",
            get(names).merge(limited(
                post(add_name).put(replace_names),
                limits::SMALL_BODY_BYTES_MAX,
                "the names",
            )),
        )
        .route(
            "/v1/database/{name_or_identity}/call/{function}",
            limited(
                post(call),
                limits::CALL_BODY_BYTES_MAX,
                "the call's arguments",
            ),
        )
        .route("/v1/database/{name_or_identity}/schema", get(schema))
        .route("/v1/database/{name_or_identity}/logs", get(logs))
        .route(
            "/v1/database/{name_or_identity}/subscribe",
            get(super::ws::subscribe),
        )
        .route(
            "/v1/database/{name_or_identity}/sql",
            limited(post(sql), limits::SQL_BODY_BYTES_MAX, "the SQL text"),
        )
        .route(
            "/v1/database/{name_or_identity}/backups",
            get(crate::backups::list).post(crate::backups::create),
        )
        .route(
            "/v1/database/{name_or_identity}/restore",
            post(crate::backups::restore),
        )
        .route("/v1/database/{name_or_identity}/lock", post(lock))
        .route("/v1/database/{name_or_identity}/unlock", post(unlock))
        .route(
            "/v1/database/{name_or_identity}/unstable/timestamp",
            get(timestamp),
        )
        .layer(axum::middleware::from_fn_with_state(state, get_or_mint))
        .layer(DefaultBodyLimit::max(limits::SMALL_BODY_BYTES_MAX));
    Router::new()
        .route("/v1/identity/{identity}/databases", get(owned_databases))
        .route("/v1/health", get(health))
        .route("/health", get(|| async { "ok" }))
        .merge(databases)
}

/// `route` reading a body of at most `max` bytes (`what` names it in the
/// error): a `Content-Length` above `max` is refused unread, and a body
/// without one is read until `max` and refused there, with 413 and a
/// message naming the limit either way. The handler then finds the body
/// buffered.
pub(crate) fn limited<S: Clone + Send + Sync + 'static>(
    route: MethodRouter<S>,
    max: usize,
    what: &'static str,
) -> MethodRouter<S> {
    route
        .layer::<_, Infallible>(axum::middleware::from_fn(
            move |request: Request, next: Next| limit_body(request, next, max, what),
        ))
        .layer(DefaultBodyLimit::max(max))
}

async fn limit_body(request: Request, next: Next, max: usize, what: &'static str) -> Response {
    let too_large = || {
        fail(
            ErrorCode::PayloadTooLarge,
            format!("{what} is larger than this route accepts: the limit is {max} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large()
        }
        Err(e) => {
            return fail(
                ErrorCode::InvalidRequest,
                format!("the request body could not be read: {e}"),
            )
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Runs every database route as the caller (or a minted identity) and adds
/// the identity headers to the reply.
async fn get_or_mint(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let caller = match caller_or_mint(&state, request.headers(), request.uri(), client).await {
        Ok(caller) => caller,
        Err(response) => {
            // Read what the client is still sending (bounded by the largest
            // body any route takes), so that a refused upload sees the
            // refusal instead of a connection reset mid-write. Whatever the
            // read gives, the refusal is the answer.
            let body = http_body_util::Limited::new(request.into_body(), limits::MODULE_BYTES_MAX);
            let _ = body.collect().await;
            return response;
        }
    };
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    identity_headers(&caller, response.headers_mut());
    response
}

fn registry_error(e: RegistryError) -> Response {
    let code = match &e {
        RegistryError::NotFound(_) => ErrorCode::NotFound,
        RegistryError::InvalidName(_)
        | RegistryError::NameTaken(_)
        | RegistryError::AlreadyExists(_)
        | RegistryError::Publish(_) => ErrorCode::InvalidRequest,
        RegistryError::NotOwner(_) | RegistryError::Locked => ErrorCode::Forbidden,
        RegistryError::Storage(_) | RegistryError::Io(_) => ErrorCode::Internal,
        RegistryError::Broken { .. } | RegistryError::Unverified(_) => ErrorCode::Unavailable,
    };
    fail(code, e.to_string())
}

pub(crate) async fn blocking<R: Send + 'static>(
    job: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Response> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| fail(ErrorCode::Internal, format!("the request failed: {e}")))
}

fn hex_identity(identity: Identity) -> String {
    identity.to_hex().to_string()
}

// ---------------------------------------------------------------- publish

#[derive(Deserialize, Default)]
struct PublishQuery {
    host_type: Option<String>,
    #[serde(default)]
    clear: bool,
    policy: Option<String>,
    token: Option<String>,
}

async fn publish_new(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<PublishQuery>,
    body: Bytes,
) -> Response {
    publish(state, caller, None, query, body).await
}

async fn publish_named(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
    Query(query): Query<PublishQuery>,
    body: Bytes,
) -> Response {
    publish(state, caller, Some(name_or_identity), query, body).await
}

async fn publish(
    state: Arc<ApiState>,
    caller: Caller,
    target: Option<String>,
    query: PublishQuery,
    body: Bytes,
) -> Response {
    match query.host_type.as_deref() {
        None | Some("Wasm") => {}
        Some("Js") => {
            return fail(
                ErrorCode::InvalidRequest,
                "host_type Js is not supported: this server hosts WASM modules",
            )
        }
        Some(other) => {
            return fail(
                ErrorCode::InvalidRequest,
                format!("unknown host_type `{other}` (expected Wasm or Js)"),
            )
        }
    }
    let break_clients = match query.policy.as_deref() {
        None | Some("Compatible") => false,
        Some("BreakClients") => true,
        Some(other) => {
            return fail(
                ErrorCode::InvalidRequest,
                format!("unknown policy `{other}` (expected Compatible or BreakClients)"),
            )
        }
    };
    // The token doubles as credentials (`?token=<jwt>`); it is a migration
    // token only with policy=BreakClients, and then it must be one.
    let token = match (break_clients, query.token.as_deref()) {
        (false, _) => None,
        (true, None) => {
            return fail(
                ErrorCode::InvalidRequest,
                "policy=BreakClients needs the token from pre_publish",
            )
        }
        (true, Some(text)) => match parse_migration_token(text) {
            Some(token) => Some(token),
            None => {
                return fail(
                    ErrorCode::InvalidRequest,
                    format!(
                        "`{text}` is not a migration token: pass the token pre_publish answered"
                    ),
                )
            }
        },
    };
    if query.clear && target.is_none() {
        return fail(
            ErrorCode::InvalidRequest,
            "clear needs a database name or identity",
        );
    }
    let parsed = match target.as_deref().map(parse_name_or_identity) {
        None => None,
        Some(Ok(parsed)) => Some(parsed),
        Some(Err(e)) => return registry_error(e),
    };
    let settings = match claim_for_publish(&state, &caller, parsed.as_ref()).await {
        Ok(settings) => settings,
        Err(response) => return response,
    };
    if let Some(signer) = &state.access.signer {
        let database = target.as_deref().unwrap_or("unnamed");
        if let Err(refusal) = signer
            .sign(
                caller.grant.as_deref(),
                caller.identity(),
                database,
                body.clone(),
            )
            .await
        {
            return refusal.into_response();
        }
    }
    let registry = state.registry.clone();
    let owner = caller.identity();
    let clear = query.clear;
    let (access, publisher) = (state.access.clone(), caller.clone());
    let module = body.clone();
    let result = blocking(move || {
        let (existing, name, identity) = match parsed {
            None => (None, None, None),
            Some(NameOrIdentity::Name(name)) => match registry.name_target(&name) {
                Some(NameTarget::Database(id)) => (Some(id), Some(name), None),
                // The name's first publish failed: its owner creates the
                // database now, under the identity the name holds.
                Some(NameTarget::NoDatabase {
                    identity,
                    owner: holder,
                }) if holder == owner => (None, Some(name), Some(identity)),
                Some(NameTarget::NoDatabase { .. }) => {
                    return Err(json_response(
                        StatusCode::UNAUTHORIZED,
                        json!({"PermissionDenied": {"name": name}}),
                    ))
                }
                None => (None, Some(name), None),
            },
            Some(NameOrIdentity::Identity(id)) => {
                (registry.get(&id).map(|e| e.identity()), None, Some(id))
            }
        };
        match existing {
            Some(id) if name.is_some() && registry.get(&id).is_some_and(|e| e.owner() != owner) => {
                Err(json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"PermissionDenied": {"name": name}}),
                ))
            }
            Some(id) => {
                if let Some(entry) = registry.get(&id) {
                    publisher.account_may(&access, &entry, Scope::Deploy)?;
                }
                // With `clear` the data goes and the clients with it: no
                // policy applies (as the reference's reset).
                // A stranger is refused by the update itself, before any
                // word about the policy.
                if let (false, Some(entry)) = (clear, registry.get(&id)) {
                    if entry.owner() == owner {
                        check_policy(&registry, &entry, &body, token)?;
                    }
                }
                registry
                    .update(&id, &owner, &body, clear)
                    .map(|_| (id, name, "updated"))
                    .map_err(registry_error)
            }
            None => registry
                .create_with(owner, name.clone(), identity, &body, settings)
                .map(|entry| (entry.identity(), name, "created"))
                .map_err(registry_error),
        }
    })
    .await;
    match result {
        Ok(Ok((id, name, op))) => {
            if let (Some(grant), Some(authenticator)) = (&caller.grant, &state.access.authenticator)
            {
                let database = name.clone().or_else(|| {
                    state
                        .registry
                        .get(&id)
                        .and_then(|e| e.names().first().cloned())
                });
                if let Some(database) = database {
                    let event = OwnerEvent::Published {
                        database,
                        module,
                        created: op == "created",
                    };
                    authenticator.record(grant, event).await;
                }
            }
            json_response(
                StatusCode::OK,
                json!({"Success": {"domain": name, "database_identity": hex_identity(id), "op": op}}),
            )
        }
        Ok(Err(response)) | Err(response) => response,
    }
}

/// The access rules of a publish before it runs. A publish that creates a
/// database needs, with accounts, an account credential whose scope covers
/// `deploy` and a name the account may claim (the control plane claims it
/// now, or refuses); with open publishing anyone may create. Updates are
/// checked against the database's owner when it is found.
#[allow(clippy::result_large_err)]
async fn claim_for_publish(
    state: &ApiState,
    caller: &Caller,
    target: Option<&NameOrIdentity>,
) -> Result<orrery_api::DatabaseSettings, Response> {
    let creates = match target {
        None => true,
        Some(NameOrIdentity::Name(name)) => !matches!(
            state.registry.name_target(name),
            Some(NameTarget::Database(_))
        ),
        Some(NameOrIdentity::Identity(id)) => state.registry.get(id).is_none(),
    };
    if !creates {
        return Ok(Default::default());
    }
    let Some(grant) = &caller.grant else {
        if state.access.open_publishing {
            return Ok(Default::default());
        }
        // No credentials at all is 401; an app identity's token is 403.
        let code = if caller.minted {
            ErrorCode::Unauthorized
        } else {
            ErrorCode::Forbidden
        };
        return Err(fail(code, format!("publishing {NEEDS_ACCOUNT_TOKEN}")));
    };
    if !grant.scope.covers(Scope::Deploy) {
        return Err(fail(
            ErrorCode::Forbidden,
            format!(
                "this token's scope is `{}`; publishing needs `deploy` or more",
                grant.scope
            ),
        ));
    }
    let Some(NameOrIdentity::Name(name)) = target else {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "a database of an account needs a name: publish with PUT /v1/database/<name>",
        ));
    };
    let Some(authenticator) = &state.access.authenticator else {
        return Err(fail(
            ErrorCode::Internal,
            "account credential without an authenticator",
        ));
    };
    authenticator
        .claim_database(grant, name)
        .await
        .map_err(Refusal::into_response)
}

/// The confirmation token of an update: a hash of the database identity and
/// the old and new module hashes.
fn migration_token(id: Identity, old: [u8; 32], new: [u8; 32]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&id.to_byte_array());
    hasher.update(&old);
    hasher.update(&new);
    Hash::from_byte_array(*hasher.finalize().as_bytes())
}

/// A token as `pre_publish` answers it: the SATS-JSON of a `Hash`, a `0x`
/// number without leading zeros. The stock CLI reads the answer into its
/// `Hash` type and writes that back into the publish's query, so only this
/// spelling survives the round trip unchanged.
fn migration_token_text(token: Hash) -> String {
    match sats_json(&token) {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// Reads a publish's `token` the way the stock CLI's `Hash` reads it: a
/// `0x` hexadecimal number, leading zeros optional.
fn parse_migration_token(text: &str) -> Option<Hash> {
    serde_json::from_value(Value::String(text.to_owned())).ok()
}

/// The update policy of a publish without `clear` (client-protocol §2.3.6):
/// an update that disconnects every client needs policy=BreakClients, and
/// that policy needs the token `pre_publish` gave for exactly this update
/// (this database, its current module, the new one).
fn check_policy(
    registry: &Registry,
    entry: &Entry,
    wasm: &[u8],
    token: Option<Hash>,
) -> Result<(), Response> {
    if let Some(token) = token {
        let expected = migration_token(
            entry.identity(),
            entry.module_hash(),
            *blake3::hash(wasm).as_bytes(),
        );
        if token != expected {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "the token does not match this update; run pre_publish again",
            ));
        }
        return Ok(());
    }
    // Compatible: refused only if the update would disconnect the clients.
    // A module that does not load is left for the update to refuse.
    let Ok(new) = registry
        .host()
        .runtime()
        .host(wasm, tenant_host::registry::options(entry.identity()))
    else {
        return Ok(());
    };
    // An update the plan blocks is refused by the update itself, with the
    // blockers, which say more than the policy would.
    let old = entry.database().module();
    if !orrery_moduledef::migrate::plan(old.def(), new.def()).is_automatic() {
        return Ok(());
    }
    let reasons = orrery_moduledef::migrate::disconnect_reasons(old.def(), new.def());
    if !reasons.is_empty() {
        return Err(fail(
            ErrorCode::InvalidRequest,
            format!(
                "this update disconnects every client ({}): \
                 publish with policy=BreakClients and the token pre_publish answers",
                reasons.join("; ")
            ),
        ));
    }
    Ok(())
}

async fn pre_publish(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
    Query(query): Query<PublishQuery>,
    body: Bytes,
) -> Response {
    if query.host_type.as_deref().is_some_and(|h| h != "Wasm") {
        return fail(
            ErrorCode::InvalidRequest,
            "only host_type Wasm is supported",
        );
    }
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    if let Err(response) = caller.owner_may(&state.access, &entry, Scope::Deploy) {
        return response;
    }
    let registry = state.registry.clone();
    let result = blocking(move || {
        let new = registry
            .host()
            .runtime()
            .host(&body, tenant_host::registry::options(entry.identity()))
            .map_err(|e| fail(ErrorCode::InvalidRequest, e.to_string()))?;
        let old = entry.database().module();
        let plan = orrery_moduledef::migrate::plan(old.def(), new.def());
        let major = orrery_moduledef::migrate::major_version_upgrade(old.def(), new.def());
        let reply = if plan.is_automatic() {
            let token = migration_token(
                entry.identity(),
                entry.module_hash(),
                *blake3::hash(&body).as_bytes(),
            );
            let reasons = orrery_moduledef::migrate::disconnect_reasons(old.def(), new.def());
            let break_clients = !reasons.is_empty();
            let mut text = plan.to_string();
            if break_clients {
                text.push_str(&format!(
                    "\n  - disconnect every client ({}; they reconnect to the new module)",
                    reasons.join("; ")
                ));
            }
            json!({"AutoMigrate": {
                "migrate_plan": text,
                "break_clients": break_clients,
                "token": migration_token_text(token),
                "major_version_upgrade": major,
            }})
        } else {
            json!({"ManualMigrate": {
                "reason": plan.blockers.join("\n"),
                "major_version_upgrade": major,
            }})
        };
        Ok::<_, Response>(reply)
    })
    .await;
    match result {
        Ok(Ok(reply)) => json_response(StatusCode::OK, reply),
        Ok(Err(response)) | Err(response) => response,
    }
}

// ---------------------------------------------------------------- info, delete, identity, names

fn sats_json<T: spacetimedb_sats::ser::Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(SerdeWrapper::from_ref(value)).unwrap_or(Value::Null)
}

async fn info(
    State(state): State<Arc<ApiState>>,
    Path(name_or_identity): Path<String>,
) -> Response {
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    json_response(
        StatusCode::OK,
        json!({
            "database_identity": sats_json(&entry.identity()),
            "owner_identity": sats_json(&entry.owner()),
            "host_type": {"Wasm": []},
            "initial_program": format!("0x{}", entry.initial_program()),
        }),
    )
}

async fn delete(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
) -> Response {
    let id = match parse_name_or_identity(&name_or_identity) {
        Ok(NameOrIdentity::Identity(id)) => id,
        Ok(NameOrIdentity::Name(name)) => match state.registry.name_target(&name) {
            Some(NameTarget::NoDatabase { identity, .. }) => identity,
            _ => match resolve_database(&state.registry, &name_or_identity) {
                Ok(entry) => entry.identity(),
                Err(response) => return response,
            },
        },
        Err(e) => return registry_error(e),
    };
    let names = match state.registry.get(&id) {
        Some(entry) => {
            if let Err(response) = caller.account_may(&state.access, &entry, Scope::Admin) {
                return response;
            }
            entry.names()
        }
        None => Vec::new(),
    };
    let registry = state.registry.clone();
    let owner = caller.identity();
    // No database (a failed first publish): 200 as for any unknown
    // identity, and the owner's names on it are free again.
    match blocking(move || {
        registry
            .forget_dangling(&id, &owner)
            .and_then(|()| registry.delete(&id, &owner))
    })
    .await
    {
        Ok(Ok(())) => {
            if let (Some(grant), Some(authenticator)) = (&caller.grant, &state.access.authenticator)
            {
                for database in names {
                    authenticator
                        .record(grant, OwnerEvent::Deleted { database })
                        .await;
                }
            }
            StatusCode::OK.into_response()
        }
        Ok(Err(e)) => registry_error(e),
        Err(response) => response,
    }
}

async fn identity(
    State(state): State<Arc<ApiState>>,
    Path(name_or_identity): Path<String>,
) -> Response {
    let text = |id: Identity| {
        (
            StatusCode::OK,
            [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
            hex_identity(id),
        )
            .into_response()
    };
    // A name whose first publish failed resolves to its identity, as the
    // reference's: the stock CLI then reaches the database routes, which
    // answer "No such database.".
    if let Some(NameTarget::NoDatabase { identity, .. }) =
        state.registry.name_target(&name_or_identity)
    {
        return text(identity);
    }
    match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => text(entry.identity()),
        Err(response) => response,
    }
}

async fn names(
    State(state): State<Arc<ApiState>>,
    Path(name_or_identity): Path<String>,
) -> Response {
    match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => json_response(StatusCode::OK, json!({"names": entry.names()})),
        Err(response) => response,
    }
}

async fn add_name(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
    body: String,
) -> Response {
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    if caller.grant.is_some() {
        return fail(
            ErrorCode::InvalidRequest,
            "a database of an account has one name: rename it instead (PUT names with one name)",
        );
    }
    if let Err(response) = caller.account_may(&state.access, &entry, Scope::Admin) {
        return response;
    }
    let name = body.trim().to_owned();
    let registry = state.registry.clone();
    let (id, who, new_name) = (entry.identity(), caller.identity(), name.clone());
    let result = match blocking(move || registry.register(&id, &who, &new_name)).await {
        Ok(result) => result,
        Err(response) => return response,
    };
    match result {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({"Success": {"domain": name, "database_identity": hex_identity(entry.identity())}}),
        ),
        Err(RegistryError::InvalidName(_)) => json_response(
            StatusCode::BAD_REQUEST,
            json!({"TldNotRegistered": {"domain": name}}),
        ),
        Err(RegistryError::NotOwner(_) | RegistryError::NameTaken(_)) => json_response(
            StatusCode::UNAUTHORIZED,
            json!({"PermissionDenied": {"domain": name}}),
        ),
        // Through the one error path, so a 5xx is logged with its message.
        Err(e) => registry_error(e),
    }
}

async fn replace_names(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
    body: Bytes,
) -> Response {
    let entry = match parse_name_or_identity(&name_or_identity) {
        Ok(NameOrIdentity::Identity(_)) => match state.registry.resolve(&name_or_identity) {
            Ok(Some(entry)) => entry,
            Ok(None) => return json_response(StatusCode::NOT_FOUND, json!("DatabaseNotFound")),
            Err(e) => return registry_error(e),
        },
        _ => match resolve_database(&state.registry, &name_or_identity) {
            Ok(entry) => entry,
            Err(response) => return response,
        },
    };
    let Ok(names) = serde_json::from_slice::<Vec<String>>(&body) else {
        return fail(
            ErrorCode::InvalidRequest,
            "the body must be a JSON array of names",
        );
    };
    if let Err(response) = caller.account_may(&state.access, &entry, Scope::Admin) {
        return response;
    }
    if let (Some(grant), Some(authenticator)) = (&caller.grant, &state.access.authenticator) {
        // An account's database has exactly one name, which the control
        // plane moves first (it knows every name of the platform).
        let ([to], Some(from)) = (names.as_slice(), entry.names().first().cloned()) else {
            return fail(
                ErrorCode::InvalidRequest,
                "a database of an account has exactly one name: send one",
            );
        };
        if caller.identity() == entry.owner() {
            if let Err(refusal) = authenticator.rename_database(grant, &from, to).await {
                return refusal.into_response();
            }
        }
    }
    let registry = state.registry.clone();
    let (id, who) = (entry.identity(), caller.identity());
    let result = match blocking(move || registry.replace_names(&id, &who, names)).await {
        Ok(result) => result,
        Err(response) => return response,
    };
    match result {
        Ok(()) => json_response(StatusCode::OK, json!("Success")),
        Err(RegistryError::NotOwner(_)) => json_response(
            StatusCode::UNAUTHORIZED,
            json!({"NotYourDatabase": {"database": hex_identity(entry.identity())}}),
        ),
        Err(RegistryError::InvalidName(name)) => fail(
            ErrorCode::InvalidRequest,
            format!("`{name}` is not a valid database name"),
        ),
        Err(e @ RegistryError::NameTaken(_)) => json_response(
            StatusCode::BAD_REQUEST,
            json!({"OtherError": e.to_string()}),
        ),
        // Through the one error path, so a 5xx is logged with its message.
        Err(e) => registry_error(e),
    }
}

async fn owned_databases(
    State(state): State<Arc<ApiState>>,
    Path(identity): Path<String>,
) -> Response {
    let hex = identity.strip_prefix("0x").unwrap_or(&identity);
    match Identity::from_hex(hex) {
        Ok(owner) => {
            let ids: Vec<String> = state
                .registry
                .owned_by(&owner)
                .into_iter()
                .map(hex_identity)
                .collect();
            json_response(StatusCode::OK, json!({ "identities": ids }))
        }
        Err(_) => fail(
            ErrorCode::InvalidRequest,
            format!("`{identity}` is not an identity"),
        ),
    }
}

/// The reference's fields, plus this host's copies in the object store:
/// `status` is `degraded` while a database's copy is failing (its
/// uploads retry; nothing is dropped) or fenced (another host took it).
async fn health(State(state): State<Arc<ApiState>>) -> Response {
    let mut failing = Vec::new();
    let mut fenced = Vec::new();
    let databases = state.registry.all();
    for entry in &databases {
        let Some(status) = state.registry.replica_status(&entry.identity()) else {
            continue;
        };
        let name = entry
            .names()
            .first()
            .cloned()
            .unwrap_or_else(|| hex_identity(entry.identity()));
        if status.fenced {
            fenced.push(name);
        } else if status.failing_for > 0 {
            failing.push(name);
        }
    }
    let degraded = !failing.is_empty() || !fenced.is_empty();
    json_response(
        StatusCode::OK,
        json!({
            "package_name": "orrery",
            "version": env!("CARGO_PKG_VERSION"),
            "nodes": [0],
            "schedulable": true,
            "status": if degraded { "degraded" } else { "ok" },
            "object_store": {
                "databases": databases.len(),
                "failing": failing,
                "fenced": fenced,
            },
        }),
    )
}

async fn lock(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
) -> Response {
    set_locked(state, caller, name_or_identity, true).await
}

async fn unlock(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
) -> Response {
    set_locked(state, caller, name_or_identity, false).await
}

async fn set_locked(
    state: Arc<ApiState>,
    caller: Caller,
    name_or_identity: String,
    locked: bool,
) -> Response {
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    if let Err(response) = caller.account_may(&state.access, &entry, Scope::Admin) {
        return response;
    }
    let registry = state.registry.clone();
    let (id, who) = (entry.identity(), caller.identity());
    match blocking(move || registry.set_locked(&id, &who, locked)).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => registry_error(e),
        Err(response) => response,
    }
}

async fn timestamp(
    State(state): State<Arc<ApiState>>,
    Path(name_or_identity): Path<String>,
) -> Response {
    if let Err(response) = resolve_database(&state.registry, &name_or_identity) {
        return response;
    }
    let now = state.registry.host().clock().now_micros();
    json_response(
        StatusCode::OK,
        json!({"__timestamp_micros_since_unix_epoch__": now}),
    )
}

// ---------------------------------------------------------------- schema

#[derive(Deserialize)]
struct SchemaQuery {
    version: Option<String>,
}

async fn schema(
    State(state): State<Arc<ApiState>>,
    Path(name_or_identity): Path<String>,
    Query(query): Query<SchemaQuery>,
) -> Response {
    let version = match query.version.as_deref() {
        Some("10") => 10,
        Some("9") => 9,
        Some(other) => {
            return fail(
                ErrorCode::InvalidRequest,
                format!("unknown schema version `{other}` (expected 9 or 10)"),
            )
        }
        None => {
            return fail(
                ErrorCode::InvalidRequest,
                "the version parameter is required",
            )
        }
    };
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let module = entry.database().module();
    let raw: RawModuleDef = match spacetimedb_lib::bsatn::from_slice(module.raw_description()) {
        Ok(raw) => raw,
        Err(e) => {
            return fail(
                ErrorCode::Internal,
                format!("the module definition does not decode: {e}"),
            )
        }
    };
    match (version, &raw) {
        (10, RawModuleDef::V10(def)) => json_response(StatusCode::OK, sats_json(def)),
        (9, RawModuleDef::V9(def)) => json_response(StatusCode::OK, sats_json(def)),
        // V9 carries canonical names only (what the reference serves).
        (9, RawModuleDef::V10(def)) => match orrery_moduledef::v9::to_v9(def, module.def()) {
            Ok(v9) => json_response(StatusCode::OK, sats_json(&v9)),
            Err(missing) => fail(
                ErrorCode::InvalidRequest,
                format!(
                    "this module's definition cannot be expressed as version 9: {}; \
                     ask for version=10",
                    missing.join("; ")
                ),
            ),
        },
        (10, _) => fail(
            ErrorCode::NotFound,
            "the module only provides a V9 definition; ask for version=9",
        ),
        _ => fail(
            ErrorCode::NotFound,
            "the module provides a V10 definition; ask for version=10",
        ),
    }
}

// ---------------------------------------------------------------- logs

#[derive(Deserialize)]
struct LogsQuery {
    num_lines: Option<usize>,
    #[serde(default)]
    follow: bool,
}

/// The capitalised level names of the log format.
fn level_name(level: tenant_host::logs::LogLevel) -> &'static str {
    use tenant_host::logs::LogLevel;
    match level {
        LogLevel::Error => "Error",
        LogLevel::Warn => "Warn",
        LogLevel::Info => "Info",
        LogLevel::Debug => "Debug",
        LogLevel::Trace => "Trace",
        LogLevel::Panic => "Panic",
    }
}

/// One NDJSON line of the module log (client-protocol §2.3.14).
fn log_line(entry: &LogEntry) -> String {
    let mut record = serde_json::Map::new();
    record.insert("level".into(), json!(level_name(entry.level)));
    record.insert("ts".into(), json!(entry.ts));
    if !entry.target.is_empty() {
        record.insert("target".into(), json!(entry.target));
    }
    if !entry.file.is_empty() {
        record.insert("filename".into(), json!(entry.file));
    }
    if entry.line != 0 {
        record.insert("line_number".into(), json!(entry.line));
    }
    if !entry.function.is_empty() {
        record.insert("function".into(), json!(entry.function));
    }
    record.insert("message".into(), json!(entry.message));
    let mut line = Value::Object(record).to_string();
    line.push('\n');
    line
}

/// A body fed by a channel; ends when the sender goes away.
struct ChannelBody(tokio::sync::mpsc::Receiver<String>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|line| Ok(http_body::Frame::data(Bytes::from(line)))))
    }
}

async fn logs(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    if let Err(response) = caller.owner_may(&state.access, &entry, Scope::Read) {
        return response;
    }
    let headers = [
        (
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        ),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    let num_lines = query.num_lines.unwrap_or(usize::MAX);
    if !query.follow {
        let body: String = entry
            .database()
            .log()
            .tail(num_lines)
            .iter()
            .map(log_line)
            .collect();
        return (StatusCode::OK, headers, body).into_response();
    }
    let mut follow = entry.database().log().follow(num_lines);
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    tokio::spawn(async move {
        // Keeps the database (and so its log) alive while following.
        let registry = state.registry.clone();
        let _entry = entry;
        loop {
            let event = tokio::select! {
                event = follow.recv() => event,
                () = tx.closed() => break,
                () = registry.shutting_down() => break,
            };
            let line = match event {
                Some(FollowEvent::Entry(record)) => log_line(&record),
                Some(FollowEvent::Skipped(n)) => {
                    let mut line = json!({
                        "level": "Warn",
                        "ts": registry.host().clock().now_micros(),
                        "target": "__spacetimedb__",
                        "message": format!("{n} log records were skipped (the reader was too slow)"),
                    })
                    .to_string();
                    line.push('\n');
                    line
                }
                None => break,
            };
            if tx.send(line).await.is_err() {
                break;
            }
        }
    });
    (StatusCode::OK, headers, Body::new(ChannelBody(rx))).into_response()
}

// ---------------------------------------------------------------- call

/// Runs `job` inside a short-lived connection of `caller` to `database`:
/// `client_connected` first (a refusal is returned as the error response),
/// then `job`, then always `client_disconnected`. Blocking.
fn with_connection<R>(
    database: &HostedDatabase,
    caller: &Caller,
    connection_id: ConnectionId,
    job: impl FnOnce() -> R,
) -> Result<R, Response> {
    let identity = caller.identity();
    let connected = database
        .client_connected(identity, connection_id, Some(caller.claims.payload.clone()))
        .map_err(|e| fail(ErrorCode::Unavailable, e.to_string()))?;
    match connected.outcome {
        ReducerOutcome::Committed { .. } => {}
        ReducerOutcome::OutOfFuel => {
            return Err(fail(
                ErrorCode::Unavailable,
                "Module energy budget exhausted.",
            ))
        }
        other => return Err(fail(ErrorCode::Forbidden, outcome_message(&other))),
    }
    let result = job();
    if let Err(e) = database.client_disconnected(identity, connection_id) {
        tracing::warn!(error = %e, "client_disconnected after an HTTP request failed");
    }
    Ok(result)
}

fn outcome_message(outcome: &ReducerOutcome) -> String {
    match outcome {
        ReducerOutcome::Committed { .. } => String::new(),
        ReducerOutcome::Failed { message } | ReducerOutcome::Trapped { message } => message.clone(),
        ReducerOutcome::OutOfFuel => "Module energy budget exhausted.".into(),
        ReducerOutcome::Timeout => "the call ran past its deadline".into(),
        ReducerOutcome::BadArguments { message } => message.clone(),
        ReducerOutcome::ArgumentsTooLarge { bytes, limit } => {
            format!("the arguments are {bytes} bytes; the limit is {limit}")
        }
        ReducerOutcome::NotCallable { reducer } => format!("reducer `{reducer}` cannot be called"),
        ReducerOutcome::NoSuchReducer { reducer } => format!("no such reducer `{reducer}`"),
        ReducerOutcome::Internal { message } => message.clone(),
    }
}

/// `caller` calling now over the short-lived connection `conn`.
fn call_context(database: &HostedDatabase, caller: &Caller, conn: ConnectionId) -> CallerContext {
    CallerContext {
        sender: caller.identity(),
        connection_id: conn,
        timestamp_micros: database.clock().now_micros(),
    }
}

/// A fresh random non-zero connection id.
pub(crate) fn connection_id() -> ConnectionId {
    loop {
        let id = ConnectionId::from_le_byte_array(orrery_api::ids::random_bytes::<16>());
        if id != ConnectionId::ZERO {
            return id;
        }
    }
}

fn with_headers(mut response: Response, energy: Option<u64>, started: Instant) -> Response {
    let headers = response.headers_mut();
    if let Some(energy) = energy {
        headers.insert(ENERGY_HEADER, HeaderValue::from(energy));
    }
    headers.insert(
        DURATION_HEADER,
        HeaderValue::from(started.elapsed().as_micros() as u64),
    );
    response
}

/// Decodes a JSON argument list (array or object) at `params`.
fn decode_args(
    typespace: &spacetimedb_sats::Typespace,
    params: &spacetimedb_sats::ProductType,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: ProductValue =
        serde::de::DeserializeSeed::deserialize(SerdeWrapper(typespace.with_type(params)), &mut de)
            .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    spacetimedb_sats::bsatn::to_vec(&value).map_err(|e| e.to_string())
}

async fn call(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((name_or_identity, function)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match headers.get(CONTENT_TYPE) {
        None => return fail(ErrorCode::InvalidRequest, "Missing Content-Type header"),
        Some(value) if value.as_bytes() == b"application/json" => {}
        Some(_) => {
            return fail(
                ErrorCode::UnsupportedMediaType,
                "Content-Type must be application/json",
            )
        }
    }
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let module = entry.database().module();
    let def = module.def();
    let started = Instant::now();
    // By canonical name, else by the name in module source.
    let reducer = def.reducer(&function);
    let procedure = def.procedure(&function);
    if let Some((_, reducer)) = reducer {
        let function = reducer.source_name.clone();
        if reducer.lifecycle.is_some() {
            return fail(
                ErrorCode::InvalidRequest,
                format!("lifecycle reducer `{function}` cannot be called"),
            );
        }
        let args = match decode_args(&def.typespace, &reducer.raw_params, &body) {
            Ok(args) => args,
            Err(e) => {
                return fail(
                    ErrorCode::InvalidArguments,
                    format!("invalid arguments for reducer {function}: {e}"),
                )
            }
        };
        drop(module);
        let result = blocking(move || {
            let database = entry.database();
            let conn = connection_id();
            with_connection(database, &caller, conn, || {
                database.call_reducer(&function, call_context(database, &caller, conn), args)
            })
            .map(|r| (function, r))
        })
        .await;
        let (function, result) = match result {
            Ok(Ok((function, Ok(result)))) => (function, result),
            Ok(Ok((_, Err(e)))) => return fail(ErrorCode::Unavailable, e.to_string()),
            Ok(Err(response)) | Err(response) => return response,
        };
        return with_headers(
            reducer_reply(&function, &result),
            Some(result.fuel_used),
            started,
        );
    }
    if let Some((_, procedure)) = procedure {
        let function = procedure.source_name.clone();
        let args = match decode_args(&def.typespace, &procedure.raw_params, &body) {
            Ok(args) => args,
            Err(e) => {
                return fail(
                    ErrorCode::InvalidArguments,
                    format!("invalid arguments for procedure {function}: {e}"),
                )
            }
        };
        let return_type = procedure.raw_return_type.clone();
        let name = function.clone();
        let typespace = def.typespace.clone();
        drop(module);
        let result = blocking(move || {
            let database = entry.database();
            let conn = connection_id();
            with_connection(database, &caller, conn, || {
                database.call_procedure(&function, call_context(database, &caller, conn), args)
            })
        })
        .await;
        let result = match result {
            Ok(Ok(Ok(result))) => result,
            Ok(Ok(Err(e))) => return fail(ErrorCode::Unavailable, e.to_string()),
            Ok(Err(response)) | Err(response) => return response,
        };
        let response = match result.outcome {
            ProcedureOutcome::Returned { value } => {
                let decoded: Result<AlgebraicValue, _> = typespace
                    .with_type(&return_type)
                    .deserialize(spacetimedb_sats::bsatn::Deserializer::new(&mut &value[..]));
                match decoded {
                    Ok(value) => json_response(StatusCode::OK, sats_json(&value)),
                    Err(e) => fail(
                        ErrorCode::Internal,
                        format!("the procedure's return value does not decode: {e}"),
                    ),
                }
            }
            ProcedureOutcome::Trapped { message } => fail(ErrorCode::ModuleFailed, message),
            ProcedureOutcome::OutOfFuel => {
                fail(ErrorCode::OutOfEnergy, "Module energy budget exhausted.")
            }
            ProcedureOutcome::Timeout => fail(
                ErrorCode::CallTimeout,
                "the procedure ran past its deadline",
            ),
            ProcedureOutcome::BadArguments { message } => fail(
                ErrorCode::InvalidArguments,
                format!("invalid arguments for procedure {name}: {message}"),
            ),
            ProcedureOutcome::NoSuchProcedure { procedure } => fail(
                ErrorCode::NotFound,
                format!("No such procedure `{procedure}`"),
            ),
            ProcedureOutcome::NotCallable { procedure } => fail(
                ErrorCode::InvalidRequest,
                format!("procedure `{procedure}` cannot be called"),
            ),
            ProcedureOutcome::Internal { message } => fail(ErrorCode::Internal, message),
        };
        return with_headers(response, Some(result.fuel_used), started);
    }
    fail(
        ErrorCode::NotFound,
        format!("no such reducer `{function}` (nor procedure)"),
    )
}

fn reducer_reply(function: &str, result: &CallResult) -> Response {
    match &result.outcome {
        ReducerOutcome::Committed { .. } => StatusCode::OK.into_response(),
        ReducerOutcome::Failed { message } | ReducerOutcome::Trapped { message } => {
            fail(ErrorCode::ModuleFailed, message.clone())
        }
        ReducerOutcome::Timeout => {
            fail(ErrorCode::CallTimeout, "the reducer ran past its deadline")
        }
        ReducerOutcome::OutOfFuel => {
            fail(ErrorCode::OutOfEnergy, "Module energy budget exhausted.")
        }
        ReducerOutcome::BadArguments { message } => fail(
            ErrorCode::InvalidArguments,
            format!("invalid arguments for reducer {function}: {message}"),
        ),
        ReducerOutcome::ArgumentsTooLarge { .. } | ReducerOutcome::NotCallable { .. } => {
            fail(ErrorCode::InvalidRequest, outcome_message(&result.outcome))
        }
        ReducerOutcome::NoSuchReducer { .. } => {
            fail(ErrorCode::NotFound, outcome_message(&result.outcome))
        }
        ReducerOutcome::Internal { message } => fail(ErrorCode::Internal, message.clone()),
    }
}

// ---------------------------------------------------------------- sql

#[derive(Deserialize)]
struct SqlQuery {
    confirmed: Option<bool>,
}

async fn sql(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name_or_identity): Path<String>,
    Query(query): Query<SqlQuery>,
    body: String,
) -> Response {
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let confirmed = query.confirmed.unwrap_or(true);
    let started = Instant::now();
    let is_owner = caller.is_owner(&state.access, &entry);
    let may_write = caller
        .owner_may(&state.access, &entry, Scope::Deploy)
        .is_ok();
    let result = blocking(move || {
        let database = entry.database();
        with_connection(database, &caller, connection_id(), || {
            let outcome = database.run_sql(&body, caller.identity(), is_owner, may_write)?;
            if let (true, Some(offset)) = (confirmed, outcome.offset) {
                database
                    .storage()
                    .wait_durable(offset)
                    .map_err(|e| orrery_query::sql::SqlError(e.to_string()))?;
            }
            Ok::<_, orrery_query::sql::QueryError>(outcome)
        })
    })
    .await;
    let outcome = match result {
        Ok(Ok(Ok(outcome))) => outcome,
        // A limit crossed is the caller's query too: 400, naming the limit.
        Ok(Ok(Err(e))) => return fail(ErrorCode::InvalidRequest, e.to_string()),
        Ok(Err(response)) | Err(response) => return response,
    };
    let rows: Vec<Value> = outcome.rows.iter().map(sats_json).collect();
    let micros = started.elapsed().as_micros() as u64;
    let reply = json!([{
        "schema": sats_json(&outcome.schema),
        "rows": rows,
        "total_duration_micros": micros,
        "stats": {
            "rows_inserted": outcome.stats.rows_inserted,
            "rows_deleted": outcome.stats.rows_deleted,
            "rows_updated": outcome.stats.rows_updated,
        },
    }]);
    with_headers(json_response(StatusCode::OK, reply), None, started)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the stock CLI does with a token: reads it into its `Hash` and
    /// writes that into the publish's query.
    fn stock_round_trip(text: &str) -> String {
        let hash: Hash = serde_json::from_value(Value::String(text.to_owned())).unwrap();
        match serde_json::to_value(hash).unwrap() {
            Value::String(text) => text,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn tokens_survive_the_stock_clis_round_trip_even_with_leading_zeros() {
        // The most significant byte of the number a `Hash` spells is its
        // last; zero there means leading zeros in a fixed-width spelling,
        // which the CLI's round trip drops.
        for top in [0x00u8, 0x0f, 0x10, 0xff] {
            let mut bytes = [0xa5u8; 32];
            bytes[31] = top;
            bytes[30] = 0;
            let token = Hash::from_byte_array(bytes);
            let text = migration_token_text(token);
            assert!(text.starts_with("0x"), "{text}");
            assert_eq!(stock_round_trip(&text), text, "top byte {top:#04x}");
            assert_eq!(parse_migration_token(&text), Some(token));
            // A zero-padded spelling names the same token.
            let padded = format!("0x{:0>64}", &text[2..]);
            assert_eq!(parse_migration_token(&padded), Some(token), "{padded}");
        }
        assert_eq!(parse_migration_token("zz"), None);
        assert_eq!(parse_migration_token(""), None);
    }
}
