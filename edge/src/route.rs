//! A database's own HTTP API (client-protocol §2 row "route"; module-abi
//! §4.9, §8.14): `ANY /v1/database/{name_or_identity}/route[/…]` reaches the
//! module's HTTP handlers.
//!
//! Owns: the three routes (the prefix itself is path `""`, the prefix with a
//! trailing slash is `"/"`, anything below it is `"/…"` exactly as sent,
//! undecoded), the request the handler sees (method, headers, body, version
//! and the full external URI: scheme and host as the client sent them, via
//! `X-Forwarded-Proto`/`X-Forwarded-Host` or `Host`, then path and query),
//! the body cap ([`limits::HTTP_HANDLER_REQUEST_BODY_BYTES_MAX`], 413 before
//! reading past it), and the reply: the handler's status, headers and body,
//! or an error reply.
//! Does not own: matching a path to a handler (`orrery_moduledef`), running
//! it (`tenant_host::hosting`, on the procedure pool), or the module's log.
//!
//! Like the reference host, these routes take no credentials (a handler has
//! no caller identity) and mint none: a token in the request is the module's
//! business. A path no route matches, for the method or at all, is 404 with
//! the reference's text. A handler that traps, runs out of fuel or past its
//! deadline is answered with a 5xx that names what happened, never the trap
//! text (that is in the module's log).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http_body_util::BodyExt;
use orrery_api::limits;
use orrery_module::HttpHandlerOutcome;
use spacetimedb_lib::http as st;

use super::ApiState;
use crate::database::{limited, resolve_database};
use crate::error::{fail, ErrorCode};

/// What the reference answers for a path no route matches.
pub const NO_SUCH_ROUTE: &str = "Database has not registered a handler for this route";

/// The route prefix's routes.
pub(super) fn routes() -> Router<Arc<ApiState>> {
    let route = || {
        limited(
            any(handle),
            limits::HTTP_HANDLER_REQUEST_BODY_BYTES_MAX,
            "the request body",
        )
    };
    Router::new()
        .route("/v1/database/{name_or_identity}/route", route())
        .route("/v1/database/{name_or_identity}/route/", route())
        .route("/v1/database/{name_or_identity}/route/{*rest}", route())
}

/// The handler path of `uri_path`: what follows `/route` after the
/// database segment, as sent.
fn handler_path(uri_path: &str) -> Option<&str> {
    let rest = uri_path.strip_prefix("/v1/database/")?;
    let (_, rest) = rest.split_once('/')?;
    rest.strip_prefix("route")
}

async fn handle(
    State(state): State<Arc<ApiState>>,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
) -> Response {
    let Some(name_or_identity) = params
        .iter()
        .find(|(key, _)| key == "name_or_identity")
        .map(|(_, value)| value.clone())
    else {
        return fail(ErrorCode::Internal, "the route has no database segment");
    };
    let entry = match resolve_database(&state.registry, &name_or_identity) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let (parts, body) = request.into_parts();
    let Some(path) = handler_path(parts.uri.path()).map(str::to_owned) else {
        return fail(ErrorCode::Internal, "the route prefix is missing");
    };
    let method = method(&parts.method);
    let database = entry.database().clone();
    // Unrouted requests are answered before the body is read or a
    // procedure slot is taken.
    if database.module().def().http_route(&method, &path).is_none() {
        return fail(ErrorCode::NotFound, NO_SUCH_ROUTE);
    }
    // `limited` has buffered the body within the cap.
    let body: Bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return fail(
                ErrorCode::InvalidRequest,
                format!("the request body could not be read: {e}"),
            )
        }
    };
    let request = st::Request {
        method,
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (Some(name.as_str().into()), value.as_bytes().into()))
            .collect(),
        timeout: None,
        uri: external_uri(&parts.uri, &parts.headers),
        version: version(parts.version),
    };
    let result = tokio::task::spawn_blocking(move || {
        database.call_http_handler(&path, request, body.to_vec())
    })
    .await;
    let result = match result {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => return fail(ErrorCode::Unavailable, e.to_string()),
        Err(e) => return fail(ErrorCode::Internal, format!("the request failed: {e}")),
    };
    match result.outcome {
        HttpHandlerOutcome::Responded(response) => reply(response),
        HttpHandlerOutcome::NoSuchHandler { .. } => fail(ErrorCode::NotFound, NO_SUCH_ROUTE),
        HttpHandlerOutcome::Trapped { .. } => fail(
            ErrorCode::ModuleFailed,
            "the HTTP handler failed (it panicked or trapped); see the database's logs",
        ),
        HttpHandlerOutcome::OutOfFuel => fail(
            ErrorCode::ModuleFailed,
            "the HTTP handler ran out of fuel and was stopped",
        ),
        HttpHandlerOutcome::Timeout => fail(
            ErrorCode::CallTimeout,
            "the HTTP handler ran past its deadline and was stopped",
        ),
        HttpHandlerOutcome::Internal { message } => fail(ErrorCode::Internal, message),
    }
}

/// The handler's response as an HTTP reply; a status or header HTTP cannot
/// carry is a 500 that says so.
fn reply(response: orrery_module::HttpResponseParts) -> Response {
    let Ok(status) = StatusCode::from_u16(response.code) else {
        return fail(
            ErrorCode::Internal,
            format!(
                "the HTTP handler answered the invalid status {}",
                response.code
            ),
        );
    };
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for (name, value) in response.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => {
                return fail(
                    ErrorCode::Internal,
                    format!("the HTTP handler answered the invalid header {name:?}"),
                )
            }
        }
    }
    let mut reply = (status, Body::from(response.body)).into_response();
    reply.headers_mut().extend(headers);
    reply
}

/// The URI the client asked for: scheme and host from `X-Forwarded-Proto`
/// and `X-Forwarded-Host` (first value) or `Host`, then path and query.
fn external_uri(uri: &axum::http::Uri, headers: &HeaderMap) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let scheme = first("x-forwarded-proto")
        .or_else(|| uri.scheme_str().map(str::to_owned))
        .unwrap_or_else(|| "http".into());
    let host = first("x-forwarded-host")
        .or_else(|| first("host"))
        .or_else(|| uri.authority().map(|a| a.to_string()));
    match host {
        Some(host) => format!("{scheme}://{host}{path_and_query}"),
        None => path_and_query.to_owned(),
    }
}

fn method(method: &Method) -> st::Method {
    match *method {
        Method::GET => st::Method::Get,
        Method::HEAD => st::Method::Head,
        Method::POST => st::Method::Post,
        Method::PUT => st::Method::Put,
        Method::DELETE => st::Method::Delete,
        Method::CONNECT => st::Method::Connect,
        Method::OPTIONS => st::Method::Options,
        Method::TRACE => st::Method::Trace,
        Method::PATCH => st::Method::Patch,
        ref other => st::Method::Extension(other.as_str().to_owned()),
    }
}

fn version(version: Version) -> st::Version {
    match version {
        Version::HTTP_09 => st::Version::Http09,
        Version::HTTP_10 => st::Version::Http10,
        Version::HTTP_2 => st::Version::Http2,
        Version::HTTP_3 => st::Version::Http3,
        _ => st::Version::Http11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_paths_are_taken_as_sent() {
        assert_eq!(handler_path("/v1/database/db/route"), Some(""));
        assert_eq!(handler_path("/v1/database/db/route/"), Some("/"));
        assert_eq!(handler_path("/v1/database/db/route//"), Some("//"));
        assert_eq!(handler_path("/v1/database/db/route/a/b/"), Some("/a/b/"));
        assert_eq!(handler_path("/v1/database/db/route/%61"), Some("/%61"));
        assert_eq!(handler_path("/v1/database/db/sql"), None);
    }

    #[test]
    fn the_external_uri_is_what_the_client_sent() {
        let uri: axum::http::Uri = "/v1/database/db/route/x?a=b".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(external_uri(&uri, &headers), "/v1/database/db/route/x?a=b");
        headers.insert("host", HeaderValue::from_static("example.test:3000"));
        assert_eq!(
            external_uri(&uri, &headers),
            "http://example.test:3000/v1/database/db/route/x?a=b"
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https, http"));
        headers.insert("x-forwarded-host", HeaderValue::from_static("api.example"));
        assert_eq!(
            external_uri(&uri, &headers),
            "https://api.example/v1/database/db/route/x?a=b"
        );
    }
}
