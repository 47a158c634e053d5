//! Outbound HTTP of procedures (module-abi §3.4 `procedure_http_request`,
//! §7.7): the egress policy and the blocking request itself.
//!
//! Owns: [`HttpPolicy`] (on/off, private destinations, size and time caps),
//! [`is_public`] (which addresses count as public), the resolver that checks
//! every resolved address before anything connects, and [`perform`].
//! Does not own: reading the request from guest memory or handing the
//! response back as bytes sources (`orrery_module::host::procedure`), or the
//! procedure's wall-clock cap (`orrery_module::instance`).
//!
//! Policy: by default only public unicast destinations are reachable. The
//! host name is resolved by our resolver, which drops every non-public
//! address; the client connects only to the addresses it returned, so a
//! name cannot be re-resolved to a private address between check and
//! connect. Redirects are not followed: the 3xx response goes back to the
//! module, which may follow it with a new (checked) request. Error messages
//! never contain the query string of the URL.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use orrery_api::limits;
use spacetimedb_lib::http::{Headers, Method, Request, Response, Version};

/// What outbound HTTP a database's procedures may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Whether procedures may make HTTP requests at all.
    pub enabled: bool,
    /// Whether loopback, private, link-local and other non-public
    /// destinations are allowed (tests, single-tenant installations).
    pub allow_private: bool,
    /// Largest request: URI, header names and values, and body.
    pub max_request_bytes: usize,
    /// Largest response body; a longer one is an error, not a truncation.
    pub max_response_bytes: usize,
    /// Longest one request may take, connect to last body byte. The
    /// procedure's own deadline and the request's `timeout` can shorten it.
    pub timeout: Duration,
}

impl Default for HttpPolicy {
    fn default() -> HttpPolicy {
        HttpPolicy {
            enabled: true,
            allow_private: false,
            max_request_bytes: limits::PROCEDURE_HTTP_REQUEST_BYTES_MAX,
            max_response_bytes: limits::PROCEDURE_HTTP_RESPONSE_BYTES_MAX,
            timeout: Duration::from_millis(limits::PROCEDURE_HTTP_TIMEOUT_MS_MAX),
        }
    }
}

/// Whether `ip` is a public unicast address: not unspecified, loopback,
/// private (10/8, 172.16/12, 192.168/16), CGNAT (100.64/10), link-local,
/// multicast, broadcast, documentation or otherwise reserved, nor an IPv6
/// unique-local (fc00::/7) or link-local (fe80::/10) address, nor an
/// IPv4-mapped or IPv4-compatible form of a non-public IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240; // reserved 240/4 and broadcast
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // Deprecated IPv4-compatible addresses ::a.b.c.d (not :: and ::1).
    if segments[..6].iter().all(|&s| s == 0) {
        return !ip.is_unspecified()
            && !ip.is_loopback()
            && is_public_v4(Ipv4Addr::from(
                (u32::from(segments[6]) << 16) | u32::from(segments[7]),
            ));
    }
    let first = segments[0];
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (first == 0x2001 && segments[1] == 0x0db8) // documentation
        || (first == 0x0064 && segments[1] == 0xff9b) // NAT64 64:ff9b::/96 and /48
        || first == 0x2002 // 6to4 embeds an arbitrary IPv4 address
        || (first == 0x2001 && segments[1] == 0); // Teredo
    !reserved
}

/// Resolves host names and keeps only the addresses the policy allows.
struct CheckedResolver {
    allow_private: bool,
}

impl ureq::Resolver for CheckedResolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let resolved: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        if self.allow_private {
            return Ok(resolved);
        }
        let (allowed, blocked): (Vec<SocketAddr>, Vec<SocketAddr>) =
            resolved.into_iter().partition(|addr| is_public(addr.ip()));
        if allowed.is_empty() && !blocked.is_empty() {
            let list: Vec<String> = blocked.iter().map(|a| a.ip().to_string()).collect();
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "blocked by the egress policy: {netloc} resolves only to non-public addresses ({})",
                    list.join(", ")
                ),
            ));
        }
        Ok(allowed)
    }
}

/// The URI without its query string and fragment, for error messages.
fn without_query(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Extension(name) => name,
    }
}

fn version_of(text: &str) -> Version {
    match text {
        "HTTP/0.9" => Version::Http09,
        "HTTP/1.0" => Version::Http10,
        "HTTP/2" | "HTTP/2.0" => Version::Http2,
        "HTTP/3" | "HTTP/3.0" => Version::Http3,
        _ => Version::Http11,
    }
}

/// A response header as the module's `Headers` type takes it: (name, value).
type HeaderPair = (Option<Box<str>>, Box<[u8]>);

/// Performs `request` with `body` under `policy`, taking at most
/// `remaining` (what is left of the procedure's wall-clock cap). Returns
/// the response metadata and body, or the error message the module gets
/// (module-abi §3.4: any HTTP status is a response; only transport
/// failures, policy refusals and cap violations are errors).
pub(crate) fn perform(
    policy: &HttpPolicy,
    remaining: Duration,
    request: Request,
    body: &[u8],
) -> Result<(Response, Vec<u8>), String> {
    let method = method_name(&request.method).to_owned();
    let shown_uri = without_query(&request.uri).to_owned();
    let fail = |what: &str| format!("{method} {shown_uri}: {what}");
    if !policy.enabled {
        return Err(fail("outgoing HTTP is disabled for this database"));
    }
    let size = request.size_in_bytes() + body.len();
    if size > policy.max_request_bytes {
        return Err(fail(&format!(
            "the request is {size} bytes, over the limit of {} bytes",
            policy.max_request_bytes
        )));
    }
    let scheme_ok = request.uri.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
    });
    if !scheme_ok {
        return Err(fail("only http:// and https:// URLs are allowed"));
    }
    let mut timeout = policy.timeout.min(remaining);
    if let Some(asked) = request.timeout {
        timeout = timeout.min(asked.to_duration_saturating());
    }
    if timeout.is_zero() {
        return Err(fail("no time is left for the request"));
    }

    let agent = ureq::AgentBuilder::new()
        .resolver(CheckedResolver {
            allow_private: policy.allow_private,
        })
        .redirects(0)
        // A proxy would resolve the name itself, past our resolver.
        .try_proxy_from_env(false)
        .timeout(timeout)
        .max_idle_connections(0)
        .user_agent("orrery-procedure/1")
        .build();
    let mut outgoing = agent.request(&method, &request.uri);
    for (name, value) in request.headers.into_iter() {
        let Ok(value) = std::str::from_utf8(&value) else {
            return Err(fail(&format!("the value of header `{name}` is not UTF-8")));
        };
        outgoing = outgoing.set(&name, value);
    }
    let result = if body.is_empty() {
        outgoing.call()
    } else {
        outgoing.send_bytes(body)
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => {
            let mut text = transport.kind().to_string();
            if let Some(message) = transport.message() {
                text.push_str(": ");
                text.push_str(message);
            }
            let mut source = std::error::Error::source(&transport);
            while let Some(error) = source {
                text.push_str(": ");
                text.push_str(&error.to_string());
                source = error.source();
            }
            // The client quotes the URL it was given in some messages.
            let text = text.replace(&request.uri, &shown_uri);
            return Err(fail(&text));
        }
    };

    let code = response.status();
    let version = version_of(response.http_version());
    let mut header_pairs: Vec<HeaderPair> = Vec::new();
    for name in response.headers_names() {
        for value in response.all(&name) {
            header_pairs.push((Some(name.as_str().into()), value.as_bytes().into()));
        }
    }
    let headers: Headers = header_pairs.into_iter().collect();
    let limit = policy.max_response_bytes;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&format!("reading the response body: {e}")))?;
    if bytes.len() > limit {
        return Err(fail(&format!(
            "the response body exceeds the limit of {limit} bytes"
        )));
    }
    Ok((
        Response {
            headers,
            version,
            code,
        },
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_recognised() {
        for blocked in [
            "0.0.0.0",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = blocked.parse().unwrap();
            assert!(!is_public(ip), "{blocked} counted as public");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} counted as non-public");
        }
    }

    #[test]
    fn the_resolver_refuses_loopback_names_unless_allowed() {
        let strict = CheckedResolver {
            allow_private: false,
        };
        let error = ureq::Resolver::resolve(&strict, "127.0.0.1:80").unwrap_err();
        assert!(error.to_string().contains("egress policy"), "{error}");
        let error = ureq::Resolver::resolve(&strict, "localhost:80").unwrap_err();
        assert!(error.to_string().contains("egress policy"), "{error}");
        let open = CheckedResolver {
            allow_private: true,
        };
        let addrs = ureq::Resolver::resolve(&open, "127.0.0.1:80").unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:80".parse().unwrap()]);
    }

    #[test]
    fn error_messages_drop_the_query_string() {
        assert_eq!(
            without_query("https://x.test/a?token=secret#f"),
            "https://x.test/a"
        );
    }
}
