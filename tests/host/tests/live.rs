//! Live status: jobs follow Replicate through signed webhooks alone, through
//! the sync alone (webhooks lost), and through the cron export; bad or
//! replayed webhooks change nothing; lost create answers are adopted.

mod common;

use cloudtuner_testhost::{App, HostConfig};
use common::{TestApp, job, post_json, spin_toml, stored};
use fake_replicate::{Outcome, Script, signing};
use serde_json::{Value, json};

/// The app served on a real port whose URL is its `public_url`, so the fake's
/// webhooks reach it; reads do not refresh (1 h), so only webhooks or the sync
/// move jobs.
async fn live() -> TestApp {
    TestApp::builder()
        .var("refresh_after_ms", "3600000")
        .served()
        .start()
        .await
}

/// A job whose prediction will run 10 s and succeed: (job id, prediction id).
async fn queued_job(l: &TestApp) -> (String, String) {
    l.fake.push_script(Script::training(
        10,
        4,
        100,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    let id = submit(&l.app).await;
    let pid = job(&l.app, &id).await["metadata"]["prediction_id"]
        .as_str()
        .unwrap()
        .to_string();
    (id, pid)
}

async fn submit(app: &App) -> String {
    common::submit(app, &json!({"config": {"--max_train_steps": 4}})).await
}

#[tokio::test]
async fn webhooks_alone_drive_a_job_to_completed_with_progress_and_cost() {
    let l = live().await;
    l.fake.push_script(Script::training(
        10,
        4,
        100,
        Outcome::Succeeded {
            output: json!("https://replicate.delivery/x/lora.safetensors"),
        },
    ));
    let id = submit(&l.app).await;
    assert_eq!(job(&l.app, &id).await["status"], "queued");
    l.fake.advance(10);
    assert_eq!(l.fake.tick().await, 1);
    let j = job(&l.app, &id).await;
    assert_eq!(j["status"], "running", "{j}");
    l.fake.advance(200);
    l.fake.tick().await;
    let j = job(&l.app, &id).await;
    assert_eq!(j["progress"]["step"], 2);
    assert_eq!(j["progress"]["total_steps"], 4);
    assert_eq!(j["progress"]["percent"], 50.0);
    assert!(j["progress"]["loss"].as_f64().unwrap() > 0.0);
    assert_eq!(j["progress"]["stage"], "training");
    assert_eq!(j["loss_history"].as_array().unwrap().len(), 2);
    assert_eq!(j["cost_estimated"], true);
    l.fake.advance(1000);
    l.fake.tick().await;
    let j = job(&l.app, &id).await;
    assert_eq!(j["status"], "completed", "{j}");
    assert_eq!(j["cost_estimated"], false);
    assert!(j["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(
        j["output_url"],
        "https://replicate.delivery/x/lora.safetensors"
    );
    let logs = l
        .app
        .request("GET", &format!("/api/cloud/jobs/{id}/logs"), &[], "")
        .await
        .json();
    assert!(logs["logs"].as_str().unwrap().contains("Training complete"));
    // Every delivery was accepted; none needed a retry.
    assert!(
        l.fake
            .deliveries()
            .iter()
            .all(|d| d.response_status == Some(200))
    );
    // Only webhooks moved it: no prediction GETs after the submit.
    assert!(
        !l.fake
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.starts_with("/v1/predictions/"))
    );
}

#[tokio::test]
async fn the_sync_alone_finishes_jobs_when_webhooks_are_lost_and_cron_does_the_same() {
    let l = live().await;
    l.fake.drop_webhooks(true);
    l.fake.set_default_script(Script::training(
        10,
        4,
        100,
        Outcome::Failed {
            error: "CUDA out of memory".into(),
        },
    ));
    let a = submit(&l.app).await;
    let b = submit(&l.app).await;
    l.fake.advance(250);
    let r = l.app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["synced"], 2);
    assert_eq!(r.json()["updated"], 2);
    assert_eq!(job(&l.app, &a).await["progress"]["step"], 2);
    if !common::platform_has_scheduler() {
        return; // Fermyon Cloud and Akamai run no cron plugin: the sync route above is theirs.
    }
    // The cron app: same store, only the sync component, fired as the plugin would.
    let cron = App::load(&common::same_store(
        HostConfig::new(spin_toml().with_file_name("spin-cron.toml"), l.state.path())
            .variable("replicate_api_base", l.fake.url())
            .variable("replicate_api_token", fake_replicate::DEFAULT_TOKEN),
        &l.app,
    ))
    .unwrap();
    assert_eq!(cron.manifest().trigger.cron.len(), 1);
    l.fake.advance(1000);
    cron.fire_cron("jobs-sync", 1).await.unwrap();
    for id in [&a, &b] {
        let j = job(&l.app, id).await;
        assert_eq!(j["status"], "failed");
        assert_eq!(j["error_message"], "CUDA out of memory");
    }
    assert!(cron.logs().contains("sync: {"));
    // Anonymous callers and plain researchers cannot trigger a sync.
    assert_eq!(
        l.app
            .anonymous()
            .request("POST", "/api/cloud/jobs/sync", &[], "")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn bad_stale_missing_and_replayed_webhooks_change_nothing() {
    let l = live().await;
    let (id, pid) = queued_job(&l).await;
    l.fake.advance(10);
    // A wrong secret, then a stale and a future timestamp: 401, job untouched.
    l.fake.sign_webhooks_with(Some(signing::new_secret()));
    l.fake.tick().await;
    assert_eq!(
        l.fake.deliveries().last().unwrap().response_status,
        Some(401)
    );
    l.fake.sign_webhooks_with(None);
    for skew in [-400, 400] {
        l.fake.webhook_timestamp_skew(skew);
        l.fake.advance(100);
        l.fake.tick().await;
        assert_eq!(
            l.fake.deliveries().last().unwrap().response_status,
            Some(401),
            "skew {skew}"
        );
    }
    assert_eq!(job(&l.app, &id).await["status"], "queued");
    // Missing headers.
    let body = l.fake.prediction(&pid).unwrap().to_string();
    let path = format!("/api/cloud/webhooks/replicate?job={id}");
    let r = l
        .app
        .anonymous()
        .request("POST", &path, &[], body.clone())
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("invalid_signature"))
    );
    // A correctly signed one is applied once; its replay is a no-op.
    let secret = l.fake.webhook_secret();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sig = signing::sign(&secret, "msg_replayed", ts, body.as_bytes()).unwrap();
    let ts = ts.to_string();
    let h = [
        ("webhook-id", "msg_replayed"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    let r = l
        .app
        .anonymous()
        .request("POST", &path, &h, body.clone())
        .await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("received")),
        "{}",
        r.text()
    );
    assert_eq!(job(&l.app, &id).await["status"], "running");
    let r = l
        .app
        .anonymous()
        .request("POST", &path, &h, body.clone())
        .await;
    assert_eq!(r.json()["status"], "duplicate");
    // The alias path works; an unknown job is acknowledged and ignored.
    let r = l
        .app
        .anonymous()
        .request("POST", "/api/webhooks/replicate?job=nope", &h, body.clone())
        .await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("ignored"))
    );
    // A genuine event posted to another job's URL changes nothing there.
    let other = submit(&l.app).await;
    let foreign_sig =
        signing::sign(&secret, "msg_foreign", ts.parse().unwrap(), body.as_bytes()).unwrap();
    let foreign = [
        ("webhook-id", "msg_foreign"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", foreign_sig.as_str()),
    ];
    let r = l
        .app
        .anonymous()
        .request(
            "POST",
            &format!("/api/cloud/webhooks/replicate?job={other}"),
            &foreign,
            body.clone(),
        )
        .await;
    assert_eq!(
        r.json()["reason"],
        "the prediction is not this job's",
        "{}",
        r.text()
    );
    assert_eq!(job(&l.app, &other).await["status"], "queued");
    // Out of order: once completed, an older "processing" event is stale.
    l.fake.webhook_timestamp_skew(0);
    l.fake.advance(2000);
    l.fake.tick().await;
    assert_eq!(job(&l.app, &id).await["status"], "completed");
    let stale_sig =
        signing::sign(&secret, "msg_late", ts.parse().unwrap(), body.as_bytes()).unwrap();
    let late = [
        ("webhook-id", "msg_late"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", stale_sig.as_str()),
    ];
    let r = l.app.anonymous().request("POST", &path, &late, body).await;
    assert_eq!(r.json()["status"], "stale");
    let j = job(&l.app, &id).await;
    assert_eq!(j["status"], "completed");
    let logs = l
        .app
        .request("GET", &format!("/api/cloud/jobs/{id}/logs"), &[], "")
        .await
        .json();
    assert!(
        logs["logs"].as_str().unwrap().contains("Training complete"),
        "logs did not regress"
    );
}

#[tokio::test]
async fn a_prediction_whose_create_answer_was_lost_is_adopted_by_the_sync() {
    let l = live().await;
    l.fake.drop_webhooks(true);
    l.fake.fault(fake_replicate::Fault::new(
        Some("POST"),
        "/v1/predictions",
        fake_replicate::FaultKind::DropResponse,
        1,
    ));
    let r = post_json(
        &l.app,
        "/api/cloud/jobs/submit",
        &json!({"config": {"lost": true}}),
    )
    .await;
    assert_eq!(r.status, 502);
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    assert!(job(&l.app, &id).await["metadata"]["prediction_id"].is_null());
    // Someone else's prediction of another model is never touched.
    let other = l.fake.add_model("someone", "else");
    let _ = other;
    let r = l.app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(r.json()["adopted"], 1, "{}", r.text());
    let j = job(&l.app, &id).await;
    assert_eq!(
        j["metadata"]["prediction_id"].as_str(),
        l.fake.prediction_ids().first().map(String::as_str)
    );
    assert_eq!(j["status"], "queued");
    assert!(j["error_message"].is_null());
}

#[tokio::test]
async fn notification_receivers_get_signed_events_and_failures_are_retried() {
    let l = live().await;
    l.fake.drop_webhooks(true);
    let receiver = fake_replicate::receiver::Receiver::start(1).await;
    let (url, got) = (receiver.url.clone(), receiver.received.clone());
    // Private targets need an admin's explicit allow_private.
    let r = post_json(
        &l.app,
        "/api/cloud/notifications",
        &json!({"url": url, "events": ["job.running", "job.completed"]}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("private_target"))
    );
    let r = post_json(
        &l.app,
        "/api/cloud/notifications",
        &json!({"url": url, "events": ["job.running", "job.completed"], "allow_private": true}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["notification"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let list = l
        .app
        .request("GET", "/api/cloud/notifications", &[], "")
        .await;
    assert!(
        !list.text().contains(&secret),
        "the secret is shown once only"
    );

    l.fake.push_script(Script::training(
        10,
        2,
        100,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    let id = submit(&l.app).await;
    l.fake.advance(20);
    // The sync sees "running" and delivers job.running: the receiver fails it.
    let r = l
        .app
        .request("POST", "/api/cloud/jobs/sync", &[], "")
        .await
        .json();
    assert_eq!(
        (
            r["notifications_sent"].as_u64(),
            r["notifications_failed"].as_u64()
        ),
        (Some(0), Some(1)),
        "{r} outbox={:?} keys={:?}",
        stored(&l.app)
            .get("notif:outbox")
            .map(|v| String::from_utf8_lossy(&v).into_owned()),
        stored(&l.app).keys()
    );
    // Not due yet; then due after the 5 s backoff: retried with the same webhook-id.
    let r = l
        .app
        .request("POST", "/api/cloud/jobs/sync", &[], "")
        .await
        .json();
    assert_eq!(r["notifications_sent"], 0);
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    let r = l
        .app
        .request("POST", "/api/cloud/jobs/sync", &[], "")
        .await
        .json();
    assert_eq!(r["notifications_sent"], 1, "{r}");
    l.fake.advance(1000);
    l.app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    let got = got.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        3,
        "running (failed), running (retried), completed"
    );
    assert_eq!(got[0].0["webhook-id"], got[1].0["webhook-id"]);
    for (h, body) in &got {
        let ts: u64 = h["webhook-timestamp"].to_str().unwrap().parse().unwrap();
        let expected = signing::sign(&secret, h["webhook-id"].to_str().unwrap(), ts, body).unwrap();
        assert_eq!(
            h["webhook-signature"].to_str().unwrap(),
            expected,
            "verifiable with the documented scheme"
        );
    }
    let events: Vec<Value> = got
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(events[1]["type"], "job.running");
    assert_eq!(events[2]["type"], "job.completed");
    assert_eq!(events[2]["data"]["job"]["job_id"], id.as_str());
    assert_eq!(events[2]["data"]["job"]["status"], "completed");
}

#[tokio::test]
async fn a_webhook_with_megabytes_of_logs_is_accepted_and_the_tail_kept() {
    let l = live().await;
    let (id, pid) = queued_job(&l).await;
    let mut prediction = l.fake.prediction(&pid).unwrap();
    let line = format!(
        "epoch 1/1 step 3/4 lr=1e-4 loss=0.2500 {}\n",
        "x".repeat(60)
    );
    prediction["status"] = json!("processing");
    prediction["logs"] = json!(line.repeat(5 * 1024 * 1024 / line.len()));
    let body = prediction.to_string();
    assert!(body.len() > 5_000_000);
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sig = signing::sign(&l.fake.webhook_secret(), "msg_big", ts, body.as_bytes()).unwrap();
    let ts = ts.to_string();
    let h = [
        ("webhook-id", "msg_big"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    let r = l
        .app
        .anonymous()
        .request(
            "POST",
            &format!("/api/cloud/webhooks/replicate?job={id}"),
            &h,
            body,
        )
        .await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("received")),
        "{}",
        r.text()
    );
    let j = job(&l.app, &id).await;
    assert_eq!(
        (j["status"].as_str(), j["progress"]["step"].as_u64()),
        (Some("running"), Some(3))
    );
    let logs = l
        .app
        .request(
            "GET",
            &format!("/api/cloud/jobs/{id}/logs?offset=0"),
            &[],
            "",
        )
        .await
        .json();
    assert_eq!(logs["truncated"], true);
    assert!(logs["logs"].as_str().unwrap().len() <= 768 * 1024);
    assert!(logs["next_offset"].as_u64().unwrap() > 5_000_000);
}

#[tokio::test]
async fn log_streams_send_lines_as_they_arrive_then_the_final_status_and_resume_by_offset() {
    let t = TestApp::builder().start().await;
    t.fake.push_script(Script::training(
        2,
        3,
        10,
        Outcome::Failed {
            error: "CUDA out of memory".into(),
        },
    ));
    let id = t.submit(&json!({"config": {"--max_train_steps": 3}})).await;
    t.fake.advance(12); // booted, and step 1 written
    let path = format!("/api/cloud/jobs/{id}/logs/stream");
    let resp = t
        .app
        .request_streaming("GET", &path, &[("accept", "text/event-stream")], "")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut text = String::new();
    common::read_events(&mut body, &mut text, 20, |t| t.contains("step 1/3")).await;
    assert_eq!(
        common::data_lines(&text),
        [
            "Loading model...",
            "Preprocessing dataset: 12 images",
            "Warming up",
            "epoch 1/1 step 1/3 lr=1e-4 loss=0.4545"
        ]
    );
    assert!(!text.contains("event: done"), "the job is still running");
    // New output reaches the open stream (it is streamed, not buffered).
    t.fake.advance(10);
    common::read_events(&mut body, &mut text, 20, |t| t.contains("step 2/3")).await;
    t.fake.advance(30);
    common::read_events(&mut body, &mut text, 20, |t| t.contains("event: done")).await;
    assert!(
        text.ends_with("data: Traceback: training crashed\n\nevent: done\ndata: failed\n\n"),
        "{text}"
    );
    use http_body_util::BodyExt;
    assert!(body.frame().await.is_none(), "the stream ends after done");

    // A reconnect with the id of the second line gets only what followed it.
    let second_id = text
        .split("\n\n")
        .nth(1)
        .and_then(|e| e.strip_prefix("id: "))
        .and_then(|e| e.split('\n').next())
        .unwrap()
        .to_string();
    let again = t
        .app
        .request("GET", &path, &[("last-event-id", &second_id)], "")
        .await;
    let lines = common::data_lines(again.text().as_str())
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert_eq!(lines[0], "Warming up", "{}", again.text());
    assert_eq!(lines.last().unwrap(), "failed");
    let by_query = t
        .app
        .request("GET", &format!("{path}?offset={second_id}"), &[], "")
        .await;
    assert_eq!(by_query.text(), again.text());
    let bad = t
        .app
        .request("GET", &format!("{path}?offset=x"), &[], "")
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let missing = t
        .app
        .request("GET", "/api/cloud/jobs/nope/logs/stream", &[], "")
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn a_log_stream_whose_time_is_up_says_how_to_resume() {
    let t = TestApp::builder()
        .var("log_stream_seconds", "1")
        .start()
        .await;
    t.fake.push_script(Script::stuck());
    let id = t.submit(&json!({"config": {"--max_train_steps": 3}})).await;
    let started = std::time::Instant::now();
    let r = t
        .app
        .request("GET", &format!("/api/cloud/jobs/{id}/logs/stream"), &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let text = r.text();
    assert!(text.contains("retry: 2000\nevent: reconnect\n"), "{text}");
    assert!(text.contains("reconnect with offset=0"), "{text}");
    assert!(!text.contains("event: done"), "{text}");
}

/// Issue 14, defect 2: one sync pass brings every active job up to date (60
/// here, 57 of them finished at Replicate with no webhook), from Replicate's
/// list, with far fewer requests than jobs.
#[tokio::test]
async fn one_sync_pass_updates_every_active_job_from_replicates_list() {
    let l = live().await;
    l.fake.drop_webhooks(true);
    for i in 0..60 {
        l.fake.push_script(if i % 20 == 7 {
            Script::stuck()
        } else {
            Script::training(
                1,
                2,
                1,
                Outcome::Succeeded {
                    output: json!("https://replicate.delivery/x/lora.safetensors"),
                },
            )
        });
    }
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(submit(&l.app).await);
    }
    l.fake.advance(60);
    let before = l.fake.requests().len();
    let r = l.app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let requests = l.fake.requests()[before..].to_vec();
    let report = r.json();
    println!(
        "one sync pass over 60 active jobs (57 finished): {} Replicate requests \
         ({} list pages, {} prediction GETs), report {report}",
        requests.len(),
        requests
            .iter()
            .filter(|q| q.path.starts_with("/v1/predictions?") || q.path == "/v1/predictions")
            .count(),
        requests
            .iter()
            .filter(|q| q.path.starts_with("/v1/predictions/"))
            .count(),
    );
    assert_eq!(report["updated"], 57, "{report}");
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["skipped"], 0, "{report}");
    assert!(
        requests.len() <= 25,
        "within the default budget: {}",
        requests.len()
    );
    assert_eq!(report["provider_requests"], requests.len());
    let completed = l
        .app
        .request("GET", "/api/cloud/jobs?status=completed&limit=100", &[], "")
        .await
        .json();
    assert_eq!(completed["total"], 57, "{completed}");
    // Each finished job has its real cost, and its logs (fetched now, or on
    // the first read of a job whose logs the budget left for later).
    let done = job(&l.app, &ids[0]).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["cost_estimated"], false);
    let last = &ids[59];
    let logs = l
        .app
        .request("GET", &format!("/api/cloud/jobs/{last}/logs"), &[], "")
        .await
        .json();
    assert!(
        logs["logs"].as_str().unwrap().contains("Training complete"),
        "{logs}"
    );
    // A small budget reports what it left for the next pass.
    let small = TestApp::builder()
        .var("refresh_after_ms", "3600000")
        .var("sync_request_budget", "1")
        .served()
        .start()
        .await;
    small.fake.set_page_size(2);
    small.fake.set_default_script(Script::training(
        1,
        2,
        1,
        Outcome::Failed {
            error: "boom".into(),
        },
    ));
    for _ in 0..4 {
        submit(&small.app).await;
    }
    small.fake.advance(30);
    let r = small
        .app
        .request("POST", "/api/cloud/jobs/sync", &[], "")
        .await;
    let report = r.json();
    assert_eq!(report["provider_requests"], 1, "{report}");
    assert_eq!(report["updated"], 2, "one page of two: {report}");
    assert_eq!(report["skipped"], 2, "{report}");
}
