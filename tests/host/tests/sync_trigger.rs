//! The sync without a scheduler (issue 26, item 3): an external scheduler
//! runs it with the sync token (`sync_token`: `?token=` as Akamai's
//! `spin aka cron` sends it, or a bearer from CI), and every outbound request
//! counts against the hour's budget (`outbound_requests_per_hour`, Fermyon
//! Cloud's 500 an hour): background work stops at its share, user actions use
//! the reserve and then get a 503 with `Retry-After`.

mod common;

use common::{SUBMIT, TestApp, post_json};
use serde_json::{Value, json};

const SYNC: &str = "/api/cloud/jobs/sync";
/// A sync token as an operator would make one (`openssl rand -hex 20`).
const TOKEN: &str = "5f1c0c2e9b7a4d3f8e6a1b2c3d4e5f60718293a4";

async fn with_token(token: &str) -> TestApp {
    TestApp::builder().var("sync_token", token).start().await
}

/// A scheduler sends no user credential: only what it is given here.
fn scheduler(t: &TestApp, bearer: Option<&str>) -> cloudtuner_testhost::App {
    let anon = t.app.anonymous();
    match bearer {
        Some(b) => anon.with_header("authorization", &format!("Bearer {b}")),
        None => anon,
    }
}

fn is_a_pass_report(body: &Value) -> bool {
    ["synced", "updated", "request_budget", "skipped"]
        .iter()
        .all(|k| body.get(k).is_some())
}

#[tokio::test]
async fn the_sync_token_runs_a_pass_by_query_get_and_by_bearer_post_and_is_never_echoed() {
    let t = with_token(TOKEN).await;
    let job = t.submit(&json!({"config": {"--max_train_steps": 3}})).await;
    t.fake.advance(600);

    // Akamai's cron: a plain GET with the token in the query.
    let r = scheduler(&t, None)
        .request("GET", &format!("{SYNC}?token={TOKEN}"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert!(is_a_pass_report(&body), "{body}");
    assert_eq!(body["synced"], 1, "{body}");
    assert!(!r.text().contains(TOKEN));
    // The pass brought the job current (the fake ran it to the end).
    let stored = t.job(&job).await;
    assert_eq!(stored["status"], "completed", "{stored}");

    // CI's cron: a POST with the token as bearer.
    let r = scheduler(&t, Some(TOKEN))
        .request("POST", SYNC, &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(is_a_pass_report(&r.json()), "{}", r.text());
    assert!(!r.text().contains(TOKEN));

    // A user with job.sync keeps working (POST).
    let r = post_json(&t.app, SYNC, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Nothing the app wrote holds the token.
    assert!(!t.app.logs().contains(TOKEN));
}

/// Attack: guessing or replaying a wrong token, or a GET from a signed-in
/// browser (a link, a prefetch), starts a sync. Threat: anyone who can reach
/// the server spends the installation's Replicate requests. A wrong token is
/// refused as a missing credential is.
#[tokio::test]
async fn a_wrong_token_or_a_get_without_the_token_is_refused_401() {
    let t = with_token(TOKEN).await;
    let wrong = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    for r in [
        scheduler(&t, None)
            .request("GET", &format!("{SYNC}?token={wrong}"), &[], "")
            .await,
        scheduler(&t, None)
            .request("POST", &format!("{SYNC}?token={wrong}"), &[], "")
            .await,
        scheduler(&t, Some(&wrong))
            .request("POST", SYNC, &[], "")
            .await,
        scheduler(&t, None).request("GET", SYNC, &[], "").await,
        scheduler(&t, None).request("POST", SYNC, &[], "").await,
        // The admin's GET without the token: GETs run only with the token.
        t.app.request("GET", SYNC, &[], "").await,
    ] {
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(r.json()["error"], "authentication_required", "{}", r.text());
        assert!(r.header("www-authenticate").is_some());
        assert!(!r.text().contains(&wrong));
    }
    // Other methods are still 405, with what the route serves.
    let r = scheduler(&t, None)
        .request("DELETE", &format!("{SYNC}?token={TOKEN}"), &[], "")
        .await;
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.header("allow"), Some("GET, POST"));
}

/// Attack: an operator sets a short, guessable sync token. Threat: it is
/// brute-forced from a URL-only trigger. Tokens under 32 characters are ignored.
#[tokio::test]
async fn a_short_sync_token_is_ignored() {
    let short = "only-twenty-chars-ok";
    let t = with_token(short).await;
    let r = scheduler(&t, None)
        .request("GET", &format!("{SYNC}?token={short}"), &[], "")
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = scheduler(&t, Some(short))
        .request("POST", SYNC, &[], "")
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
}

/// Attack: the sync token, which sits in cron definitions and URLs, is used
/// as a credential elsewhere. Threat: whoever sees the scheduler's URL reads
/// jobs or changes settings. It grants the sync only.
#[tokio::test]
async fn the_sync_token_is_no_credential_on_any_other_route() {
    let t = with_token(TOKEN).await;
    for (method, path) in [
        ("GET", "/api/cloud/jobs"),
        ("GET", "/api/cloud/auth/me"),
        ("POST", SUBMIT),
        ("GET", "/api/cloud/providers/replicate/validate"),
    ] {
        let r = scheduler(&t, Some(TOKEN))
            .request(method, path, &[("content-type", "application/json")], "{}")
            .await;
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        let r = scheduler(&t, None)
            .request(
                method,
                &format!(
                    "{path}{}token={TOKEN}",
                    if path.contains('?') { '&' } else { '?' }
                ),
                &[("content-type", "application/json")],
                "{}",
            )
            .await;
        assert_eq!(r.status, 401, "{method} {path}?token: {}", r.text());
    }
}

/// Requests the fake Replicate has seen (everything the app sent out).
fn sent(t: &TestApp) -> usize {
    t.fake.requests().len()
}

#[tokio::test]
async fn with_an_hourly_budget_background_work_stops_at_its_share_and_users_get_503_past_it() {
    // 6 an hour: 5 for background work, 1 kept for user actions.
    let t = TestApp::builder()
        .var("outbound_requests_per_hour", "6")
        .start()
        .await;
    let body = |key: &str| json!({"config": {"--max_train_steps": 3}, "idempotency_key": key});
    let r = post_json(&t.app, SUBMIT, &body("first")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let job = r.json()["job_id"].as_str().unwrap().to_string();

    // Reads refresh from Replicate (refresh_after_ms = 0) until the
    // background share is spent; then they serve the stored job, no error.
    let mut reads = Vec::new();
    for _ in 0..8 {
        let r = t
            .app
            .request("GET", &format!("/api/cloud/jobs/{job}"), &[], "")
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        reads.push((sent(&t), r.json()["refresh_error"].clone()));
    }
    assert_eq!(reads[6].0, reads[7].0, "reads past the share send nothing");
    assert_eq!(
        reads[7].1,
        Value::Null,
        "a spent budget is no error for a read"
    );
    let before = sent(&t);

    // The sync pass takes what is left (nothing) and says so.
    let r = post_json(&t.app, SYNC, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["provider_requests"], 0, "{report}");
    assert_eq!(report["request_budget"], 0, "{report}");
    assert_eq!(report["skipped"], 1, "{report}");
    let budget = &report["outbound_budget"];
    assert_eq!(budget["limit"], 6, "{report}");
    assert_eq!(budget["used"], 5, "{report}");
    assert_eq!(budget["reserved_for_users"], 1, "{report}");
    assert_eq!(budget["limited_pass"], true, "{report}");
    let resets = budget["resets_in_s"].as_u64().unwrap();
    assert!((1..=3600).contains(&resets), "{report}");
    assert_eq!(sent(&t), before);

    // A user action may use the reserve...
    let r = post_json(&t.app, SUBMIT, &body("second")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // ...and past the whole budget is refused before it starts.
    let before = sent(&t);
    let r = post_json(&t.app, SUBMIT, &body("third")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "outbound_budget_spent", "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("outbound requests this hour"),
        "{}",
        r.text()
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry));
    assert_eq!(sent(&t), before, "a refused submit sends nothing");
    let r = t
        .app
        .request("POST", &format!("/api/cloud/jobs/{job}/cancel"), &[], "")
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    // Reads still answer, from the store.
    assert_eq!(t.job(&job).await["job_id"], job.as_str());
}

#[tokio::test]
async fn without_an_hourly_budget_nothing_is_counted() {
    // (Fermyon Cloud's manifest sets 450: unset it here.)
    let t = TestApp::builder()
        .var("outbound_requests_per_hour", "")
        .start()
        .await;
    t.submit(&json!({"config": {"--max_train_steps": 3}})).await;
    let r = post_json(&t.app, SYNC, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json().get("outbound_budget").is_none(), "{}", r.text());
    let keys = common::stored(&t.app).keys();
    assert!(!keys.iter().any(|k| k.contains("outbound:")), "{keys:?}");
}
