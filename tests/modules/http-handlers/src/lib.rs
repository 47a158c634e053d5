//! Test module `http-handlers` (issue 13 items 1 and 3): a router of HTTP
//! handlers (root routes with and without the trailing slash, exact
//! non-root paths, a nested router, several methods and "any"), handlers
//! that write with `with_tx`, echo what they received, answer their own
//! status and headers, trap, spin, and queue reducer calls with
//! `volatile_nonatomic_schedule_immediate`; and reducers that queue calls.

use spacetimedb::http::{Body, HandlerContext, Request, Response, Router};
use spacetimedb::{reducer, table, Identity, ReducerContext, Table};

/// Rows written by the handlers.
#[table(accessor = item, public)]
pub struct Item {
    #[primary_key]
    #[auto_inc]
    id: u64,
    value: String,
}

/// One row per run of `note`, in run order (`id`), with its sender.
#[table(accessor = ran, public)]
pub struct Ran {
    #[primary_key]
    #[auto_inc]
    id: u64,
    label: String,
    sender: Identity,
}

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from_bytes(body.into()))
        .expect("a valid response")
}

fn ok(body: impl Into<String>) -> Response {
    text(200, body)
}

// ------------------------------------------------------------ routing

#[spacetimedb::http::handler]
fn root_empty(_ctx: &mut HandlerContext, _req: Request) -> Response {
    ok("empty")
}

#[spacetimedb::http::handler]
fn root_slash(_ctx: &mut HandlerContext, _req: Request) -> Response {
    ok("slash")
}

#[spacetimedb::http::handler]
fn foo(_ctx: &mut HandlerContext, _req: Request) -> Response {
    ok("foo")
}

#[spacetimedb::http::handler]
fn foo_slash(_ctx: &mut HandlerContext, _req: Request) -> Response {
    ok("foo-slash")
}

#[spacetimedb::http::handler]
fn foo_post(_ctx: &mut HandlerContext, _req: Request) -> Response {
    ok("foo-post")
}

#[spacetimedb::http::handler]
fn any_method(_ctx: &mut HandlerContext, req: Request) -> Response {
    ok(format!("any {}", req.method()))
}

// ------------------------------------------------------------ data

/// Inserts an item holding the body (UTF-8) in its own transaction and
/// answers 201 with the new id.
#[spacetimedb::http::handler]
fn add_item(ctx: &mut HandlerContext, req: Request) -> Response {
    let value = match req.into_body().into_string() {
        Ok(value) => value,
        Err(_) => return text(400, "the body must be UTF-8"),
    };
    let id = ctx.with_tx(|tx| {
        tx.db
            .item()
            .insert(Item {
                id: 0,
                value: value.clone(),
            })
            .id
    });
    text(201, id.to_string())
}

#[spacetimedb::http::handler]
fn count_items(ctx: &mut HandlerContext, _req: Request) -> Response {
    let count = ctx.with_tx(|tx| tx.db.item().iter().count());
    ok(count.to_string())
}

/// Writes an item in a transaction that commits, then traps: the item stays.
#[spacetimedb::http::handler]
fn write_then_trap(ctx: &mut HandlerContext, _req: Request) -> Response {
    ctx.with_tx(|tx| {
        tx.db.item().insert(Item {
            id: 0,
            value: "before-trap".into(),
        });
    });
    panic!("deliberate handler panic: internal detail 7f3a");
}

// ------------------------------------------------------------ what arrives

/// Echoes method, URI, version, the `x-echo` header (all values) and body.
#[spacetimedb::http::handler]
fn echo(_ctx: &mut HandlerContext, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let echoed: Vec<String> = parts
        .headers
        .get_all("x-echo")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let body = body.into_bytes();
    let text_body = format!(
        "method={}\nuri={}\nversion={:?}\nx-echo={}\nbody-len={}\nbody={}",
        parts.method,
        parts.uri,
        parts.version,
        echoed.join("|"),
        body.len(),
        String::from_utf8_lossy(&body)
    );
    Response::builder()
        .status(200)
        .header("x-handler", "echo")
        .header("x-multi", "one")
        .header("x-multi", "two")
        .body(Body::from_bytes(text_body))
        .expect("a valid response")
}

/// Answers the request body reversed, byte for byte.
#[spacetimedb::http::handler]
fn reverse(_ctx: &mut HandlerContext, req: Request) -> Response {
    let mut bytes = req.into_body().into_bytes().to_vec();
    bytes.reverse();
    Response::new(Body::from_bytes(bytes))
}

#[spacetimedb::http::handler]
fn teapot(_ctx: &mut HandlerContext, _req: Request) -> Response {
    text(418, "teapot")
}

// ------------------------------------------------------------ failures

#[spacetimedb::http::handler]
fn trap(_ctx: &mut HandlerContext, _req: Request) -> Response {
    panic!("deliberate handler panic: internal detail 7f3a");
}

#[spacetimedb::http::handler]
fn spin(_ctx: &mut HandlerContext, _req: Request) -> Response {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
        if n == u64::MAX {
            break;
        }
    }
    ok("unreachable")
}

// ------------------------------------------------------------ schedule_immediate

/// Queues `note("from-handler")` and answers at once.
#[spacetimedb::http::handler]
fn schedule(_ctx: &mut HandlerContext, _req: Request) -> Response {
    spacetimedb::volatile_nonatomic_schedule_immediate!(note("from-handler".to_string()));
    ok("scheduled")
}

#[spacetimedb::http::router]
fn router() -> Router {
    Router::new()
        .nest(
            "/api",
            Router::new()
                .post("/items", add_item)
                .get("/items/count", count_items),
        )
        .get("", root_empty)
        .get("/", root_slash)
        .get("/foo", foo)
        .get("/foo/", foo_slash)
        .post("/foo", foo_post)
        .any("/any", any_method)
        .any("/echo", echo)
        .post("/reverse", reverse)
        .get("/teapot", teapot)
        .get("/trap", trap)
        .post("/write-then-trap", write_then_trap)
        .get("/spin", spin)
        .post("/schedule", schedule)
}

// ------------------------------------------------------------ reducers

/// Queues `note("from-init")`: calls queued by `init` run once the database
/// exists, like calls queued by any other reducer.
#[reducer(init)]
pub fn init(_ctx: &ReducerContext) {
    spacetimedb::volatile_nonatomic_schedule_immediate!(note("from-init".to_string()));
}

/// Records one run with its sender.
#[reducer]
pub fn note(ctx: &ReducerContext, label: String) {
    ctx.db.ran().insert(Ran {
        id: 0,
        label,
        sender: ctx.sender(),
    });
}

/// Queues `note(label)`, then records `kick:{label}` itself: the queued
/// run's row must come after this one.
#[reducer]
pub fn kick(ctx: &ReducerContext, label: String) {
    spacetimedb::volatile_nonatomic_schedule_immediate!(note(label.clone()));
    ctx.db.ran().insert(Ran {
        id: 0,
        label: format!("kick:{label}"),
        sender: ctx.sender(),
    });
}

/// Queues `note(label)`, writes a row and fails: the write rolls back, the
/// queued call still runs (it is not atomic with its caller).
#[reducer]
pub fn kick_then_fail(ctx: &ReducerContext, label: String) -> Result<(), String> {
    spacetimedb::volatile_nonatomic_schedule_immediate!(note(label.clone()));
    ctx.db.ran().insert(Ran {
        id: 0,
        label: format!("failed:{label}"),
        sender: ctx.sender(),
    });
    Err("kick_then_fail fails on purpose".into())
}

/// Queues a call of a function the module does not have, then `note(label)`.
#[reducer]
pub fn kick_unknown(_ctx: &ReducerContext, label: String) {
    spacetimedb::sys::volatile_nonatomic_schedule_immediate("no_such_reducer", &[]);
    spacetimedb::volatile_nonatomic_schedule_immediate!(note(label));
}
