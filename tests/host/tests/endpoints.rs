//! cloudtuner's first endpoints, through the real components and spin.toml.

mod common;

use std::collections::BTreeSet;

use common::{cloudtuner, load, spin_toml, stored};
use fake_replicate::{DEFAULT_TOKEN, FakeReplicate, Fault, FaultKind};
use serde_json::Value;

#[tokio::test]
async fn health_reports_components_and_checks_the_store() {
    let fake = FakeReplicate::start().await;
    let (_d, app) = cloudtuner(&fake);
    let r = app.request("GET", "/api/cloud/health", &[], "").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let listed: BTreeSet<String> = body["deployed_components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let declared: BTreeSet<String> = app.manifest().component.keys().cloned().collect();
    assert_eq!(listed, declared);
    assert_eq!(body["checks"][0]["status"], "healthy");
    // SimpleTuner's shape, which its CLI's `cloud status` prints.
    assert_eq!(body["components"][0]["name"], "key_value_store");
    assert!(body["components"][0]["latency_ms"].is_number(), "{body}");
    assert!(body["uptime_seconds"].is_u64(), "{body}");
    // Spin's SQLite store (the host reproduces its CAS): compare-and-swap holds.
    assert_eq!(body["checks"][1]["name"], "key_value_atomics");
    assert_eq!(body["checks"][1]["status"], "healthy", "{body}");
    // The check really went through the store.
    assert!(stored(&app).get("sys:health").is_some());
}

/// The probes a load balancer or SpinKube polls: liveness never touches the
/// store; readiness says why an instance cannot work yet.
#[tokio::test]
async fn liveness_and_readiness_probes_say_what_is_missing() {
    let fake = FakeReplicate::start().await;
    let (_d, app) = cloudtuner(&fake);
    let anonymous = app.anonymous();
    let r = anonymous
        .request("GET", "/api/cloud/health/live", &[], "")
        .await;
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"status": "ok"}))
    );
    let r = anonymous
        .request("GET", "/api/cloud/health/ready", &[], "")
        .await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("ready")),
        "{}",
        r.text()
    );
    // No token anywhere: not ready, and the reason says which variable to set.
    let (_d2, bare) = load(spin_toml(), &[("replicate_api_base", fake.url().as_str())]);
    let r = bare
        .anonymous()
        .request("GET", "/api/cloud/health/ready", &[], "")
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap()
            .contains("replicate_api_token")
    );
    let r = bare
        .request("POST", "/api/cloud/health/live", &[], "")
        .await;
    assert_eq!(r.status, 405);
}

/// Concurrent checks overwrite each other's probe; all must still be healthy
/// (the health benchmark found this).
#[tokio::test]
async fn concurrent_health_checks_all_report_healthy() {
    let (_d, app) = load(spin_toml(), &[]);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.request("GET", "/api/cloud/health", &[], "")
                    .await
                    .status
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn wrong_methods_get_405_with_allow_and_error_shape() {
    let fake = FakeReplicate::start().await;
    let (_d, app) = cloudtuner(&fake);
    let r = app.request("DELETE", "/api/cloud/providers", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    let body = r.json();
    assert_eq!(body["error"], "method_not_allowed");
    assert!(body["message"].as_str().unwrap().contains("DELETE"));
    // No route: 404 from the router.
    assert_eq!(
        app.request("GET", "/api/cloud/nothing-here", &[], "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn providers_lists_replicate_with_profiles_and_configuration() {
    let (_d, app) = load(spin_toml(), &[]);
    let body = app
        .request("GET", "/api/cloud/providers", &[], "")
        .await
        .json();
    let replicate = &body["providers"][0];
    assert_eq!(replicate["id"], "replicate");
    assert_eq!(replicate["configured"], false);
    let profiles = replicate["hardware_profiles"].as_array().unwrap();
    let h100x8 = profiles.iter().find(|p| p["id"] == "h100-x8").unwrap();
    assert_eq!(h100x8["cost_per_hour"], 43.92);
    assert_eq!(h100x8["model"], "simpletuner/advanced-trainer-h100-x8");

    let (_d, app) = load(spin_toml(), &[("replicate_api_token", "r8_configured")]);
    let body = app.request("GET", "/api/cloud/providers", &[], "").await;
    assert_eq!(body.json()["providers"][0]["configured"], true);
    assert!(!body.text().contains("r8_configured"));
}

#[tokio::test]
async fn validate_reports_the_account_for_a_good_token() {
    let fake = FakeReplicate::start().await;
    let (_d, app) = cloudtuner(&fake);
    let r = app
        .request("GET", "/api/cloud/providers/replicate/validate", &[], "")
        .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["user_info"]["username"], "fake-user");
    assert_eq!(body["error"], Value::Null);
    // The fake saw our token in the Authorization header, and only there.
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/account");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {DEFAULT_TOKEN}"))
    );
    assert!(!r.text().contains(DEFAULT_TOKEN));
    assert!(!app.logs().contains(DEFAULT_TOKEN));
}

/// A Replicate that cannot be reached is said in words, with the host: not
/// the runtime's debug text.
#[tokio::test]
async fn unreachable_providers_are_reported_in_words() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    for (base, words) in [
        (
            "http://no-such-host.invalid".to_string(),
            "could not resolve the host name (no-such-host.invalid)",
        ),
        (
            format!("http://127.0.0.1:{port}"),
            "the connection was refused (127.0.0.1:",
        ),
    ] {
        let (_d, app) = load(
            spin_toml(),
            &[
                ("replicate_api_base", &base),
                ("replicate_api_token", "r8_x"),
            ],
        );
        let body = app
            .request("GET", "/api/cloud/providers/replicate/validate", &[], "")
            .await
            .json();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{base}: {body}");
        assert!(
            !error.contains("ErrorCode") && !error.contains('{'),
            "{error}"
        );
    }
}

#[tokio::test]
async fn validate_reports_bad_missing_and_throttled_tokens_without_leaking() {
    let fake = FakeReplicate::start().await;
    let url = fake.url();
    let wrong = "r8_wrong_token_must_not_leak";
    let (_d, app) = load(
        spin_toml(),
        &[("replicate_api_base", &url), ("replicate_api_token", wrong)],
    );
    let r = app
        .request("GET", "/api/cloud/providers/replicate/validate", &[], "")
        .await;
    let body = r.json();
    assert_eq!(body["valid"], false);
    assert!(
        body["error"].as_str().unwrap().contains("rejected"),
        "{body}"
    );
    assert!(!r.text().contains(wrong) && !app.logs().contains(wrong));

    let (_d, app) = load(spin_toml(), &[("replicate_api_base", &url)]);
    let body = app
        .request("GET", "/api/cloud/providers/replicate/validate", &[], "")
        .await
        .json();
    assert_eq!(body["valid"], false);
    assert!(body["error"].as_str().unwrap().contains("not configured"));

    fake.fault(Fault::new(
        None,
        "/v1/account",
        FaultKind::Status {
            status: 429,
            retry_after: 3,
        },
        1,
    ));
    let (_d, app) = cloudtuner(&fake);
    let body = app
        .request("GET", "/api/cloud/providers/replicate/validate", &[], "")
        .await
        .json();
    assert_eq!(body["valid"], false);
    assert!(
        body["error"].as_str().unwrap().contains("retry in 3 s"),
        "{body}"
    );

    fake.fault(Fault::new(
        None,
        "/v1/account",
        FaultKind::Status {
            status: 503,
            retry_after: 0,
        },
        1,
    ));
    let body = app
        .request("GET", "/api/cloud/providers/replicate/validate", &[], "")
        .await
        .json();
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
}

#[tokio::test]
async fn validate_cannot_reach_hosts_outside_its_allow_list() {
    // replicate_api_base decides both the URL and the allow-list; the real
    // Replicate is not reachable from this sandbox and must not be tried here.
    let (_d, app) = load(
        spin_toml(),
        &[
            ("replicate_api_base", "http://127.0.0.1:9"),
            ("replicate_api_token", "r8_x"),
        ],
    );
    let body = app
        .request("GET", "/api/cloud/providers/replicate/validate", &[], "")
        .await
        .json();
    assert_eq!(body["valid"], false);
    assert!(
        body["error"].as_str().unwrap().contains("could not reach"),
        "{body}"
    );
}

/// Every route in spin.toml is described in the OpenAPI document.
#[tokio::test]
async fn openapi_describes_every_route_and_docs_render_it() {
    let (_d, app) = load(spin_toml(), &[]);
    let r = app.request("GET", "/openapi.json", &[], "").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    for t in &app.manifest().trigger.http {
        let route = t.route.replace("/...", "");
        let templated: String = route
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let covered = if t.route.ends_with("/...") {
            paths
                .iter()
                .any(|p| p == &templated || p.starts_with(&format!("{templated}/")))
        } else {
            paths.contains(&templated)
        };
        assert!(
            covered,
            "route {} ({}) is missing from openapi.json",
            t.route, t.component
        );
    }
    let page = app.request("GET", "/docs", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(page.text().contains("/docs/docs.js"));
    assert!(!page.text().contains("https://"), "no CDN");
    let js = app.request("GET", "/docs/docs.js", &[], "").await;
    assert!(js.text().contains("/openapi.json"));
    assert_eq!(
        app.request("GET", "/docs/nope.js", &[], "").await.status,
        404
    );
}

#[test]
fn spin_toml_declares_the_required_variables() {
    let manifest = cloudtuner_testhost::manifest::Manifest::load(&spin_toml()).unwrap();
    let token = &manifest.variables["replicate_api_token"];
    assert!(token.secret);
    assert_eq!(
        manifest.variables["replicate_api_base"].default.as_deref(),
        Some("https://api.replicate.com")
    );
    assert!(manifest.variables.contains_key("public_url"));
    for (id, c) in &manifest.component {
        for host in &c.allowed_outbound_hosts {
            assert!(
                !host.contains('*'),
                "{id}: outbound hosts must be narrow, got {host}"
            );
        }
    }
}

/// The web UI: embedded files with their types, content-hash ETags (304 when
/// unchanged), revalidation, a strict CSP; unknown API paths stay JSON.
#[tokio::test]
async fn the_ui_is_served_with_types_etags_and_a_strict_csp() {
    let (_d, app) = load(spin_toml(), &[]);
    let app = app.anonymous();
    for (path, kind, needle) in [
        (
            "/",
            "text/html",
            "<script type=\"module\" src=\"/js/app.js\">",
        ),
        ("/js/app.js", "text/javascript", "hashchange"),
        ("/css/app.css", "text/css", "prefers-color-scheme: dark"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = app.request("GET", path, &[], "").await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert!(r.text().contains(needle), "{path}");
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("http"),
            "{csp}"
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        let etag = r.header("etag").unwrap().to_string();
        let again = app
            .request("GET", path, &[("if-none-match", &etag)], "")
            .await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
    }
    // No page loads anything from elsewhere (no CDN, no external fonts).
    for path in ["/", "/css/app.css", "/js/app.js", "/js/views/jobs.js"] {
        let text = app.request("GET", path, &[], "").await.text();
        assert!(
            !text.contains("https://cdn") && !text.contains("fonts.googleapis"),
            "{path}"
        );
    }
    let r = app.request("GET", "/nope.html", &[], "").await;
    assert_eq!(r.status, 404);
    let r = app
        .request("GET", "/api/cloud/no-such-route", &[], "")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    let r = app.request("POST", "/index.html", &[], "").await;
    assert_eq!(r.status, 405);
}

/// The statuses any operation can answer are documented, by one rule each
/// (clients and fuzzers read the document; `tests/host/tests/fuzz.rs` checks
/// the answers against it): 401/403 where credentials are required, 400/404
/// with a path parameter, 400 with query parameters, 400/413/415 with a body,
/// 503 wherever the store is read; the S3 endpoint's own XML errors.
#[test]
fn openapi_documents_the_statuses_every_operation_can_answer() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            cloudtuner_testhost::workspace_root().join("components/api-docs/assets/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let default_security = doc["security"].clone();
    let no_store = [
        ("/openapi.json", "get"),
        ("/docs", "get"),
        ("/api/cloud/health/live", "get"),
    ];
    let mut missing = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch", "head"].contains(&method.as_str()) {
                continue;
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let has = |place: &str| params.iter().any(|p| p["in"] == place);
            let security = op.get("security").unwrap_or(&default_security);
            let mut want: Vec<&str> = Vec::new();
            if path.starts_with("/api/cloud/storage") {
                want.extend(["400", "403", "404", "405", "413", "503"]);
            } else {
                if security.as_array().is_some_and(|s| !s.is_empty()) {
                    want.extend(["401", "403"]);
                }
                if has("path") {
                    want.extend(["400", "404"]);
                }
                if has("query") {
                    want.push("400");
                }
                if op.get("requestBody").is_some() {
                    want.extend(["400", "413", "415"]);
                }
                if !no_store.contains(&(path.as_str(), method.as_str())) {
                    want.push("503");
                }
            }
            for code in want {
                if op["responses"].get(code).is_none() {
                    missing.push(format!("{} {path}: {code}", method.to_uppercase()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented statuses:\n{}",
        missing.join("\n")
    );
}
