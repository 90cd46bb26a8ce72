//! Approvals (issue 27, item 4) through the real components: a rule holds a
//! submit (nothing reaches Replicate) until a lead approves it; a rejection
//! ends it with the reason; racing approvers make one prediction; who may
//! decide and see; an idempotency key replays the held submit.

mod common;

use cloudtuner_testhost::App;
use common::{RedisServer, SUBMIT, TestApp, add_trainers, new_user, post_json, researcher};
use serde_json::{Value, json};

/// ~$9: an H100 ($5.49/h) for at most 98 minutes, the worst case the
/// submit reserves and the gate prices.
fn nine_dollars() -> Value {
    json!({"config": {"--max_train_steps": 10}, "hardware_profile": "h100",
        "max_runtime_minutes": 98})
}

/// The admin (the app's token) creates `cost_exceeds 5`.
async fn cost_rule(app: &App) {
    let r = post_json(
        app,
        "/api/approvals/rules",
        &json!({"name": "Expensive runs", "condition": "cost_exceeds", "threshold": "5"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

fn as_user(app: &App, bearer: &str) -> App {
    app.with_header("authorization", bearer)
}

async fn lead(app: &App, name: &str) -> App {
    as_user(app, &lead_bearer(app, name).await)
}

/// A new lead's bearer header value (to send to any replica).
async fn lead_bearer(app: &App, name: &str) -> String {
    format!("Bearer {}", new_user(app, name, "lead").await.1)
}

/// Submits as `who`, asserting the submit is held: the request id.
async fn held(who: &App, body: &Value) -> u64 {
    let r = post_json(who, SUBMIT, body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let b = r.json();
    assert_eq!(b["approval_required"], true);
    assert_eq!(b["job_id"], Value::Null);
    b["approval_request_id"].as_u64().unwrap()
}

#[tokio::test]
async fn a_cost_rule_holds_a_nine_dollar_submit_until_a_lead_approves_it() {
    let t = TestApp::builder().start().await;
    cost_rule(&t.app).await;
    let rita = as_user(&t.app, &researcher(&t.app, "rita").await);
    let r = post_json(&rita, SUBMIT, &nine_dollars()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json();
    let cost = body["estimated_cost_usd"].as_f64().unwrap();
    assert!((8.5..9.5).contains(&cost), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("approval"),
        "{body}"
    );
    let id = body["approval_request_id"].as_u64().unwrap();
    assert!(t.fake.prediction_ids().is_empty(), "nothing sent yet");
    // The submitter sees why and where it stands.
    let mine = rita.request("GET", "/api/approvals/me", &[], "").await;
    assert_eq!(mine.json()["requests"][0]["status"], "pending");
    let leo = lead(&t.app, "leo").await;
    let pending = leo
        .request("GET", "/api/approvals?status=pending", &[], "")
        .await;
    assert_eq!(pending.status, 200, "{}", pending.text());
    assert_eq!(pending.json()["approvals"][0]["username"], "rita");
    let r = post_json(
        &leo,
        &format!("/api/approvals/requests/{id}/approve"),
        &json!({"notes": "ok for the demo"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["dispatched"], true, "{}", r.text());
    assert_eq!(t.fake.prediction_ids().len(), 1);
    let job = t.job(r.json()["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "queued", "{job}");
    let events = t
        .app
        .request("GET", "/api/cloud/events", &[], "")
        .await
        .text();
    for kind in [
        "approval.requested",
        "approval.approved",
        "approval.dispatched",
    ] {
        assert!(events.contains(kind), "{kind} in the event log");
    }
}

#[tokio::test]
async fn a_rejection_ends_the_request_with_its_reason_for_the_submitter() {
    let t = TestApp::builder().start().await;
    cost_rule(&t.app).await;
    let rita = as_user(&t.app, &researcher(&t.app, "rita").await);
    let id = held(&rita, &nine_dollars()).await;
    let leo = lead(&t.app, "leo").await;
    let r = post_json(
        &leo,
        &format!("/api/approvals/{id}/reject"),
        &json!({"reason": "Cost too high this week"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mine = rita
        .request("GET", &format!("/api/approvals/requests/{id}"), &[], "")
        .await;
    assert_eq!(mine.status, 200, "{}", mine.text());
    assert_eq!(mine.json()["status"], "rejected");
    assert_eq!(mine.json()["review_notes"], "Cost too high this week");
    // Approving it now is a conflict, and nothing was ever sent.
    let late = post_json(&leo, &format!("/api/approvals/{id}/approve"), &json!({})).await;
    assert_eq!(late.status, 409, "{}", late.text());
    assert!(t.fake.prediction_ids().is_empty());
}

#[tokio::test]
async fn two_racing_approvals_make_one_prediction() {
    let t = TestApp::builder().start().await;
    cost_rule(&t.app).await;
    let rita = as_user(&t.app, &researcher(&t.app, "rita").await);
    let id = held(&rita, &nine_dollars()).await;
    let approvers = vec![
        lead(&t.app, "leo").await,
        t.app.clone(),
        lead(&t.app, "lena").await,
    ];
    assert_eq!(race_approvals(approvers, id).await, vec![200, 409, 409]);
    assert_eq!(t.fake.prediction_ids().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_approvals_over_two_replicas_on_redis_make_one_prediction() {
    let redis = RedisServer::start();
    let fake = fake_replicate::FakeReplicate::start().await;
    add_trainers(&fake);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(
            TestApp::builder()
                .redis(&redis, "approvals:")
                .start_against(&fake)
                .await,
        );
    }
    let (one, two) = (&replicas[0].app, &replicas[1].app);
    cost_rule(one).await;
    let rita = as_user(one, &researcher(one, "rita").await);
    let id = held(&rita, &nine_dollars()).await;
    let (leo, lena) = (
        lead_bearer(one, "leo").await,
        lead_bearer(one, "lena").await,
    );
    // Each lead approves through both replicas at once.
    let approvers = vec![
        as_user(one, &leo),
        as_user(two, &leo),
        as_user(one, &lena),
        as_user(two, &lena),
    ];
    assert_eq!(
        race_approvals(approvers, id).await,
        vec![200, 409, 409, 409]
    );
    assert_eq!(fake.prediction_ids().len(), 1);
}

/// Everyone in `approvers` approves request `id` at once: the statuses, sorted.
async fn race_approvals(approvers: Vec<App>, id: u64) -> Vec<u16> {
    let tasks: Vec<_> = approvers
        .into_iter()
        .map(|who| {
            tokio::spawn(async move {
                post_json(&who, &format!("/api/approvals/{id}/approve"), &json!({}))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();
    statuses
}

#[tokio::test]
async fn a_researcher_can_neither_approve_nor_see_anothers_request() {
    let t = TestApp::builder().start().await;
    cost_rule(&t.app).await;
    let rita = as_user(&t.app, &researcher(&t.app, "rita").await);
    let id = held(&rita, &nine_dollars()).await;
    let sam = as_user(&t.app, &researcher(&t.app, "sam").await);
    let r = post_json(&sam, &format!("/api/approvals/{id}/approve"), &json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = sam
        .request("GET", &format!("/api/approvals/requests/{id}"), &[], "")
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = sam.request("GET", "/api/approvals", &[], "").await;
    assert_eq!(r.status, 403, "{}", r.text());
    let mine = sam.request("GET", "/api/approvals/me", &[], "").await;
    assert_eq!(mine.json()["requests"], json!([]));
    assert!(t.fake.prediction_ids().is_empty());
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_held_request() {
    let t = TestApp::builder().start().await;
    cost_rule(&t.app).await;
    let rita = as_user(&t.app, &researcher(&t.app, "rita").await);
    let mut body = nine_dollars();
    body["idempotency_key"] = json!("nightly-1");
    let first = held(&rita, &body).await;
    let r = post_json(&rita, SUBMIT, &body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["approval_request_id"], first);
    assert_eq!(r.json()["idempotent_hit"], true);
    let leo = lead(&t.app, "leo").await;
    let r = post_json(&leo, &format!("/api/approvals/{first}/approve"), &json!({})).await;
    let job = r.json()["job_id"].as_str().unwrap().to_string();
    // Once approved, the key replays the job the approval made.
    let r = post_json(&rita, SUBMIT, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["job_id"], job.as_str());
    assert_eq!(t.fake.prediction_ids().len(), 1);
}

#[tokio::test]
async fn a_rerun_goes_through_the_same_gate() {
    let t = TestApp::builder().start().await;
    let rita = as_user(&t.app, &researcher(&t.app, "rita").await);
    // Before any rule: the job runs; then it is cancelled.
    let r = post_json(&rita, SUBMIT, &nine_dollars()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let first = r.json()["job_id"].as_str().unwrap().to_string();
    let r = rita
        .request("POST", &format!("/api/cloud/jobs/{first}/cancel"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    cost_rule(&t.app).await;
    let r = post_json(&rita, &format!("/api/cloud/jobs/{first}/retry"), &json!({})).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["approval"]["retry_of"], first.as_str());
    let id = r.json()["approval_request_id"].as_u64().unwrap();
    assert_eq!(t.fake.prediction_ids().len(), 1, "the re-run waits");
    let leo = lead(&t.app, "leo").await;
    let r = post_json(&leo, &format!("/api/approvals/{id}/approve"), &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["dispatched"], true, "{}", r.text());
    assert_eq!(t.fake.prediction_ids().len(), 2);
    let job = t.job(r.json()["job_id"].as_str().unwrap()).await;
    assert_eq!(job["retry_of"], first.as_str(), "{job}");
}
