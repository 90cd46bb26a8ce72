//! Authentication, users, scoped API keys and tenant isolation, through the
//! real components: the seed's flow, first-run races, brute-force backoff, a
//! matrix over every route in spin.toml, and a grep for leaked secrets.

mod common;

use std::collections::BTreeMap;

use cloudtuner_testhost::{App, TestResponse};
use common::{PASSWORD, TestApp, post_json, stored};
use fake_replicate::{Outcome, Script};
use serde_json::{Value, json};
use sha2::Digest;

async fn call(
    app: &App,
    method: &str,
    path: &str,
    auth: &[(&str, &str)],
    body: Value,
) -> TestResponse {
    let mut headers = auth.to_vec();
    let body = if body.is_null() {
        String::new()
    } else {
        // JSON bodies say so: anonymous and cookie requests must (415).
        if !auth
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type", "application/json"));
        }
        body.to_string()
    };
    app.anonymous().request(method, path, &headers, body).await
}

/// The `admin_token` header: with one configured, only its holder sets up.
fn admin_token_header() -> (&'static str, String) {
    bearer(common::ADMIN_TOKEN)
}

async fn login(app: &App, username: &str) -> String {
    let r = call(
        app,
        "POST",
        "/api/cloud/auth/login",
        &[],
        json!({"username": username, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

struct World {
    test: TestApp,
    app: App,
    /// name → (header name, header value); "anonymous" sends nothing.
    who: BTreeMap<&'static str, Option<(&'static str, String)>>,
    ids: BTreeMap<&'static str, String>,
    secrets: Vec<String>,
}

impl World {
    fn auth(&self, who: &str) -> Vec<(&str, &str)> {
        match &self.who[who] {
            Some((k, v)) => vec![(*k, v.as_str())],
            None => vec![],
        }
    }
}

async fn world() -> World {
    // Log streams of running jobs end after 1 s, not 25.
    let test = TestApp::builder()
        .var("log_stream_seconds", "1")
        .start()
        .await;
    let (fake, app) = (&test.fake, test.app.clone());
    fake.set_default_script(Script::training(2, 1000, 100, Outcome::Aborted));
    let setup_auth = admin_token_header();
    let r = call(
        &app,
        "POST",
        "/api/cloud/auth/setup",
        &[(setup_auth.0, &setup_auth.1)],
        json!({"username": "root", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let admin_token = r.json()["token"].as_str().unwrap().to_string();
    assert!(r.header("set-cookie").unwrap().contains("HttpOnly"));
    let mut ids = BTreeMap::new();
    ids.insert(
        "admin",
        r.json()["user"]["id"].as_str().unwrap().to_string(),
    );
    for (name, role) in [
        ("alice", "researcher"),
        ("bob", "researcher"),
        ("lena", "lead"),
    ] {
        let r = call(
            &app,
            "POST",
            "/api/cloud/auth/users",
            &[(bearer(&admin_token).0, &bearer(&admin_token).1)],
            json!({"username": name, "password": PASSWORD, "role": role}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        ids.insert(name, r.json()["user"]["id"].as_str().unwrap().to_string());
    }
    let alice = login(&app, "alice").await;
    let bob = login(&app, "bob").await;
    let lead = login(&app, "lena").await;
    let a = bearer(&alice);
    let make_key = async |scopes: Value| {
        let r = call(
            &app,
            "POST",
            "/api/cloud/auth/api-keys",
            &[(a.0, &a.1)],
            json!({"name": "ci", "scoped_permissions": scopes}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        (
            r.json()["key"].as_str().unwrap().to_string(),
            r.json()["key_info"]["id"].as_str().unwrap().to_string(),
        )
    };
    let (narrow, _) = make_key(json!(["job.submit", "job.view.own"])).await;
    let (expired, _) = make_key(Value::Null).await;
    let (revoked, revoked_id) = make_key(Value::Null).await;
    // Expire one key in the store; revoke another through the API.
    let hash = hex::encode(sha2::Sha256::digest(expired.as_bytes()));
    let rkey = format!("apikey:{hash}");
    let mut rec: Value = serde_json::from_slice(&stored(&app).get(&rkey).unwrap()).unwrap();
    rec["expires_ms"] = json!(1);
    stored(&app).set(&rkey, rec.to_string().as_bytes());
    let r = call(
        &app,
        "DELETE",
        &format!("/api/cloud/auth/api-keys/{revoked_id}"),
        &[(a.0, &a.1)],
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let mut who = BTreeMap::new();
    who.insert("anonymous", None);
    who.insert("alice", Some(bearer(&alice)));
    who.insert("bob", Some(bearer(&bob)));
    who.insert("lead", Some(bearer(&lead)));
    who.insert("admin", Some(bearer(&admin_token)));
    who.insert("narrow_key", Some(("x-api-key", narrow.clone())));
    who.insert("expired_key", Some(bearer(&expired)));
    who.insert("revoked_key", Some(("x-api-key", revoked.clone())));
    let secrets = vec![
        PASSWORD.to_string(),
        admin_token,
        alice,
        bob,
        lead,
        narrow.clone(),
        expired,
        revoked,
        hex::encode(sha2::Sha256::digest(narrow.as_bytes())),
        hash,
    ];
    World {
        test,
        app,
        who,
        ids,
        secrets,
    }
}

const PRINCIPALS: [&str; 8] = [
    "anonymous",
    "alice",
    "bob",
    "lead",
    "admin",
    "narrow_key",
    "expired_key",
    "revoked_key",
];

/// One row: a route, a method, how to prepare the object it acts on, and the
/// expected status per principal (in PRINCIPALS order).
struct Row {
    route: &'static str,
    method: &'static str,
    expect: [u16; 8],
}

const fn row(route: &'static str, method: &'static str, expect: [u16; 8]) -> Row {
    Row {
        route,
        method,
        expect,
    }
}

//                        anon alice bob  lead admin narrow expired revoked
const AUTHED_200: [u16; 8] = [401, 200, 200, 200, 200, 200, 401, 401];
const PUBLIC_200: [u16; 8] = [200; 8];
const ADMIN_ONLY: [u16; 8] = [401, 403, 403, 403, 200, 403, 401, 401];

fn rows() -> Vec<Row> {
    vec![
        row("/api/cloud/health", "GET", PUBLIC_200),
        // Organizations: members see their own (org.view, which keys must be scoped to);
        // admins create; the user directory with integer ids is admins' only.
        row("/api/orgs", "GET", [401, 200, 200, 200, 200, 403, 401, 401]),
        row(
            "/api/orgs",
            "POST",
            [401, 403, 403, 403, 201, 403, 401, 401],
        ),
        row("/api/orgs/...", "GET", ADMIN_ONLY),
        // Quotas: leads and admins list them (quota.view); everyone sees their own usage.
        row(
            "/api/quotas",
            "GET",
            [401, 403, 403, 200, 200, 403, 401, 401],
        ),
        row("/api/quotas/...", "GET", AUTHED_200),
        // Approvals: leads and admins list requests (admin.approve); everyone sees their own.
        row(
            "/api/approvals",
            "GET",
            [401, 403, 403, 200, 200, 403, 401, 401],
        ),
        row("/api/approvals/...", "GET", AUTHED_200),
        row("/api/cloud/health/live", "GET", PUBLIC_200),
        row("/api/cloud/health/ready", "GET", PUBLIC_200),
        row("/openapi.json", "GET", PUBLIC_200),
        row("/...", "GET", PUBLIC_200),
        row("/docs/...", "GET", PUBLIC_200),
        row("/api/cloud/auth/setup", "GET", PUBLIC_200),
        row("/api/cloud/auth/setup", "POST", [409; 8]),
        row("/api/auth/setup/status", "GET", PUBLIC_200),
        row("/api/auth/setup/first-admin", "POST", [409; 8]),
        row("/api/users/meta/auth-status", "GET", PUBLIC_200),
        // Login ignores headers: the body's wrong password is what counts.
        row("/api/cloud/auth/login", "POST", [401; 8]),
        row("/api/auth/login", "POST", [401; 8]),
        row("/api/cloud/auth/me", "GET", AUTHED_200),
        row("/api/auth/me", "GET", AUTHED_200),
        row("/api/cloud/auth/users", "GET", ADMIN_ONLY),
        row(
            "/api/cloud/auth/users",
            "POST",
            [401, 403, 403, 403, 201, 403, 401, 401],
        ),
        row("/api/cloud/auth/users/:id", "GET", ADMIN_ONLY),
        row(
            "/api/cloud/auth/api-keys",
            "GET",
            [401, 200, 200, 200, 200, 403, 401, 401],
        ),
        row(
            "/api/auth/api-keys",
            "POST",
            [401, 201, 201, 201, 201, 403, 401, 401],
        ),
        row(
            "/api/cloud/auth/api-keys/:id",
            "DELETE",
            [401, 200, 404, 404, 200, 404, 401, 401],
        ),
        row(
            "/api/auth/api-keys/:id",
            "DELETE",
            [401, 200, 404, 404, 200, 404, 401, 401],
        ),
        row("/api/cloud/providers", "GET", AUTHED_200),
        row("/api/cloud/providers/replicate/validate", "GET", ADMIN_ONLY),
        row("/api/cloud/replicate/validate", "GET", ADMIN_ONLY),
        row("/api/cloud/replicate/status", "GET", AUTHED_200),
        row(
            "/api/cloud/jobs/submit",
            "POST",
            [401, 201, 201, 201, 201, 201, 401, 401],
        ),
        row("/api/cloud/jobs", "GET", AUTHED_200),
        row(
            "/api/cloud/jobs/:id",
            "GET",
            [401, 200, 404, 200, 200, 200, 401, 401],
        ),
        row(
            "/api/cloud/jobs/:id/logs",
            "GET",
            [401, 200, 404, 200, 200, 200, 401, 401],
        ),
        row(
            "/api/cloud/jobs/:id/logs/stream",
            "GET",
            [401, 200, 404, 200, 200, 200, 401, 401],
        ),
        // The job is still running: whoever may see it and submit is told it cannot re-run yet.
        row(
            "/api/cloud/jobs/:id/retry",
            "POST",
            [401, 409, 404, 409, 409, 409, 401, 401],
        ),
        row(
            "/api/cloud/jobs/:id/cancel",
            "POST",
            [401, 200, 404, 403, 200, 403, 401, 401],
        ),
        row(
            "/api/cloud/jobs/:id",
            "DELETE",
            [401, 200, 404, 403, 200, 403, 401, 401],
        ),
        row(
            "/api/cloud/jobs/:id/outputs",
            "GET",
            [401, 200, 404, 200, 200, 200, 401, 401],
        ),
        row("/api/cloud/publishing/status", "GET", AUTHED_200),
        // S3 listing of alice's job outputs: S3 answers 403 AccessDenied, not 401.
        row(
            "/api/cloud/storage/...",
            "GET",
            [403, 200, 403, 200, 200, 200, 403, 403],
        ),
        row("/api/cloud/jobs/sync", "POST", ADMIN_ONLY),
        row("/api/cloud/providers/:provider", "GET", ADMIN_ONLY),
        row("/api/cloud/providers/:provider", "PUT", ADMIN_ONLY),
        row("/api/cloud/providers/:provider/config", "GET", ADMIN_ONLY),
        // Set, then forgotten at once, so later rows see the token as before.
        row("/api/cloud/providers/:provider/token", "PUT", ADMIN_ONLY),
        row("/api/cloud/providers/:provider/token", "DELETE", ADMIN_ONLY),
        row("/api/cloud/metrics/cost-limit", "GET", AUTHED_200),
        row("/api/cloud/cost-limit/status", "GET", AUTHED_200),
        row("/api/metrics", "GET", AUTHED_200),
        // Everyone reads the events on their own objects; admins read all.
        row("/api/cloud/events", "GET", AUTHED_200),
        // SimpleTuner's leads hold admin.audit: they read and verify the log too.
        row(
            "/api/cloud/events/verify",
            "GET",
            [401, 403, 403, 200, 200, 403, 401, 401],
        ),
        row(
            "/api/metrics/prometheus",
            "GET",
            [401, 403, 403, 403, 200, 403, 401, 401],
        ),
        row("/api/cloud/metrics", "GET", AUTHED_200),
        row("/api/cloud/cost-estimate", "POST", AUTHED_200),
        row("/api/cloud/notifications", "GET", AUTHED_200),
        row(
            "/api/cloud/notifications",
            "POST",
            [401, 201, 201, 201, 201, 201, 401, 401],
        ),
        // The narrow key is alice's and holds job.view.own, which manages her notifications.
        row(
            "/api/cloud/notifications/:id",
            "DELETE",
            [401, 200, 404, 404, 200, 200, 401, 401],
        ),
        // Notification channels: everyone's own; another's channel is 404.
        row("/api/cloud/notifications/channels", "GET", AUTHED_200),
        row(
            "/api/cloud/notifications/channels/...",
            "GET",
            [401, 200, 404, 404, 200, 200, 401, 401],
        ),
        row("/api/cloud/notifications/history", "GET", AUTHED_200),
        row("/api/cloud/notifications/events", "GET", AUTHED_200),
        row("/api/cloud/notifications/status", "GET", AUTHED_200),
        // Webhooks take no user credential: an unsigned POST is 401 for everyone.
        row("/api/cloud/webhooks/replicate", "POST", [401; 8]),
        row("/api/webhooks/replicate", "POST", [401; 8]),
        row(
            "/api/cloud/configs",
            "GET",
            [401, 200, 200, 200, 200, 403, 401, 401],
        ),
        // Configs are per owner: alice's config does not exist for others.
        row(
            "/api/cloud/configs/:name",
            "GET",
            [401, 200, 404, 404, 404, 403, 401, 401],
        ),
        row(
            "/api/configs/:name",
            "GET",
            [401, 200, 404, 404, 404, 403, 401, 401],
        ),
        row(
            "/api/cloud/configs/:name",
            "PUT",
            [401, 200, 201, 201, 201, 403, 401, 401],
        ),
        row(
            "/api/cloud/configs/:name",
            "DELETE",
            [401, 200, 404, 404, 404, 403, 401, 401],
        ),
        // Datasets are private to their owner; reading or writing them needs
        // dataset.upload (the narrow key lacks it). Only alice has the dataset addressed.
        row("/api/cloud/models", "GET", AUTHED_200),
        row(
            "/api/cloud/datasets",
            "GET",
            [401, 200, 200, 200, 200, 403, 401, 401],
        ),
        row(
            "/api/cloud/datasets",
            "POST",
            [401, 201, 201, 201, 201, 403, 401, 401],
        ),
        row(
            "/api/cloud/datasets/:name",
            "GET",
            [401, 200, 404, 404, 404, 403, 401, 401],
        ),
        row(
            "/api/cloud/datasets/:name",
            "PATCH",
            [401, 200, 404, 404, 404, 403, 401, 401],
        ),
        row(
            "/api/cloud/datasets/:name",
            "DELETE",
            [401, 200, 404, 404, 404, 403, 401, 401],
        ),
        // Last: logging out revokes the sessions the rows above use.
        row(
            "/api/cloud/auth/logout",
            "POST",
            [401, 200, 200, 200, 200, 200, 401, 401],
        ),
        row(
            "/api/auth/logout",
            "POST",
            [401, 401, 401, 401, 401, 200, 401, 401],
        ),
    ]
}

/// Prepares what a cell acts on (as alice) and returns the concrete request.
async fn prepare(w: &World, r: &Row) -> (String, Value) {
    let alice = w.auth("alice");
    let owned_job = async |finish: bool| {
        let resp = post_json(
            &w.app.anonymous().with_header(alice[0].0, alice[0].1),
            "/api/cloud/jobs/submit",
            &json!({"config": {"x": 1}}),
        )
        .await;
        let id = resp.json()["job_id"].as_str().unwrap().to_string();
        if finish {
            call(
                &w.app,
                "POST",
                &format!("/api/cloud/jobs/{id}/cancel"),
                &alice,
                Value::Null,
            )
            .await;
        }
        id
    };
    let path = match (r.route, r.method) {
        ("/docs/...", _) => "/docs".to_string(),
        ("/api/orgs/...", _) => "/api/orgs/users".to_string(),
        ("/api/quotas/...", _) => "/api/quotas/me".to_string(),
        ("/api/approvals/...", _) => "/api/approvals/me".to_string(),
        ("/...", _) => "/".to_string(),
        ("/api/cloud/auth/users/:id", _) => format!("/api/cloud/auth/users/{}", w.ids["alice"]),
        (route, _) if route.contains(":provider") => route.replace(":provider", "replicate"),
        (route, "DELETE") if route.ends_with("/api-keys/:id") => {
            let k = call(
                &w.app,
                "POST",
                "/api/cloud/auth/api-keys",
                &alice,
                json!({"name": "tmp"}),
            )
            .await;
            route.replace(":id", k.json()["key_info"]["id"].as_str().unwrap())
        }
        ("/api/cloud/jobs/:id", "DELETE") => format!("/api/cloud/jobs/{}", owned_job(true).await),
        ("/api/cloud/storage/...", _) => format!(
            "/api/cloud/storage/outputs?list-type=2&prefix={}/",
            owned_job(false).await
        ),
        ("/api/cloud/notifications/channels/...", _) => {
            let c = call(
                &w.app,
                "POST",
                "/api/cloud/notifications/channels",
                &alice,
                json!({"channel_type": "slack", "name": "matrix",
                       "webhook_url": "https://hooks.slack.com/services/T0/B0/x"}),
            )
            .await;
            format!("/api/cloud/notifications/channels/{}", c.json()["id"])
        }
        ("/api/cloud/notifications/:id", _) => {
            let n = call(
                &w.app,
                "POST",
                "/api/cloud/notifications",
                &alice,
                json!({"url": "https://hooks.example.com/ci"}),
            )
            .await;
            format!(
                "/api/cloud/notifications/{}",
                n.json()["notification"]["id"].as_str().unwrap()
            )
        }
        (route, _) if route.contains(":id") => route.replace(":id", &owned_job(false).await),
        ("/api/cloud/datasets/:name", method) => {
            // Alice's dataset with its one announced file stored.
            let name = format!("ds-{}", method.to_lowercase());
            let begin = json!({"name": name, "files": 1});
            call(&w.app, "POST", "/api/cloud/datasets", &alice, begin).await;
            let file = format!("/api/cloud/storage/datasets/{name}/a.txt");
            let stored = call(&w.app, "PUT", &file, &alice, json!("a caption")).await;
            assert_eq!(stored.status, 200, "{}", stored.text());
            format!("/api/cloud/datasets/{name}")
        }
        (route, method) if route.contains(":name") => {
            // Only alice has these; others address their own (empty) namespace.
            let name = if method == "DELETE" { "cfg-del" } else { "cfg" };
            let path = format!("/api/cloud/configs/{name}");
            call(&w.app, "PUT", &path, &alice, json!({"config": {"x": 1}})).await;
            route.replace(":name", name)
        }
        (route, _) => route.to_string(),
    };
    let body = match (r.route, r.method) {
        ("/api/cloud/auth/setup" | "/api/auth/setup/first-admin", _) => {
            json!({"username": "again", "password": PASSWORD})
        }
        // A new unknown username each time keeps the brute-force lock out of it.
        (route, _) if route.ends_with("/login") => {
            json!({"username": format!("nobody{}", rand_suffix()), "password": "wrong password!"})
        }
        ("/api/cloud/auth/users", "POST") => {
            json!({"username": format!("user{}", rand_suffix()), "password": PASSWORD})
        }
        (route, "POST") if route.ends_with("/api-keys") => json!({"name": "k"}),
        ("/api/cloud/jobs/submit", _) => json!({"config": {"y": 1}}),
        ("/api/cloud/datasets", "POST") => json!({"name": "ds-matrix", "files": 2}),
        ("/api/cloud/datasets/:name", "PATCH") => json!({"state": "ready"}),
        ("/api/cloud/notifications", "POST") => json!({"url": "https://hooks.example.com/x"}),
        ("/api/cloud/providers/:provider", "PUT") => json!({"cost_limit_period": "monthly"}),
        ("/api/cloud/providers/:provider/token", "PUT") => json!({"api_token": "r8_matrix"}),
        ("/api/cloud/cost-estimate", _) => json!({"config": {"--max_train_steps": 100}}),
        ("/api/orgs", "POST") => json!({"name": "Matrix", "slug": "matrix"}),
        (_, "PUT") => json!({"config": {"z": 1}}),
        _ => Value::Null,
    };
    (path, body)
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

#[tokio::test]
async fn every_route_answers_each_principal_as_expected_and_nothing_leaks() {
    let w = world().await;
    let rows = rows();
    // The matrix covers every route in spin.toml.
    for t in &w.app.manifest().trigger.http {
        assert!(
            rows.iter().any(|r| r.route == t.route),
            "route {} has no row in the matrix",
            t.route
        );
    }
    let mut failures = Vec::new();
    let mut bodies = String::new();
    for r in &rows {
        for (i, who) in PRINCIPALS.iter().enumerate() {
            let (path, body) = prepare(&w, r).await;
            let resp = call(&w.app, r.method, &path, &w.auth(who), body).await;
            bodies.push_str(&resp.text());
            bodies.push_str(&format!("{:?}", resp.headers));
            if resp.status != r.expect[i] {
                failures.push(format!(
                    "{} {} as {who}: {} (expected {}): {}",
                    r.method,
                    r.route,
                    resp.status,
                    r.expect[i],
                    resp.text()
                ));
            }
            if resp.status == 401 && !r.route.contains("webhooks") {
                assert_eq!(
                    resp.header("www-authenticate"),
                    Some("Bearer realm=\"cloudtuner\""),
                    "{} {}",
                    r.method,
                    path
                );
                assert!(
                    resp.json()["message"].as_str().unwrap().contains("uth")
                        || resp.json()["message"].as_str().unwrap().contains("API key")
                        || resp.json()["message"]
                            .as_str()
                            .unwrap()
                            .contains("password")
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let logs = w.app.logs();
    for s in &w.secrets {
        assert!(!bodies.contains(s.as_str()), "a response contains a secret");
        assert!(!logs.contains(s.as_str()), "a log contains a secret");
    }
    assert!(
        !bodies.contains("$argon2"),
        "a response contains a password hash"
    );
    drop(w.test.fake);
}

#[tokio::test]
async fn seed_flow_key_from_a_session_then_scoped_submit_and_tenant_isolation() {
    let w = world().await;
    let alice = w.auth("alice");
    let r = call(&w.app, "POST", "/api/cloud/auth/api-keys", &alice,
        json!({"name": "ci-pipeline", "expires_days": 30, "scoped_permissions": ["job.submit", "job.view.own"]})).await;
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("stk_") && key.len() >= 36);
    let kb = format!("Bearer {key}");
    let as_key = [("authorization", kb.as_str())];
    let r = call(
        &w.app,
        "POST",
        "/api/cloud/jobs/submit?provider=replicate",
        &as_key,
        json!({"config": {"a": 1}, "idempotency_key": "shared-key"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            &w.app,
            "GET",
            &format!("/api/cloud/jobs/{job}"),
            &as_key,
            Value::Null
        )
        .await
        .json()["job"]["status"],
        "queued"
    );
    assert_eq!(
        call(
            &w.app,
            "POST",
            &format!("/api/cloud/jobs/{job}/cancel"),
            &as_key,
            Value::Null
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &w.app,
            "POST",
            "/api/cloud/auth/api-keys",
            &as_key,
            json!({"name": "x"})
        )
        .await
        .status,
        403
    );
    // A key cannot be scoped beyond its creator.
    let r = call(
        &w.app,
        "POST",
        "/api/cloud/auth/api-keys",
        &alice,
        json!({"name": "x", "scoped_permissions": ["admin.users"]}),
    )
    .await;
    assert_eq!(r.status, 403);
    // Bob sees none of alice's jobs, and his identical idempotency key is his own.
    let bob = w.auth("bob");
    assert_eq!(
        call(&w.app, "GET", "/api/cloud/jobs", &bob, Value::Null)
            .await
            .json()["total"],
        0
    );
    let r = call(
        &w.app,
        "POST",
        "/api/cloud/jobs/submit",
        &bob,
        json!({"config": {"a": 1}, "idempotency_key": "shared-key"}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_ne!(r.json()["job_id"].as_str().unwrap(), job);
    // The lead sees both tenants' jobs; the key list never shows keys or hashes.
    assert_eq!(
        call(
            &w.app,
            "GET",
            "/api/cloud/jobs",
            &w.auth("lead"),
            Value::Null
        )
        .await
        .json()["total"],
        2
    );
    let list = call(
        &w.app,
        "GET",
        "/api/cloud/auth/api-keys",
        &alice,
        Value::Null,
    )
    .await;
    assert!(!list.text().contains(&key));
    assert!(
        list.json()["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["key_prefix"] == key[..12])
    );
    // SimpleTuner's CLI header works too.
    assert_eq!(
        call(
            &w.app,
            "GET",
            "/api/cloud/jobs",
            &[("x-api-key", &key)],
            Value::Null
        )
        .await
        .json()["total"],
        1
    );
}

#[tokio::test]
async fn first_admin_setup_is_created_once_under_a_race() {
    let t = TestApp::builder().start().await;
    let app = &t.app;
    assert_eq!(
        call(app, "GET", "/api/cloud/auth/setup", &[], Value::Null)
            .await
            .json()["needs_setup"],
        true
    );
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let setup_auth = admin_token_header();
                call(
                    &app,
                    "POST",
                    "/api/cloud/auth/setup",
                    &[(setup_auth.0, &setup_auth.1)],
                    json!({"username": format!("admin{i}"), "password": PASSWORD}),
                )
                .await
                .status
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 409), "{codes:?}");
    let users = app
        .request("GET", "/api/cloud/auth/users", &[], "")
        .await
        .json();
    assert_eq!(users["total"], 1);
    assert_eq!(
        call(app, "GET", "/api/cloud/auth/setup", &[], Value::Null)
            .await
            .json()["needs_setup"],
        false
    );
}

#[tokio::test]
async fn brute_force_logins_are_slowed_and_sessions_end_at_logout() {
    let w = world().await;
    for _ in 0..5 {
        let r = call(
            &w.app,
            "POST",
            "/api/cloud/auth/login",
            &[],
            json!({"username": "bob", "password": "not the password"}),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = call(
        &w.app,
        "POST",
        "/api/cloud/auth/login",
        &[],
        json!({"username": "bob", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 0);
    // Made-up usernames lock like real ones (the lock tells nothing), and a
    // flood of them cannot fill the store (Fermyon Cloud: 1,024 keys).
    // Failed sign-ins are in the event log, which keeps its newest 250 entries
    // whatever comes: every other key stays as it was.
    let not_events = |app: &App| -> usize {
        stored(app)
            .keys()
            .iter()
            .filter(|k| !k.starts_with("ev:"))
            .count()
    };
    let keys_before = not_events(&w.app);
    for i in 0..40 {
        let r = call(
            &w.app,
            "POST",
            "/api/cloud/auth/login",
            &[],
            json!({"username": format!("nobody{}", i / 6), "password": "not the password"}),
        )
        .await;
        let expected = if i % 6 == 5 { 429 } else { 401 };
        assert_eq!(r.status, expected, "attempt {i}: {}", r.text());
    }
    assert_eq!(not_events(&w.app), keys_before);
    // Alice is unaffected; her cookie works like her bearer token, until logout.
    let r = call(
        &w.app,
        "POST",
        "/api/cloud/auth/login",
        &[],
        json!({"username": "alice", "password": PASSWORD, "remember_me": true}),
    )
    .await;
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(
        call(
            &w.app,
            "GET",
            "/api/cloud/auth/me",
            &[("cookie", &pair)],
            Value::Null
        )
        .await
        .json()["username"],
        "alice"
    );
    assert_eq!(
        call(
            &w.app,
            "POST",
            "/api/cloud/auth/logout",
            // As the UI sends it: a cookie request that changes something is JSON.
            &[("cookie", &pair), ("content-type", "application/json")],
            Value::Null
        )
        .await
        .status,
        200
    );
    let r = call(
        &w.app,
        "GET",
        "/api/cloud/auth/me",
        &[("cookie", &pair)],
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 401);
}

/// Issue 14, item 7: the event log records who did what (sign-ins, keys,
/// users, jobs, settings, refusals), shows admins everything and others their
/// own, never holds a secret, and its hash chain shows tampering.
#[tokio::test]
async fn the_event_log_records_who_did_what_and_shows_tampering() {
    let w = world().await;
    let app = &w.app;
    let (alice, admin) = (w.auth("alice"), w.auth("admin"));
    // A wrong password, a job submitted and cancelled, a refused action, a setting.
    let r = call(
        app,
        "POST",
        "/api/cloud/auth/login",
        &[],
        json!({"username": "alice", "password": "not it at all"}),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = call(
        app,
        "POST",
        "/api/cloud/jobs/submit",
        &alice,
        json!({"config": {"--max_train_steps": 5}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    let r = call(
        app,
        "POST",
        &format!("/api/cloud/jobs/{job}/cancel"),
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(app, "GET", "/api/cloud/auth/users", &alice, Value::Null).await;
    assert_eq!(r.status, 403);
    let r = call(app, "PUT", "/api/cloud/providers/replicate", &admin,
        json!({"cost_limit_enabled": true, "cost_limit_amount": 50, "api_token": "r8_secret_in_an_event_9876"})).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = call(
        app,
        "GET",
        "/api/cloud/events?limit=200",
        &admin,
        Value::Null,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.json()["events"].as_array().unwrap().clone();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // Failed sign-ins are anonymous noise: counted per hour, never chained.
    let body = r.json();
    let counted: Vec<&str> = body["aggregates"]
        .as_array()
        .map(|a| a.iter().filter_map(|b| b["type"].as_str()).collect())
        .unwrap_or_default();
    assert!(counted.contains(&"auth.login_failed"), "{}", r.text());
    for kind in [
        "auth.login",
        "api_key.created",
        "api_key.revoked",
        "user.created",
        "job.submitted",
        "job.cancelled",
        "job.finished",
        "permission.denied",
        "settings.changed",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|p| p[0] > p[1]),
        "newest first: {seqs:?}"
    );
    let text = r.text();
    for s in w
        .secrets
        .iter()
        .map(String::as_str)
        .chain(["r8_secret_in_an_event_9876"])
    {
        assert!(!text.contains(s), "an event holds a secret");
    }
    let cancelled = events
        .iter()
        .find(|e| e["type"] == "job.cancelled")
        .unwrap();
    assert_eq!(cancelled["actor"], w.ids["alice"].as_str());
    assert_eq!(cancelled["target"], job.as_str());
    let settings = events
        .iter()
        .find(|e| e["type"] == "settings.changed")
        .unwrap();
    assert_eq!(settings["detail"]["limits"]["cost_limit_amount"], 50);

    // Filters, and what others see: alice her own; bob none of hers.
    let r = call(
        app,
        "GET",
        &format!("/api/cloud/events?target={job}"),
        &admin,
        Value::Null,
    )
    .await;
    let on_job: Vec<String> = r.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        on_job.contains(&"job.submitted".to_string())
            && on_job.contains(&"job.cancelled".to_string()),
        "{on_job:?}"
    );
    let r = call(
        app,
        "GET",
        "/api/cloud/events?type=auth&limit=100",
        &admin,
        Value::Null,
    )
    .await;
    assert!(
        r.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"].as_str().unwrap().starts_with("auth."))
    );
    let mine = call(
        app,
        "GET",
        "/api/cloud/events?limit=200",
        &alice,
        Value::Null,
    )
    .await
    .json();
    assert!(
        mine["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "job.submitted")
    );
    assert!(
        mine["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "settings.changed")
    );
    let bobs = call(
        app,
        "GET",
        &format!("/api/cloud/events?target={job}"),
        &w.auth("bob"),
        Value::Null,
    )
    .await
    .json();
    assert_eq!(bobs["events"], json!([]), "bob sees nothing of alice's job");
    let bad = call(
        app,
        "GET",
        "/api/cloud/events?since=yesterday",
        &admin,
        Value::Null,
    )
    .await;
    assert_eq!(bad.status, 400);

    // The chain verifies; an edited entry is found.
    let v = call(app, "GET", "/api/cloud/events/verify", &admin, Value::Null)
        .await
        .json();
    assert_eq!(v["valid"], true, "{v}");
    let seq = cancelled["seq"].as_u64().unwrap();
    let key = format!("ev:{seq:012}");
    let store = stored(app);
    let mut entry: Value = serde_json::from_slice(&store.get(&key).unwrap()).unwrap();
    entry["actor"] = json!("someone-else");
    store.set(&key, entry.to_string().as_bytes());
    let v = call(app, "GET", "/api/cloud/events/verify", &admin, Value::Null)
        .await
        .json();
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["problems"][0]["seq"], seq, "{v}");
}
