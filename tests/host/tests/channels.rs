//! Notification channels (`/api/cloud/notifications/channels`, SimpleTuner's
//! routes; issue 27 item 5): a Slack channel receives Slack's
//! incoming-webhook messages at a local receiver on a test send and when a
//! job ends; the history lists the deliveries; a dead channel does not delay
//! a live one; another user cannot see or test a channel; the URL is masked.

mod common;

use cloudtuner_testhost::App;
use common::{TestApp, get, new_user, post_json};
use fake_replicate::receiver::{Received, Receiver};
use fake_replicate::{FakeReplicate, Outcome, Script};
use serde_json::{Value, json};

/// Jobs that succeed a few fake seconds after they are created.
fn quick_jobs(fake: &FakeReplicate) {
    fake.set_default_script(Script::training(
        5,
        3,
        10,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
}

/// Creates a channel as `app` (asserting 201); returns its id.
async fn create(app: &App, body: Value) -> u64 {
    let r = post_json(app, "/api/cloud/notifications/channels", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_u64().unwrap()
}

/// A loopback Slack channel of the admin's (loopback needs `allow_private`).
async fn slack(app: &App, name: &str, url: &str) -> u64 {
    create(
        app,
        json!({"channel_type": "slack", "name": name, "webhook_url": url, "allow_private": true}),
    )
    .await
}

fn bodies(got: &Received) -> Vec<Value> {
    got.lock()
        .unwrap()
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect()
}

async fn sync(app: &App) -> Value {
    let r = app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Runs a quick job to its end and delivers what it announced.
async fn run_a_job(t: &TestApp) -> String {
    quick_jobs(&t.fake);
    let id = t
        .submit(&json!({"config": {"--max_train_steps": 100}}))
        .await;
    t.fake.advance(60);
    sync(&t.app).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_channel_gets_slack_messages_on_a_test_send_and_when_a_job_completes() {
    let t = TestApp::builder().served().start().await;
    let receiver = Receiver::start(0).await;
    let id = slack(&t.app, "ops", &receiver.url).await;

    let r = post_json(
        &t.app,
        &format!("/api/cloud/notifications/channels/{id}/test"),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["success"], true, "{}", r.text());
    assert_eq!(receiver.count(), 1);
    let test = &bodies(&receiver.received)[0];
    assert!(
        test["text"].is_string() && test["blocks"].is_array(),
        "{test}"
    );

    let job = run_a_job(&t).await;
    let got = bodies(&receiver.received);
    let done = got
        .iter()
        .find(|m| m["text"].as_str().unwrap().contains("Job Completed"))
        .unwrap_or_else(|| panic!("no completion message in {got:?}"));
    let blocks = done["blocks"].to_string();
    let link = format!("<{}/#/job/{job}|Open the job in cloudtuner>", t.url);
    assert!(blocks.contains(&link), "{blocks}");
    assert!(blocks.contains("*Status:*\\ncompleted"), "{blocks}");
    assert!(blocks.contains("*Cost:*\\n$"), "{blocks}");
    let content_type = receiver.received.lock().unwrap()[1].0["content-type"].clone();
    assert_eq!(content_type, "application/json");

    let (status, history) = get(&t.app, "/api/cloud/notifications/history?limit=50").await;
    assert_eq!(status, 200, "{history}");
    let entries = history["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"job.completed") && kinds.contains(&"test"),
        "{kinds:?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["delivery_status"] == "delivered" && e["channel_id"] == id),
        "{history}"
    );
    let completed = entries
        .iter()
        .find(|e| e["event_type"] == "job.completed")
        .unwrap();
    assert_eq!(completed["job_id"], job.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_channel_does_not_delay_a_live_one() {
    let t = TestApp::builder().start().await;
    let dead = Receiver::start(usize::MAX).await;
    let live = Receiver::start(0).await;
    let dead_id = slack(&t.app, "dead", &dead.url).await;
    let live_id = slack(&t.app, "live", &live.url).await;

    run_a_job(&t).await;
    let got = bodies(&live.received);
    assert!(
        got.iter()
            .any(|m| m["text"].as_str().unwrap().contains("Job Completed")),
        "the live channel got the job's end in the same pass: {got:?}"
    );
    assert!(dead.count() >= 1, "the dead channel was tried");
    let (_, history) = get(
        &t.app,
        &format!("/api/cloud/notifications/history?channel_id={dead_id}"),
    )
    .await;
    let entries = history["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{history}");
    assert!(
        entries.iter().all(|e| e["delivery_status"] == "failed"
            && e["error_message"] == "the receiver answered HTTP 500"
            && e["channel_id"] == dead_id),
        "{history}"
    );
    let (_, history) = get(
        &t.app,
        &format!("/api/cloud/notifications/history?channel_id={live_id}"),
    )
    .await;
    assert!(
        history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["delivery_status"] == "delivered"),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_see_or_test_my_channel_and_the_url_is_masked() {
    let t = TestApp::builder().start().await;
    let secret_path = "/services/T0001/B0002/sEcReTtOkEn";
    let as_user = |token: &str| {
        t.app
            .anonymous()
            .with_header("authorization", &format!("Bearer {token}"))
    };
    let (_, alice) = new_user(&t.app, "alice", "researcher").await;
    let (_, bob) = new_user(&t.app, "bob", "lead").await;
    let (alice, bob) = (as_user(&alice), as_user(&bob));
    let url = format!("https://hooks.slack.com{secret_path}");
    let id = create(
        &alice,
        json!({"channel_type": "slack", "name": "mine", "webhook_url": url}),
    )
    .await;

    let (status, mine) = get(&alice, &format!("/api/cloud/notifications/channels/{id}")).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["webhook_url"], "https://hooks.slack.com/***");
    let (_, list) = get(&alice, "/api/cloud/notifications/channels").await;
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains("sEcReT"), "{list}");

    let (status, _) = get(&bob, &format!("/api/cloud/notifications/channels/{id}")).await;
    assert_eq!(status, 404);
    let r = post_json(
        &bob,
        &format!("/api/cloud/notifications/channels/{id}/test"),
        &json!({}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("channel_not_found"))
    );
    let r = bob
        .request(
            "DELETE",
            &format!("/api/cloud/notifications/channels/{id}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 404);
    let (_, list) = get(&bob, "/api/cloud/notifications/channels").await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, history) = get(
        &bob,
        &format!("/api/cloud/notifications/history?channel_id={id}"),
    )
    .await;
    assert_eq!(history["total"], 0, "{history}");

    // The event log has the change, never the URL.
    let (status, log) = get(&t.app, "/api/cloud/events?limit=200").await;
    assert_eq!(status, 200, "{log}");
    let log = log.to_string();
    assert!(log.contains("notification.channel.created"), "{log}");
    assert!(!log.contains("sEcReT"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_routes_do_not_take_the_subscriptions_id_route() {
    let t = TestApp::builder().start().await;
    let r = post_json(
        &t.app,
        "/api/cloud/notifications",
        &json!({"url": "https://hooks.example.com/x"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sub = r.json()["notification"]["id"].as_str().unwrap().to_string();
    for path in ["channels", "history", "events", "status"] {
        let (status, body) = get(&t.app, &format!("/api/cloud/notifications/{path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, events) = get(&t.app, "/api/cloud/notifications/events").await;
    assert!(events.to_string().contains("approval.required"), "{events}");
    let r = t
        .app
        .request(
            "DELETE",
            &format!("/api/cloud/notifications/{sub}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, subs) = get(&t.app, "/api/cloud/notifications").await;
    assert_eq!(subs["total"], 0, "{subs}");
}
