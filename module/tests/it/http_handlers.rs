//! HTTP handler calls and `volatile_nonatomic_schedule_immediate` in the
//! runtime, with the `http-handlers` test module: a handler's response,
//! its deadline, and the calls reducers queue (whatever their outcome).

use std::time::{Duration, Instant};

use orrery_module::{CallOptions, HttpHandlerOutcome, ImmediateCall, ReducerOutcome};
use spacetimedb_lib::http::{Method, Request, Version};

use crate::harness::{call, enc, hosted, options, NOW};

fn request(method: Method, uri: &str) -> Request {
    Request {
        method,
        headers: [(Some("x-echo".into()), b"v".to_vec().into_boxed_slice())]
            .into_iter()
            .collect(),
        timeout: None,
        uri: uri.into(),
        version: Version::Http11,
    }
}

fn handler(module: &orrery_module::HostedModule, method: Method, path: &str) -> usize {
    module
        .def()
        .http_route(&method, path)
        .unwrap_or_else(|| panic!("no route {method:?} {path}"))
}

#[test]
fn a_handler_answers_with_its_response_and_body() {
    let (module, db) = hosted("http-handlers", options());
    let id = handler(&module, Method::Post, "/echo");
    let result = module.call_http_handler(
        &db,
        id,
        &request(Method::Post, "http://h.test/v1/database/x/route/echo?q=1"),
        b"payload",
        NOW,
    );
    let HttpHandlerOutcome::Responded(response) = result.outcome else {
        panic!("{:?} {:#?}", result.outcome, result.logs);
    };
    assert_eq!(response.code, 200);
    let body = String::from_utf8(response.body).unwrap();
    assert!(
        body.contains("uri=http://h.test/v1/database/x/route/echo?q=1"),
        "{body}"
    );
    assert!(body.contains("x-echo=v\n"), "{body}");
    assert!(body.ends_with("body=payload"), "{body}");
    assert!(response
        .headers
        .contains(&("x-handler".to_owned(), b"echo".to_vec())));
    // An empty body is the invalid source 0, which the guest reads as empty.
    let result = module.call_http_handler(&db, id, &request(Method::Get, "/e"), b"", NOW);
    let HttpHandlerOutcome::Responded(response) = result.outcome else {
        panic!("{:?}", result.outcome);
    };
    assert!(String::from_utf8(response.body)
        .unwrap()
        .contains("body-len=0"));
    assert!(matches!(
        module
            .call_http_handler(&db, 999, &request(Method::Get, "/"), b"", NOW)
            .outcome,
        HttpHandlerOutcome::NoSuchHandler { handler: 999 }
    ));
}

#[test]
fn a_spinning_handler_is_stopped_at_its_deadline() {
    let (module, db) = hosted(
        "http-handlers",
        CallOptions {
            http_handler_deadline: Duration::from_millis(300),
            fuel_per_call: u64::MAX / 4,
            ..options()
        },
    );
    let started = Instant::now();
    let spin = handler(&module, Method::Get, "/spin");
    let result = module.call_http_handler(&db, spin, &request(Method::Get, "/spin"), b"", NOW);
    assert_eq!(result.outcome, HttpHandlerOutcome::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A fresh instance serves the next request.
    let foo = handler(&module, Method::Get, "/foo");
    let result = module.call_http_handler(&db, foo, &request(Method::Get, "/foo"), b"", NOW);
    assert!(matches!(result.outcome, HttpHandlerOutcome::Responded(ref r) if r.body == b"foo"));
}

#[test]
fn reducers_hand_back_the_calls_they_queued_whatever_their_outcome() {
    let (module, db) = hosted("http-handlers", options());
    let note = |label: &str| ImmediateCall {
        function: "note".into(),
        args: enc(label),
    };
    let result = call(&module, &db, "kick", &enc("a"));
    assert!(result.outcome.is_committed(), "{:?}", result.outcome);
    assert_eq!(result.immediate, [note("a")]);

    let result = call(&module, &db, "kick_then_fail", &enc("b"));
    assert!(matches!(result.outcome, ReducerOutcome::Failed { .. }));
    assert_eq!(
        result.immediate,
        [note("b")],
        "queued calls survive a rollback"
    );

    let result = call(&module, &db, "kick_unknown", &enc("c"));
    let names: Vec<_> = result
        .immediate
        .iter()
        .map(|c| c.function.as_str())
        .collect();
    assert_eq!(names, ["no_such_reducer", "note"]);

    // Canary: a reducer that queues nothing hands back nothing.
    assert!(call(&module, &db, "note", &enc("d")).immediate.is_empty());
}
