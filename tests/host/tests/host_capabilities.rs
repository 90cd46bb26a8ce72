//! The test host against Spin's documented behaviour, driven through a real
//! spin-sdk 5.2 component (tests/echo-probe) under a fixture manifest.

mod common;

use common::{fixture, load};
use fake_replicate::FakeReplicate;
use serde_json::Value;

fn probe(upstream: &str) -> (tempfile::TempDir, cloudtuner_testhost::App) {
    load(fixture("probe.toml"), &[("upstream", upstream)])
}

fn header<'a>(body: &'a Value, name: &str) -> &'a str {
    body["headers"][name].as_str().unwrap_or("")
}

#[tokio::test]
async fn routes_by_spins_precedence_and_sets_spin_headers() {
    let (_d, app) = probe("http://127.0.0.1:9");
    // (path, raw route expected, path-info, component-route)
    let table = [
        ("/api/exact", "/api/exact", "", "/api/exact"),
        ("/api/exactly", "/api/...", "/exactly", "/api"),
        (
            "/api/jobs/j1/logs",
            "/api/jobs/:id/logs",
            "",
            "/api/jobs/:id/logs",
        ),
        (
            "/api/jobs/j1/logs/more",
            "/api/...",
            "/jobs/j1/logs/more",
            "/api",
        ),
        ("/api", "/api/...", "", "/api"),
        ("/api/", "/api/...", "/", "/api"),
        ("/other/thing/", "/...", "/other/thing/", ""),
        ("/", "/...", "/", ""),
    ];
    for (path, raw, info, comp_route) in table {
        let r = app.request("GET", &format!("{path}?a=1"), &[], "").await;
        assert_eq!(r.status, 200, "{path}");
        let body = r.json();
        assert_eq!(header(&body, "spin-raw-component-route"), raw, "{path}");
        assert_eq!(header(&body, "spin-matched-route"), raw, "{path}");
        assert_eq!(header(&body, "spin-path-info"), info, "{path}");
        assert_eq!(header(&body, "spin-component-route"), comp_route, "{path}");
        assert_eq!(header(&body, "spin-base-path"), "/", "{path}");
        assert_eq!(
            header(&body, "spin-full-url"),
            format!("http://127.0.0.1:8001{path}?a=1"),
            "{path}"
        );
        assert_eq!(header(&body, "spin-client-addr"), "127.0.0.1:50000");
    }
    let r = app.request("GET", "/api/jobs/abc-123/logs", &[], "").await;
    assert_eq!(header(&r.json(), "spin-path-match-id"), "abc-123");
    // The runtime's reserved routes answer before the app's.
    let r = app
        .request("GET", "/.well-known/spin/health", &[], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
}

#[tokio::test]
async fn every_request_gets_a_fresh_instance() {
    let (_d, app) = probe("http://127.0.0.1:9");
    for _ in 0..3 {
        let r = app.request("GET", "/x?instance_count", &[], "").await;
        assert_eq!(r.text(), "1");
    }
}

#[tokio::test]
async fn key_value_survives_requests_and_restarts_and_needs_a_grant() {
    let dir = tempfile::tempdir().unwrap();
    let config = cloudtuner_testhost::HostConfig::new(fixture("probe.toml"), dir.path())
        .variable("upstream", "http://127.0.0.1:9");
    let app = cloudtuner_testhost::App::load(&config).unwrap();
    assert_eq!(
        app.request("GET", "/x?kv_set=greeting&v=hola", &[], "")
            .await
            .status,
        200
    );
    let r = app.request("GET", "/x?kv_get=greeting", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hola"));
    assert_eq!(
        app.request("GET", "/x?kv_get=absent", &[], "").await.status,
        404
    );
    // Spin's schema, inspectable in the SQLite file.
    assert_eq!(
        app.kv().get("default", "greeting").unwrap(),
        Some(b"hola".to_vec())
    );
    drop(app);
    let app = cloudtuner_testhost::App::load(&config).unwrap();
    assert_eq!(
        app.request("GET", "/x?kv_get=greeting", &[], "")
            .await
            .text(),
        "hola"
    );
    // A component without `key_value_stores` is denied the store (the probe traps: 500).
    assert_eq!(
        app.request("GET", "/nokv?kv_get=greeting", &[], "")
            .await
            .status,
        500
    );
}

#[tokio::test]
async fn variables_come_from_templates_and_undefined_ones_error() {
    let (_d, app) = probe("http://127.0.0.1:9");
    let r = app.request("GET", "/x?var=greeting", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello from probe"));
    let r = app.request("GET", "/x?var=upstream", &[], "").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("Undefined"), "{}", r.text());
    let r = app.request("GET", "/x?var=Bad-Name", &[], "").await;
    assert!(r.text().contains("InvalidName"), "{}", r.text());
    // A required application variable without a value stops the app, as in Spin.
    let dir = tempfile::tempdir().unwrap();
    let err = cloudtuner_testhost::App::load(&cloudtuner_testhost::HostConfig::new(
        fixture("probe.toml"),
        dir.path(),
    ))
    .err()
    .expect("missing required variable must fail");
    assert!(err.to_string().contains("upstream"), "{err}");
}

#[tokio::test]
async fn outbound_http_is_limited_to_allowed_hosts() {
    let fake = FakeReplicate::start().await;
    let other = FakeReplicate::start().await;
    let (_d, app) = probe(&fake.url());
    let r = app
        .request(
            "GET",
            &format!("/x?fetch={}/v1/account", fake.url()),
            &[],
            "",
        )
        .await;
    // Allowed: the request reached the fake (which wants a token: 401).
    assert_eq!((r.status, r.text().as_str()), (200, "upstream 401"));
    assert_eq!(fake.requests().len(), 1);
    for url in [
        format!("{}/v1/account", other.url()),
        "https://api.replicate.com/v1/account".to_string(),
    ] {
        let r = app
            .request("GET", &format!("/x?fetch={url}"), &[], "")
            .await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (502, "ErrorCode::HttpRequestDenied"),
            "{url}"
        );
    }
    assert!(
        other.requests().is_empty(),
        "a denied request must not leave the host"
    );
    // A component without allowed_outbound_hosts can reach nothing.
    let r = app
        .request(
            "GET",
            &format!("/api/exact?fetch={}/v1/account", fake.url()),
            &[],
            "",
        )
        .await;
    assert_eq!(r.text(), "ErrorCode::HttpRequestDenied");
}

#[tokio::test]
async fn atomic_increment_never_loses_an_update() {
    let (_d, app) = probe("http://127.0.0.1:9");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.request("GET", "/x?atomic_inc=counter", &[], "")
                .await
                .text()
        }));
    }
    let mut seen: Vec<i64> = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap().parse().unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<i64>>());
    assert_eq!(
        app.kv().get("default", "counter").unwrap(),
        Some(20i64.to_le_bytes().to_vec())
    );
}

/// Outbound Redis as Spin 4.1 was measured to answer it (`../shared/reference/spin.md`):
/// replies flattened into one list, `OK` as a status, a missing value as nil,
/// and an address outside `allowed_outbound_hosts` refused before connecting.
#[tokio::test]
async fn outbound_redis_answers_as_spin_does_and_needs_a_grant() {
    let redis = common::RedisServer::start();
    let (_d, app) = probe(&redis.url());
    let exec = |cmd: &str, args: &str| {
        let app = app.clone();
        let path = format!("/x?redis={}&cmd={cmd}&args={args}", redis.url());
        async move {
            let r = app.request("GET", &path, &[], "").await;
            (r.status, r.text())
        }
    };
    let ok = |v: &[&str]| (200, serde_json::to_string(v).unwrap());
    assert_eq!(exec("SET", "k|v|NX").await, ok(&["status:OK"]));
    assert_eq!(
        exec("SET", "k|w|NX").await,
        ok(&["nil"]),
        "create-if-absent"
    );
    assert_eq!(exec("SET", "n|int:41").await, ok(&["status:OK"]));
    assert_eq!(exec("INCRBY", "n|int:1").await, ok(&["int:42"]));
    assert_eq!(
        exec("MGET", "k|missing|n").await,
        ok(&["bin:v", "nil", "bin:42"])
    );
    let script = "if%20redis.call('GET',KEYS[1])==ARGV[1]%20then%20redis.call('SET',KEYS[1],ARGV[2])%20return%201%20end%20return%200";
    assert_eq!(
        exec("EVAL", &format!("{script}|int:1|k|stale|x")).await,
        ok(&["int:0"])
    );
    assert_eq!(
        exec("EVAL", &format!("{script}|int:1|k|v|x")).await,
        ok(&["int:1"])
    );
    // SCAN's [cursor, [keys]] arrives flat: [cursor, key, key].
    let (status, body) = exec("SCAN", "0|MATCH|*|COUNT|100").await;
    assert_eq!(status, 200);
    let mut flat: Vec<String> = serde_json::from_str(&body).unwrap();
    assert_eq!(flat.remove(0), "bin:0");
    flat.sort();
    assert_eq!(flat, ["bin:k", "bin:n"]);
    // A server error is `other`, in Redis' words.
    let (status, body) = exec("INCRBY", "k|int:1").await;
    assert_eq!(status, 502);
    assert!(
        body.starts_with("Error::Other(") && body.contains("not an integer"),
        "{body}"
    );

    // Not in allowed_outbound_hosts: refused as an invalid address, no connection made.
    let other = common::RedisServer::start();
    let r = app
        .request(
            "GET",
            &format!("/x?redis={}&cmd=PING", other.url()),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (502, "Error::InvalidAddress")
    );
    let r = app
        .request(
            "GET",
            &format!("/api/exact?redis={}&cmd=PING", redis.url()),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (502, "Error::InvalidAddress"),
        "no grant at all"
    );
    // Allowed but down: the client's error, as `other`, naming what happened.
    let url = redis.url();
    drop(redis);
    let r = app
        .request("GET", &format!("/x?redis={url}&cmd=PING"), &[], "")
        .await;
    assert_eq!(r.status, 502);
    assert!(
        r.text().starts_with("Error::Other(") && r.text().contains("refused"),
        "{}",
        r.text()
    );
}
