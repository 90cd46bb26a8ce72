//! Issue 25, item 3: a follower of `GET /api/cloud/jobs/{id}/logs/stream`
//! gets every log line before `event: done`, however the job's end reaches
//! the server. The interleavings of the end's writes are tested
//! deterministically in the domain (`jobs::log_stream::follow_tests`); this
//! follows real jobs to their end against the served app, ten in a row.

mod common;

use common::TestApp;
use fake_replicate::{Outcome, Script};
use serde_json::json;

/// Ten jobs followed from their start to their end, which arrives by a signed
/// webhook (end and final logs together) or, with webhooks lost, by the sync
/// from Replicate's list (the end without logs, fetched after): each stream
/// carries every line of the stored logs, in order, then `done`, and ends.
#[tokio::test]
async fn a_followed_job_sends_every_last_line_before_done_ten_times_in_a_row() {
    let t = TestApp::builder()
        // Reads never refresh, so only the webhook or the sync ends a job.
        .var("refresh_after_ms", "3600000")
        .served()
        .start()
        .await;
    t.fake.set_default_script(Script::training(
        2,
        3,
        10,
        Outcome::Failed {
            error: "CUDA out of memory".into(),
        },
    ));
    for round in 0..10 {
        let by_sync = round % 2 == 1;
        t.fake.drop_webhooks(by_sync);
        let id = t.submit(&json!({"config": {"--max_train_steps": 3}})).await;
        t.fake.advance(12); // booted, and step 1 written
        if !by_sync {
            t.fake.tick().await;
        }
        let path = format!("/api/cloud/jobs/{id}/logs/stream");
        let resp = t.app.request_streaming("GET", &path, &[], "").await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut text = String::new();
        if !by_sync {
            common::read_events(&mut body, &mut text, 30, |t| t.contains("step 1/3")).await;
        }
        t.fake.advance(1000);
        if by_sync {
            let r = t.app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
            assert_eq!(r.status, 200, "{}", r.text());
        } else {
            t.fake.tick().await;
        }
        common::read_events(&mut body, &mut text, 30, |t| t.contains("event: done")).await;
        use http_body_util::BodyExt;
        assert!(body.frame().await.is_none(), "the stream ends after done");
        let logs = t
            .app
            .request("GET", &format!("/api/cloud/jobs/{id}/logs"), &[], "")
            .await
            .json();
        let stored = logs["logs"].as_str().unwrap();
        assert!(stored.contains("Traceback"), "round {round}: {stored}");
        let mut want: Vec<&str> = stored.lines().collect();
        want.push("failed");
        assert_eq!(
            common::data_lines(&text),
            want,
            "round {round} (ended by {}): {text}",
            if by_sync { "the sync" } else { "a webhook" }
        );
        assert!(text.ends_with("event: done\ndata: failed\n\n"), "{text}");
    }
}
