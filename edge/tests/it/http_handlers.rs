//! A module's HTTP handlers and `volatile_nonatomic_schedule_immediate`
//! over a real loopback socket, with the `http-handlers` test module
//! (issue 13 items 1 and 3): exact routing under
//! `/v1/database/{name}/route`, what a handler sees and answers, its
//! transactions reaching subscribers, failures answered with 5xx, the body
//! cap, the schema, and queued reducer calls running after their caller.

use std::time::Duration;

use orrery_api::limits::HTTP_HANDLER_REQUEST_BODY_BYTES_MAX;
use orrery_edge::route::NO_SUCH_ROUTE;
use spacetimedb_lib::{bsatn, Identity};

use crate::database_api::status_of_unsent_body;
use crate::ws::{string_args, wait_until, V2};
use crate::ws_views::{published, Client};

/// One reply: status, headers (name, value) and body bytes.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut request = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build()
        .request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.send_bytes(body) {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let names: std::collections::BTreeSet<String> = response.headers_names().into_iter().collect();
    let headers = names
        .into_iter()
        .flat_map(|name| {
            response
                .all(&name)
                .into_iter()
                .map(|v| (name.clone(), v.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

fn get(url: &str) -> Reply {
    send("GET", url, &[], b"")
}

// Protects the routing rules the reference host follows: the prefix itself,
// the prefix with a trailing slash and every path below it are distinct
// exact routes; an unmatched path, or a matched path with another method,
// is 404 with the reference's text; "any" routes take every method; the
// handler's own status, headers and body are the reply.
#[test]
fn routes_match_exactly_and_answer_what_the_handler_returns() {
    let (_dir, server, _owner) = published("web", "http-handlers");
    let base = format!("{}/v1/database/web/route", server.base);

    for (path, expected) in [
        ("", "empty"),
        ("/", "slash"),
        ("/foo", "foo"),
        ("/foo/", "foo-slash"),
    ] {
        let r = get(&format!("{base}{path}"));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, expected),
            "GET `{path}`"
        );
    }
    let r = send("POST", &format!("{base}/foo"), &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "foo-post"));

    // Strict: no normalisation of slashes, case or encoding; method mismatches too.
    for (method, path) in [
        ("GET", "//"),
        ("GET", "//foo"),
        ("GET", "/foo//"),
        ("GET", "/missing"),
        ("GET", "/foo/bar"),
        ("GET", "/FOO"),
        ("GET", "/f%6fo"),
        ("GET", "/api"),
        ("DELETE", "/foo"),
        ("GET", "/reverse"),
        ("POST", ""),
    ] {
        let r = send(method, &format!("{base}{path}"), &[], b"");
        assert_eq!(r.status, 404, "{method} `{path}`: {}", r.text());
        assert_eq!(r.text(), NO_SUCH_ROUTE, "{method} `{path}`");
    }

    for method in ["GET", "PUT", "DELETE", "PATCH", "PURGE", "OPTIONS"] {
        let r = send(method, &format!("{base}/any"), &[], b"");
        assert_eq!(r.status, 200, "{method} /any");
        assert_eq!(r.text(), format!("any {method}"));
    }
    // A browser's preflight is answered by the server's CORS, not the module.
    let r = send(
        "OPTIONS",
        &format!("{base}/any"),
        &[
            ("Origin", "http://app.example"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "");
    assert_eq!(r.header("access-control-allow-origin"), ["*"]);

    let r = get(&format!("{base}/teapot"));
    assert_eq!((r.status, r.text().as_str()), (418, "teapot"));
    assert_eq!(r.header("content-type"), ["text/plain; charset=utf-8"]);

    // Routes take no credentials and mint none: a token that is no JWT is
    // the module's business.
    let r = send(
        "GET",
        &format!("{base}/foo"),
        &[("Authorization", "Bearer not-a-jwt")],
        b"",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "foo"));
    assert!(r.header("spacetime-identity").is_empty());

    // An unknown database is the usual 404, not the module's.
    let r = get(&format!("{}/v1/database/nobody/route/foo", server.base));
    assert_eq!(r.status, 404);
    assert_ne!(r.text(), NO_SUCH_ROUTE);

    // The database's identity addresses the same routes as its name.
    let identity = database_identity(&server, "web").to_hex().to_string();
    let r = get(&format!(
        "{}/v1/database/{identity}/route/foo/",
        server.base
    ));
    assert_eq!((r.status, r.text().as_str()), (200, "foo-slash"));
}

// Protects what a handler sees: the method, the full external URI (scheme
// and host as the client sent them, path and query), the headers and the
// raw body bytes; and that its response headers arrive, repeated ones too.
#[test]
fn handlers_see_the_request_as_sent() {
    let (_dir, server, _owner) = published("echo", "http-handlers");
    let url = format!("{}/v1/database/echo/route/echo?alpha=beta&x=1", server.base);

    let r = send("POST", &url, &[("x-echo", "hi there")], b"hello body");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for line in [
        "method=POST".to_owned(),
        format!("uri={url}"),
        "version=HTTP/1.1".to_owned(),
        "x-echo=hi there".to_owned(),
        "body-len=10".to_owned(),
        "body=hello body".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert_eq!(r.header("x-handler"), ["echo"]);
    assert_eq!(r.header("x-multi"), ["one", "two"]);

    // Behind a proxy: the forwarded scheme and host are the client's.
    let r = send(
        "GET",
        &url,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example.test"),
        ],
        b"",
    );
    let expected = "uri=https://api.example.test/v1/database/echo/route/echo?alpha=beta&x=1";
    assert!(r.text().lines().any(|l| l == expected), "{}", r.text());
    assert!(r.text().lines().any(|l| l == "body-len=0"), "{}", r.text());

    // Bodies are bytes, not text.
    let r = send(
        "POST",
        &format!("{}/v1/database/echo/route/reverse", server.base),
        &[],
        &[0xff, 0x00, 0xfe, 0x7f],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, [0x7f, 0xfe, 0x00, 0xff]);
}

/// An `item` row: (id, value).
fn item(row: &[u8]) -> (u64, String) {
    bsatn::from_slice(row).unwrap()
}

fn database_identity(server: &crate::database_api::Server, name: &str) -> Identity {
    server
        .registry
        .resolve(name)
        .unwrap()
        .expect("published")
        .database()
        .module()
        .options()
        .database_identity
}

// Protects the handler's transaction semantics: `with_tx` commits its own
// transaction, which reaches WebSocket subscribers like a reducer's; a
// handler that traps after committing keeps that commit and is answered
// with a 5xx.
#[test]
fn handler_transactions_commit_and_reach_subscribers() {
    let (_dir, server, _owner) = published("items", "http-handlers");
    let base = format!("{}/v1/database/items/route", server.base);
    let mut watcher = Client::open(&server.base, "items", V2);
    assert!(watcher
        .subscribe(1, "SELECT * FROM item")
        .unwrap()
        .is_empty());

    let r = send("POST", &format!("{base}/api/items"), &[], b"first");
    assert_eq!((r.status, r.text().as_str()), (201, "1"), "{}", r.text());
    // The update was queued at commit, before the reply: the next one-off
    // query's answer comes after it.
    watcher.query("SELECT * FROM item").unwrap();
    let held: Vec<_> = watcher.held[&1].iter().map(|r| item(r)).collect();
    assert_eq!(held, [(1, "first".to_owned())]);
    assert_eq!(get(&format!("{base}/api/items/count")).text(), "1");

    let r = send("POST", &format!("{base}/write-then-trap"), &[], b"");
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    watcher.query("SELECT * FROM item").unwrap();
    let mut values: Vec<_> = watcher.held[&1].iter().map(|r| item(r).1).collect();
    values.sort();
    assert_eq!(values, ["before-trap", "first"]);
    assert_eq!(get(&format!("{base}/api/items/count")).text(), "2");

    // A body that is not UTF-8 is the handler's own 400; nothing is written.
    let r = send("POST", &format!("{base}/api/items"), &[], &[0xff, 0xfe]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "the body must be UTF-8")
    );
    assert_eq!(get(&format!("{base}/api/items/count")).text(), "2");
}

fn logs(base: &str, token: &str, db: &str) -> String {
    let r = send(
        "GET",
        &format!("{base}/v1/database/{db}/logs?num_lines=1000"),
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

// Protects the caller from a handler's failures: a trap is a 5xx that says
// what happened without the panic text (which goes to the module's log), a
// spinning handler is stopped by its budget and answered with a 5xx, and
// the database serves the next request.
#[test]
fn failing_handlers_are_answered_with_5xx_and_the_database_keeps_serving() {
    let (_dir, server, owner) = published("failing", "http-handlers");
    let base = format!("{}/v1/database/failing/route", server.base);

    let r = get(&format!("{base}/trap"));
    assert_eq!(r.status, 530, "{}", r.text());
    assert_eq!(r.header("x-orrery-error"), ["module_failed"]);
    assert!(r.text().contains("HTTP handler failed"), "{}", r.text());
    assert!(
        !r.text().contains("7f3a"),
        "the panic text leaked: {}",
        r.text()
    );
    let log = logs(&server.base, &owner, "failing");
    assert!(
        log.contains("deliberate handler panic: internal detail 7f3a"),
        "{log}"
    );

    let r = get(&format!("{base}/spin"));
    assert_eq!(r.status, 530, "{}", r.text());
    let code = r.header("x-orrery-error").join(",");
    assert!(
        code == "module_failed" || code == "call_timeout",
        "{code}: {}",
        r.text()
    );
    assert!(r.text().contains("was stopped"), "{}", r.text());

    let r = get(&format!("{base}/foo"));
    assert_eq!((r.status, r.text().as_str()), (200, "foo"));

    // `/metrics` counts handler calls by outcome, apart from reducers.
    let id = database_identity(&server, "failing").to_hex().to_string();
    let (_, text) = crate::metrics::scrape(&server.base);
    let calls = |outcome: &str| {
        crate::metrics::value(
            &text,
            &format!("orrery_http_handler_calls_total{{database=\"{id}\",outcome=\"{outcome}\"}}"),
        )
        .unwrap_or_else(|| panic!("no {outcome} series: {text}"))
    };
    assert_eq!(calls("trapped"), 1.0, "{text}");
    assert_eq!(calls("timeout") + calls("out_of_fuel"), 1.0, "{text}");
    assert_eq!(calls("returned"), 1.0, "{text}");
}

// Protects the host's memory: a handler's request body over
// HTTP_HANDLER_REQUEST_BODY_BYTES_MAX is refused with 413 before it is read.
#[test]
fn handler_bodies_over_the_cap_are_refused_before_they_are_read() {
    let (_dir, server, _owner) = published("bodies", "http-handlers");
    let path = "/v1/database/bodies/route/reverse";
    assert_eq!(
        status_of_unsent_body(
            &server.base,
            "POST",
            path,
            HTTP_HANDLER_REQUEST_BODY_BYTES_MAX + 1
        ),
        "413"
    );
    // Canary: the same route with a small body is served.
    let r = send("POST", &format!("{}{path}", server.base), &[], b"ab");
    assert_eq!((r.status, r.body.as_slice()), (200, b"ba".as_slice()));
}

// Protects the schema route: the V10 definition lists the handlers and the
// routes with their methods and paths.
#[test]
fn the_schema_lists_handlers_and_routes() {
    let (_dir, server, _owner) = published("schema", "http-handlers");
    let r = get(&format!(
        "{}/v1/database/schema/schema?version=10",
        server.base
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let schema: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let sections = schema["sections"].as_array().expect("sections");
    let section = |name: &str| {
        sections
            .iter()
            .find_map(|s| s.get(name))
            .unwrap_or_else(|| panic!("no {name} section in {schema}"))
            .as_array()
            .unwrap()
            .clone()
    };
    let handlers: Vec<String> = section("HttpHandlers")
        .iter()
        .map(|h| h["source_name"].as_str().unwrap().to_owned())
        .collect();
    assert!(handlers.iter().any(|h| h == "add_item"), "{handlers:?}");
    assert!(handlers.iter().any(|h| h == "root_empty"), "{handlers:?}");
    let routes = section("HttpRoutes");
    let nested = routes
        .iter()
        .find(|r| r["path"] == "/api/items")
        .unwrap_or_else(|| panic!("no /api/items route in {routes:?}"));
    assert_eq!(nested["handler_function"], "add_item");
    assert!(nested["method"].to_string().contains("Post"), "{nested}");
    assert!(routes.iter().any(|r| r["path"] == ""), "{routes:?}");
}

/// A `ran` row: (id, label, sender).
fn ran(row: &[u8]) -> (u64, String, Identity) {
    bsatn::from_slice(row).unwrap()
}

fn ran_rows(client: &mut Client) -> Vec<(u64, String, Identity)> {
    let mut rows: Vec<_> = client
        .query("SELECT * FROM ran")
        .unwrap()
        .iter()
        .map(|r| ran(r))
        .collect();
    rows.sort();
    rows
}

fn await_label(client: &mut Client, label: &str) -> (u64, String, Identity) {
    let mut found = None;
    wait_until(&format!("a `ran` row labelled {label}"), || {
        found = ran_rows(client).into_iter().find(|r| r.1 == label);
        found.is_some()
    });
    found.unwrap()
}

// Protects volatile_nonatomic_schedule_immediate: the queued reducer runs
// after the call that queued it, as its own transaction, with the database
// identity as sender; it runs even when the caller fails (not atomic with
// it); an unknown name is logged and does not stop the calls after it; a
// handler and `init` can queue calls too.
#[test]
fn schedule_immediate_runs_after_its_caller_whatever_the_caller_did() {
    let (_dir, server, owner_token) = published("sched", "http-handlers");
    let database = database_identity(&server, "sched");
    let mut owner = Client::open_as(&server.base, "sched", V2, Some(&owner_token));
    // The call `init` queued ran once the database was created.
    let from_init = await_label(&mut owner, "from-init");
    assert_eq!(
        from_init.2, database,
        "init's queued call runs as the database"
    );
    // Canary: nothing else has run yet.
    assert_eq!(ran_rows(&mut owner).len(), 1);

    assert!(owner.call("kick", string_args("a")));
    let queued = await_label(&mut owner, "a");
    let rows = ran_rows(&mut owner);
    let caller = rows
        .iter()
        .find(|r| r.1 == "kick:a")
        .expect("kick's own row");
    assert_eq!(caller.2, owner.identity, "kick runs as its caller");
    assert!(
        queued.0 > caller.0,
        "the queued call ran after its caller committed: {rows:?}"
    );
    assert_eq!(queued.2, database, "the queued call runs as the database");

    // The caller fails and rolls back; the queued call still runs.
    assert!(!owner.call("kick_then_fail", string_args("b")));
    let queued = await_label(&mut owner, "b");
    assert_eq!(queued.2, database);
    assert!(
        !ran_rows(&mut owner).iter().any(|r| r.1 == "failed:b"),
        "the failing caller's own write rolled back"
    );

    // An unknown name is logged; the next queued call runs.
    assert!(owner.call("kick_unknown", string_args("c")));
    await_label(&mut owner, "c");
    let log = logs(&server.base, &owner_token, "sched");
    assert!(log.contains("no_such_reducer"), "{log}");

    // From an HTTP handler.
    let r = send(
        "POST",
        &format!("{}/v1/database/sched/route/schedule", server.base),
        &[],
        b"",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "scheduled"));
    let queued = await_label(&mut owner, "from-handler");
    assert_eq!(queued.2, database);
}

// Protects tenant URLs (issue 14 item 7): `<name>.<domain>` reaches the
// database's routes (stock routes and the module's own) as the path form
// does; the path form still works on a tenant host, and other hosts are
// not rewritten.
#[test]
fn a_tenant_host_reaches_the_database_as_the_path_form_does() {
    let (_dir, server, owner) = published("web", "http-handlers");
    let auth = format!("Bearer {owner}");
    let tenant = [("Host", "web.localhost")];

    let by_path = get(&format!(
        "{}/v1/database/web/schema?version=10",
        server.base
    ));
    let by_host = send(
        "GET",
        &format!("{}/schema?version=10", server.base),
        &tenant,
        b"",
    );
    assert_eq!(by_path.status, 200, "{}", by_path.text());
    assert_eq!((by_host.status, by_host.text()), (200, by_path.text()));

    let r = send("GET", &format!("{}/route/foo", server.base), &tenant, b"");
    assert_eq!((r.status, r.text().as_str()), (200, "foo"));
    let r = send(
        "GET",
        &format!("{}/route/foo", server.base),
        &[("Host", "web.localhost:3000")],
        b"",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "foo"), "with a port");

    let r = send(
        "POST",
        &format!("{}/sql", server.base),
        &[("Host", "web.localhost"), ("Authorization", &auth)],
        b"SELECT * FROM item",
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // The SDKs' path form on a tenant host, and a host that is no tenant.
    let r = send(
        "GET",
        &format!("{}/v1/database/web/route/foo", server.base),
        &tenant,
        b"",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "foo"));
    let r = send(
        "GET",
        &format!("{}/route/foo", server.base),
        &[("Host", "localhost")],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = send(
        "GET",
        &format!("{}/route/foo", server.base),
        &[("Host", "nope.localhost")],
        b"",
    );
    assert_eq!(r.status, 404, "an unknown tenant: {}", r.text());
}
