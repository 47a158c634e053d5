//! `GET /metrics` over a real loopback socket: a published database's
//! reducer calls, commit-log fsyncs and client counters show up labelled by
//! its identity, and a restart reports its recovery time.

use std::time::Duration;

use crate::database_api::{keys, mint, server};
use crate::modules::module_bytes;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// Publishes the chat module as `name` with `token`; returns its identity.
fn publish_chat(base: &str, token: &str, name: &str) -> String {
    let r = agent()
        .put(&format!("{base}/v1/database/{name}?host_type=Wasm"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_bytes(&module_bytes("chat"))
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    json["Success"]["database_identity"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn call(base: &str, token: &str, name: &str, reducer: &str, args: &str) -> u16 {
    match agent()
        .post(&format!("{base}/v1/database/{name}/call/{reducer}"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(args)
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(e) => panic!("call failed: {e}"),
    }
}

/// Content type and body of a scrape.
pub(crate) fn scrape(base: &str) -> (String, String) {
    let r = agent().get(&format!("{base}/metrics")).call().unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.header("content-type").unwrap_or_default().to_owned();
    (content_type, r.into_string().unwrap())
}

/// The value of the sample `series` (name and labels, exactly as rendered).
pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(rest.parse().unwrap())
    })
}

#[test]
fn metrics_report_calls_fsyncs_and_recovery_by_database() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let s = server(dir.path(), keys(dir.path()));
        let token = mint(&s.base);
        id = publish_chat(&s.base, &token, "chat-metrics");
        assert_eq!(
            call(&s.base, &token, "chat-metrics", "set_name", r#"["x"]"#),
            200
        );
        // A reducer call answers after commit; wait for the group commit too.
        s.registry.flush_all().unwrap();

        let (content_type, text) = scrape(&s.base);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let db = format!("database=\"{id}\"");
        let committed = value(
            &text,
            &format!("orrery_reducer_calls_total{{{db},outcome=\"committed\"}}"),
        );
        assert!(committed.unwrap() >= 1.0, "{text}");
        // Every outcome is reported, zero or not.
        let failed = value(
            &text,
            &format!("orrery_reducer_calls_total{{{db},outcome=\"failed\"}}"),
        );
        assert_eq!(failed, Some(0.0), "{text}");
        let fsyncs = value(
            &text,
            &format!("orrery_commitlog_fsync_seconds_count{{{db}}}"),
        );
        assert!(fsyncs.unwrap() > 0.0, "{text}");
        let inf = value(
            &text,
            &format!("orrery_commitlog_fsync_seconds_bucket{{{db},le=\"+Inf\"}}"),
        );
        assert_eq!(inf, fsyncs);
        assert!(
            value(
                &text,
                &format!("orrery_reducer_duration_seconds_count{{{db},outcome=\"committed\"}}")
            )
            .unwrap()
                >= 1.0
        );
        assert!(value(&text, &format!("orrery_fuel_used_total{{{db}}}")).unwrap() > 0.0);
        assert_eq!(
            value(&text, &format!("orrery_connections{{{db}}}")),
            Some(0.0)
        );
        assert_eq!(value(&text, "orrery_databases"), Some(1.0));
        // Created in this process: no recovery time.
        assert!(!text.contains("orrery_recovery_seconds{"), "{text}");
        // Every family is declared once, before its samples.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| text.contains(&format!("# TYPE {f} histogram")))
                .unwrap_or(name);
            assert_eq!(
                text.matches(&format!("# TYPE {family} ")).count(),
                1,
                "{family}"
            );
        }
    }
    let reopening = std::time::Instant::now();
    let s = server(dir.path(), keys(dir.path()));
    let reopen = reopening.elapsed().as_secs_f64();
    let (_, text) = scrape(&s.base);
    let recovery = value(
        &text,
        &format!("orrery_recovery_seconds{{database=\"{id}\"}}"),
    )
    .unwrap_or_else(|| panic!("no recovery time after a reopen: {text}"));
    // The measured recovery, within the time the reopen took.
    assert!(
        recovery > 0.0 && recovery <= reopen,
        "recovery {recovery} s, reopen {reopen} s"
    );
}
