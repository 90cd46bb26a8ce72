//! Attacks on jobs: where Replicate posts a job's news, the money a submit
//! reserves, another user's secrets in a job, and a submit that dies half-way.

use cloudtuner_testhost::App;
use fake_replicate::{Outcome, Script};
use serde_json::{Value, json};

use crate::common::{PASSWORD, SUBMIT, TestApp, post_json, stored};

/// Creates a user with `role` and signs in as them.
async fn user(t: &TestApp, name: &str, role: &str) -> App {
    let r = post_json(
        &t.app,
        "/api/cloud/auth/users",
        &json!({"username": name, "password": PASSWORD, "role": role}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = post_json(
        &t.app.anonymous(),
        "/api/cloud/auth/login",
        &json!({"username": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    t.app
        .anonymous()
        .with_header("authorization", &format!("Bearer {token}"))
}

/// Every prediction create the fake received, in order.
fn creates(t: &TestApp) -> Vec<Value> {
    t.fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/predictions")
        .map(|r| r.json().unwrap())
        .collect()
}

/// Spend in the cost limit's current window (settled + reserved), as the
/// admin's cost-limit status reports it.
async fn spend(t: &TestApp) -> f64 {
    let r = t
        .app
        .request("GET", "/api/cloud/metrics/cost-limit", &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["current_spend"].as_f64().unwrap()
}

async fn set_limit(t: &TestApp, action: &str) {
    let r = t
        .app
        .request(
            "PUT",
            "/api/cloud/providers/replicate",
            &[],
            json!({"cost_limit_enabled": true, "cost_limit_amount": 100,
                   "cost_limit_period": "daily", "cost_limit_action": action})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A submitter names their own server as the job's `webhook_url`. Replicate
/// posts the whole prediction there, input included: the trainer config with
/// this server's per-job upload secret, and the installation's Hugging Face
/// token. Webhooks must go to this server's own `public_url` only.
#[tokio::test]
async fn a_submitter_cannot_point_replicates_webhook_at_their_own_server() {
    let t = TestApp::builder()
        .var("public_url", "https://cloudtuner.example/")
        .start()
        .await;
    let mallory = user(&t, "mallory", "researcher").await;
    for target in [
        "https://attacker.example/collect",
        "https://attacker.example/collect/api/cloud/webhooks/replicate",
        "https://cloudtuner.example.attacker.example",
        "http://cloudtuner.example@attacker.example",
    ] {
        let r = post_json(
            &mallory,
            SUBMIT,
            &json!({"config": {"--max_train_steps": 10}, "webhook_url": target}),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("invalid_webhook_url")),
            "{target}: {}",
            r.text()
        );
    }
    assert!(creates(&t).is_empty(), "nothing reached Replicate");
    // Naming this server (as a client configured with it does) is fine, and
    // so is leaving it out: either way the webhook is this server's.
    for body in [
        json!({"config": {"--max_train_steps": 10}, "webhook_url": "https://cloudtuner.example"}),
        json!({"config": {"--max_train_steps": 10}}),
    ] {
        let r = post_json(&mallory, SUBMIT, &body).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["job_id"].as_str().unwrap().to_string();
        assert_eq!(
            creates(&t).last().unwrap()["webhook"],
            format!("https://cloudtuner.example/api/cloud/webhooks/replicate?job={id}")
        );
    }
    for create in creates(&t) {
        let hook = create["webhook"].as_str().unwrap_or_default();
        assert!(
            hook.starts_with("https://cloudtuner.example/api/cloud/webhooks/replicate?"),
            "{hook}"
        );
    }
}

/// A submitter asks for more training steps than fit in the spend counters.
/// The reservation saturated at i64::MAX in six windows: on the embedded
/// store the counters wrapped negative (a block limit stopped holding), on
/// Redis every later submit of every user failed with a 500 until the window
/// rolled over. Inputs that feed money are bounded: a clear 400, nothing
/// reserved, and everyone else's submits still work.
#[tokio::test]
async fn huge_training_lengths_are_refused_and_spend_stays_as_it_was() {
    let t = TestApp::builder().start().await;
    set_limit(&t, "warn").await;
    let mallory = user(&t, "mallory", "researcher").await;
    let alice = user(&t, "alice", "researcher").await;
    let before = spend(&t).await;
    for steps in [
        json!(u64::MAX),
        json!("99999999999999999999999"),
        json!(1e300),
        json!(-1),
        json!(1_000_001),
    ] {
        let r = post_json(
            &mallory,
            SUBMIT,
            &json!({"config": {"--max_train_steps": steps, "--model_family": "flux"}}),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("invalid_config")),
            "{steps}: {}",
            r.text()
        );
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("max_train_steps")
        );
        let r = post_json(
            &mallory,
            "/api/cloud/cost-estimate",
            &json!({"config": {"--max_train_steps": steps}}),
        )
        .await;
        assert_eq!(r.status, 400, "{steps}: {}", r.text());
    }
    let r = post_json(
        &mallory,
        SUBMIT,
        &json!({"config": {"--num_train_epochs": 1u64 << 40}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(spend(&t).await, before, "nothing was reserved");
    assert!(creates(&t).is_empty());
    // Another user's submits go on as before, and count what they cost.
    for _ in 0..2 {
        let r = post_json(
            &alice,
            SUBMIT,
            &json!({"config": {"--max_train_steps": 100}}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert!(r.json()["cost_limit_warning"].is_null(), "{}", r.text());
    }
    let after = spend(&t).await;
    assert!(after > before && after < 100.0, "{before} -> {after}");
}

/// A lead (or an admin) reads a researcher's job whose config carries S3
/// publishing keys as a JSON string (SimpleTuner's own form), then re-runs
/// it. The keys must show as `***`, and the re-run must not train with the
/// owner's secrets under someone else's name: it is refused (the owner may).
#[tokio::test]
async fn another_users_publishing_secrets_stay_hidden_and_are_not_rerun() {
    let t = TestApp::builder().start().await;
    let alice = user(&t, "alice", "researcher").await;
    let lena = user(&t, "lena", "lead").await;
    let publishing = json!([{"provider": "s3", "bucket": "alice-models",
        "endpoint_url": "https://s3.example", "access_key": "AKIAALICEKEY",
        "secret_key": "alice-s3-secret-value"}])
    .to_string();
    t.fake.push_script(Script::training(
        1,
        1,
        1,
        Outcome::Failed {
            error: "CUDA out of memory".into(),
        },
    ));
    let r = post_json(
        &alice,
        SUBMIT,
        &json!({"config": {"--max_train_steps": 10, "--publishing_config": publishing,
                           "--hub_token": "hf_alice_token"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    t.fake.advance(30);
    let path = format!("/api/cloud/jobs/{id}");
    for (who, app) in [("lead", &lena), ("admin", &t.app), ("owner", &alice)] {
        let r = app.request("GET", &path, &[], "").await;
        assert_eq!(r.status, 200, "{who}: {}", r.text());
        let text = r.text();
        for secret in ["alice-s3-secret-value", "AKIAALICEKEY", "hf_alice_token"] {
            assert!(!text.contains(secret), "{who} sees {secret}: {text}");
        }
        let config = &r.json()["job"]["metadata"]["config_snapshot"]["config"];
        let entries: Value =
            serde_json::from_str(config["--publishing_config"].as_str().unwrap()).unwrap();
        assert_eq!(entries[0]["secret_key"], "***", "{who}");
        assert_eq!(entries[0]["bucket"], "alice-models", "{who}");
        assert_eq!(r.json()["job"]["status"], "failed", "{who}");
    }
    let made = creates(&t).len();
    let retry = format!("/api/cloud/jobs/{id}/retry");
    for (who, app) in [("lead", &lena), ("admin", &t.app)] {
        let r = post_json(app, &retry, &json!({})).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (403, Some("rerun_needs_owner")),
            "{who}: {}",
            r.text()
        );
    }
    assert_eq!(
        creates(&t).len(),
        made,
        "no prediction for the refused re-runs"
    );
    // The owner re-runs it with her own secrets.
    t.fake.push_script(Script::stuck());
    let r = post_json(&alice, &retry, &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let config = creates(&t).last().unwrap()["input"]["config_json"].clone();
    assert!(
        config.as_str().unwrap().contains("alice-s3-secret-value"),
        "{config}"
    );
}

/// A submit dies after recording its job and before sending Replicate
/// anything (mid-upload): no prediction id, no input hash. The job held its
/// spend reservation, and a place among the active jobs, forever; under a
/// blocking limit that is spend nobody can use. The sync fails such a job
/// once no submit can still be running, which gives its reservation back.
#[tokio::test]
async fn a_submit_that_died_before_replicate_does_not_hold_its_reservation() {
    let t = TestApp::builder().start().await;
    set_limit(&t, "block").await;
    let alice = user(&t, "alice", "researcher").await;
    t.fake.push_script(Script::stuck());
    let r = post_json(
        &alice,
        SUBMIT,
        &json!({"config": {"--max_train_steps": 1000}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    let reserved = spend(&t).await;
    assert!(reserved > 0.0);
    // Make it what a submit that died mid-upload leaves: recorded, uploading,
    // nothing sent, 16 minutes ago.
    let kv = stored(&t.app);
    let key = format!("job:{id}");
    let mut job: Value = serde_json::from_slice(&kv.get(&key).unwrap()).unwrap();
    for field in [
        "prediction_id",
        "input_sha256",
        "provider_status",
        "version",
    ] {
        job[field] = Value::Null;
    }
    job["status"] = json!("uploading");
    job["created_ms"] = json!(job["created_ms"].as_u64().unwrap() - 16 * 60_000);
    kv.set(&key, job.to_string().as_bytes());
    let r = post_json(&t.app, "/api/cloud/jobs/sync", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["abandoned"], 1, "{}", r.text());
    let r = alice
        .request("GET", &format!("/api/cloud/jobs/{id}"), &[], "")
        .await;
    assert_eq!(r.json()["job"]["status"], "failed", "{}", r.text());
    assert!(
        r.json()["job"]["error_message"]
            .as_str()
            .unwrap()
            .contains("submit it again")
    );
    assert_eq!(spend(&t).await, 0.0, "the reservation was given back");
}
