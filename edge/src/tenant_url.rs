//! Tenant URLs: `http(s)://<database>.<domain>/…` reaches the database's
//! routes as `/v1/database/<database>/…` does.
//!
//! Owns: reading the tenant from the request's authority (the `Host`
//! header, or the URI's authority under HTTP/2) and rewriting the path
//! before routing. Paths that already start with `/v1/` pass unchanged, so
//! the path form the stock SDKs build (`<uri>/v1/database/<name>/subscribe`)
//! works on a tenant URL too.
//! Does not own: which databases exist (an unknown name answers like any
//! unknown database) or TLS.

use axum::extract::Request;
use axum::http::header::HOST;
use axum::http::uri::{PathAndQuery, Uri};

/// The database a request addressed by host name, if its host is a single
/// DNS label under `domain` (`chat.localhost:3000` under `localhost`).
pub fn tenant_of<'a>(authority: &'a str, domain: &str) -> Option<&'a str> {
    let host = strip_port(authority);
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    let valid = !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(label)
}

fn strip_port(authority: &str) -> &str {
    // IPv6 literals (`[::1]:3000`) are never tenant hosts; keep them whole.
    if authority.starts_with('[') {
        return authority;
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Rewrites a request to a tenant host onto the database's path form.
pub fn rewrite(mut request: Request, domain: &str) -> Request {
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    let Some(authority) = authority else {
        return request;
    };
    let Some(tenant) = tenant_of(&authority, domain) else {
        return request;
    };
    let path = request.uri().path();
    if path.starts_with("/v1/") {
        return request;
    }
    let suffix = if path == "/" { "" } else { path };
    let mut rewritten = format!("/v1/database/{tenant}{suffix}");
    if let Some(query) = request.uri().query() {
        rewritten.push('?');
        rewritten.push_str(query);
    }
    let Ok(path_and_query) = rewritten.parse::<PathAndQuery>() else {
        return request;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_label_under_the_domain_is_a_tenant() {
        assert_eq!(tenant_of("chat.localhost:3000", "localhost"), Some("chat"));
        assert_eq!(tenant_of("chat.localhost", "localhost"), Some("chat"));
        assert_eq!(
            tenant_of("my-app.orrery.example:443", "orrery.example"),
            Some("my-app")
        );
    }

    #[test]
    fn other_hosts_are_not_tenants() {
        for host in [
            "localhost:3000",
            "127.0.0.1:3000",
            "a.b.localhost",
            "xlocalhost",
            ".localhost",
            "-x.localhost",
            "[::1]:3000",
            "chat.other.example",
        ] {
            assert_eq!(tenant_of(host, "localhost"), None, "{host}");
        }
    }

    #[test]
    fn paths_and_queries_are_kept() {
        let request = Request::builder()
            .uri("/call/send?x=1")
            .header(HOST, "chat.localhost:3000")
            .body(axum::body::Body::empty())
            .unwrap();
        let rewritten = rewrite(request, "localhost");
        assert_eq!(
            rewritten.uri().path_and_query().unwrap().as_str(),
            "/v1/database/chat/call/send?x=1"
        );
        let request = Request::builder()
            .uri("/v1/database/chat/subscribe")
            .header(HOST, "chat.localhost:3000")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(
            rewrite(request, "localhost").uri().path(),
            "/v1/database/chat/subscribe"
        );
        let request = Request::builder()
            .uri("/schema")
            .header(HOST, "localhost:3000")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(rewrite(request, "localhost").uri().path(), "/schema");
    }
}
