//! HTTP handlers and routes (module-abi §6.1 sections 11 and 12, §8.14;
//! the `unstable` feature of the bindings).
//!
//! Owns: [`HttpHandlerInfo`], [`HttpRouteInfo`], their validation at
//! publish time and [`ModuleDef::http_route`], the matching of one request
//! (method, path below the database's route prefix) to a handler.
//! Does not own: where the prefix is served (`orrery_edge`) or calling the
//! handler (`orrery_module`).
//!
//! Rules (the reference host's observable behaviour): a path is empty (the
//! prefix itself) or starts with `/`, and holds only ASCII lowercase letters,
//! digits and `-_~/`; matching is exact, so `/foo` and `/foo/` are different
//! routes; two routes on one path overlap when their methods are equal or
//! either is "any", and overlapping routes are refused; every route names a
//! declared handler, and handler names are unique.

use spacetimedb_lib::db::raw_def::v10::MethodOrAny;
use spacetimedb_lib::http::Method;

use crate::{ModuleDef, ModuleDefError};

/// One HTTP handler; its position is the id passed to `__call_http_handler__`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHandlerInfo {
    pub source_name: String,
}

/// One route: requests with `method` (any method when `None`) to exactly
/// `path` below the prefix go to handler `handler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRouteInfo {
    /// Index into [`ModuleDef::http_handlers`].
    pub handler: usize,
    pub method: Option<Method>,
    pub path: String,
}

/// The characters a route path may hold besides its leading `/`.
fn path_char_ok(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || "-_~/".contains(c)
}

/// A route path the router accepts, or why not.
pub fn check_route_path(path: &str) -> Result<(), String> {
    if !path.is_empty() && !path.starts_with('/') {
        return Err("a route path must be empty or start with `/`".into());
    }
    if let Some(c) = path.chars().find(|&c| !path_char_ok(c)) {
        return Err(format!(
            "a route path may hold only ASCII lowercase letters, digits and `-_~/`, not {c:?}"
        ));
    }
    Ok(())
}

/// `Any`, or the method's name as clients write it.
pub fn method_text(method: Option<&Method>) -> String {
    match method {
        None => "any method".into(),
        Some(Method::Get) => "GET".into(),
        Some(Method::Head) => "HEAD".into(),
        Some(Method::Post) => "POST".into(),
        Some(Method::Put) => "PUT".into(),
        Some(Method::Delete) => "DELETE".into(),
        Some(Method::Connect) => "CONNECT".into(),
        Some(Method::Options) => "OPTIONS".into(),
        Some(Method::Trace) => "TRACE".into(),
        Some(Method::Patch) => "PATCH".into(),
        Some(Method::Extension(name)) => name.clone(),
    }
}

/// Validates the flattened handler names and raw routes.
pub(crate) fn build(
    handlers: Vec<String>,
    routes: Vec<(String, MethodOrAny, String)>,
) -> Result<(Vec<HttpHandlerInfo>, Vec<HttpRouteInfo>), ModuleDefError> {
    let mut infos: Vec<HttpHandlerInfo> = Vec::with_capacity(handlers.len());
    for name in handlers {
        if infos.iter().any(|h| h.source_name == name) {
            return Err(ModuleDefError::HttpHandler {
                handler: name,
                reason: "is declared twice".into(),
            });
        }
        infos.push(HttpHandlerInfo { source_name: name });
    }
    let mut out: Vec<HttpRouteInfo> = Vec::with_capacity(routes.len());
    for (handler_name, method, path) in routes {
        let method = match method {
            MethodOrAny::Any => None,
            MethodOrAny::Method(m) => Some(m),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(ModuleDefError::UnknownVariant {
                    what: "HTTP route method",
                })
            }
        };
        let route_error = |reason: String| ModuleDefError::HttpRoute {
            method: method_text(method.as_ref()),
            path: path.clone(),
            reason,
        };
        check_route_path(&path).map_err(route_error)?;
        let Some(handler) = infos.iter().position(|h| h.source_name == handler_name) else {
            return Err(route_error(format!(
                "names the handler `{handler_name}`, which the module does not declare"
            )));
        };
        if let Some(other) = out.iter().find(|r| {
            r.path == path && (r.method.is_none() || method.is_none() || r.method == method)
        }) {
            return Err(route_error(format!(
                "overlaps the route {} `{}` to `{}`",
                method_text(other.method.as_ref()),
                other.path,
                infos[other.handler].source_name
            )));
        }
        out.push(HttpRouteInfo {
            handler,
            method,
            path,
        });
    }
    Ok((infos, out))
}

impl ModuleDef {
    /// The handler for a request with `method` to exactly `path` below the
    /// route prefix (`""` for the prefix itself, `"/"` for the prefix with a
    /// trailing slash), if a route matches.
    pub fn http_route(&self, method: &Method, path: &str) -> Option<usize> {
        self.http_routes
            .iter()
            .find(|r| r.path == path && r.method.as_ref().is_none_or(|m| m == method))
            .map(|r| r.handler)
    }
}
