//! Attacks on the event log, the webhook receiver and notifications. The
//! attacker is the anonymous internet (flooding the webhook URL to bury the
//! audit trail, forging webhooks to spend the Replicate token's rate limit)
//! or a tenant (pointing notifications at the server's own network, or
//! registering dead targets by the hundred to delay everyone's deliveries).

use serde_json::{Value, json};

use crate::common::{TestApp, post_json, researcher};

const WEBHOOK: &str = "/api/cloud/webhooks/replicate";
const SECRET_PATH: &str = "/v1/webhooks/default/secret";

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One forged webhook for `job`: current timestamp, a signature nobody made.
async fn forge(t: &TestApp, job: &str, n: usize) -> u16 {
    let (id, ts) = (format!("msg_forged_{n}"), now_secs().to_string());
    let headers = [
        ("webhook-id", id.as_str()),
        ("webhook-timestamp", ts.as_str()),
        (
            "webhook-signature",
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
        ("content-type", "application/json"),
    ];
    let path = format!("{WEBHOOK}?job={job}");
    let body = json!({"id": "p_forged", "status": "succeeded"}).to_string();
    t.app
        .anonymous()
        .request("POST", &path, &headers, body)
        .await
        .status
}

async fn events(t: &TestApp, query: &str) -> Value {
    let r = t
        .app
        .request("GET", &format!("/api/cloud/events?{query}"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Anonymous noise must not flush the audit log: 300 unsigned webhook POSTs
/// (no credentials at all) used to push a job's `job.submitted` out of the
/// 250-entry chain while `/events/verify` still called the history valid.
/// Now they are counted per (type, hour), the job's event stays listed, and
/// verify says exactly what it checked.
#[tokio::test]
async fn three_hundred_unsigned_webhooks_do_not_evict_a_jobs_history() {
    let t = TestApp::builder().start().await;
    let job = t.submit(&json!({"config": {"--max_train_steps": 3}})).await;
    for n in 0..300 {
        let r = t
            .app
            .anonymous()
            .request("POST", &format!("{WEBHOOK}?job={job}&n={n}"), &[], "{}")
            .await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let mine = events(&t, &format!("target={job}&limit=200")).await;
    assert!(
        mine["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "job.submitted"),
        "{mine}"
    );
    let all = events(&t, "limit=200").await;
    let counted: Vec<&Value> = all["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "webhook.rejected")
        .collect();
    assert_eq!(counted.len(), 1, "{all}");
    assert_eq!(counted[0]["count"], 300);
    assert!(counted[0]["samples"].as_array().unwrap().len() <= 3);
    let chained = all["events"].as_array().unwrap();
    assert!(chained.iter().all(|e| e["type"] != "webhook.rejected"));
    let v = t
        .app
        .request("GET", "/api/cloud/events/verify", &[], "")
        .await
        .json();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["dropped"], 0, "{v}");
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(v["checked"].as_u64(), Some(chained.len() as u64), "{v}");
}

/// A failed sign-in's username is the attacker's text: it is stored cut to a
/// bound, not at whatever length was sent.
#[tokio::test]
async fn a_megabyte_username_is_not_stored_whole() {
    let t = TestApp::builder().start().await;
    let name = "a".repeat(200_000);
    let r = t
        .app
        .anonymous()
        .request(
            "POST",
            "/api/cloud/auth/login",
            &[("content-type", "application/json")],
            json!({"username": name, "password": "wrong password!"}).to_string(),
        )
        .await;
    assert!(matches!(r.status, 400 | 401 | 413), "{}", r.text());
    let all = events(&t, "type=auth&limit=200").await;
    assert!(
        all.to_string().len() < 20_000,
        "{} bytes",
        all.to_string().len()
    );
}

/// Forged webhooks with a current timestamp used to make the server fetch
/// Replicate's signing secret again on every request: anyone could spend the
/// token's rate limit. It is fetched at most once a minute.
#[tokio::test]
async fn forged_webhooks_refetch_the_signing_secret_at_most_once_a_minute() {
    let t = TestApp::builder().start().await;
    let job = t.submit(&json!({"config": {"--max_train_steps": 3}})).await;
    let fetches = |t: &TestApp| {
        t.fake
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(SECRET_PATH))
            .count()
    };
    let before = fetches(&t);
    for n in 0..40 {
        assert_eq!(forge(&t, &job, n).await, 401);
    }
    assert!(
        fetches(&t) - before <= 1,
        "{} fetches for 40 forgeries",
        fetches(&t) - before
    );
}

/// A tenant points a notification at the server's own loopback written as an
/// IPv4-mapped IPv6 address, which the old filter did not recognise: the
/// sync would POST to whatever listens there.
#[tokio::test]
async fn a_notification_to_a_mapped_loopback_address_is_refused() {
    let t = TestApp::builder()
        .var("notification_hosts", "https://*:443")
        .start()
        .await;
    let alice = researcher(&t.app, "alice").await;
    let as_alice = t.app.with_header("authorization", &alice);
    for url in [
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://127.1/",
        "https://localhost./",
        "https://198.18.0.1/",
        "https://0.0.0.0/",
    ] {
        let r = post_json(
            &as_alice,
            "/api/cloud/notifications",
            &json!({ "url": url }),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("private_target")),
            "{url}: {}",
            r.text()
        );
    }
    let r = post_json(
        &as_alice,
        "/api/cloud/notifications",
        &json!({"url": "https://hooks.example.com/x"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

/// One tenant registering subscriptions by the thousand (dead targets all)
/// delayed every user's notifications: there is a per-user cap.
#[tokio::test]
async fn a_user_cannot_register_notifications_without_limit() {
    let t = TestApp::builder().start().await;
    let mallory = researcher(&t.app, "mallory").await;
    let as_mallory = t.app.with_header("authorization", &mallory);
    let mut created = 0;
    let last = loop {
        let url = format!("https://dead-{created}.example.com/");
        let r = post_json(
            &as_mallory,
            "/api/cloud/notifications",
            &json!({ "url": url }),
        )
        .await;
        if r.status != 201 || created > 100 {
            break r;
        }
        created += 1;
    };
    assert_eq!(
        (last.status, last.json()["error"].as_str()),
        (409, Some("too_many_notifications")),
        "after {created}: {}",
        last.text()
    );
    assert!(created <= 20, "{created} subscriptions accepted");
    // Another user is not affected by Mallory's count.
    let r = post_json(
        &t.app,
        "/api/cloud/notifications",
        &json!({"url": "https://hooks.example.com/x"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}
