//! Training jobs through the real components and the fake Replicate server:
//! the seed tutorial's curl flows, CI polling, datasets, idempotency, errors.

mod common;

use std::io::Cursor;

use common::{SUBMIT, TestApp, get, post_json, stored};
use fake_replicate::{DEFAULT_TOKEN, Fault, FaultKind, Outcome, Script};
use serde_json::{Value, json};

fn inline_body() -> Value {
    json!({
        "config": {
            "--model_family": "flux",
            "--model_type": "lora",
            "--pretrained_model_name_or_path": "black-forest-labs/FLUX.1-dev",
            "--output_dir": "/outputs/flux-lora",
            "--max_train_steps": 1000,
            "--lora_rank": 16
        },
        "dataloader_config": [
            {"id": "my-dataset", "type": "local", "instance_data_dir": "/datasets/cats", "caption_strategy": "textfile", "resolution": 1024}
        ],
        "tracker_run_name": "api-test-run"
    })
}

/// The app with a `cats` dataset (3 images with captions) in its datasets folder.
async fn setup() -> TestApp {
    let s = TestApp::builder().start().await;
    let cats = s.datasets.path().join("cats");
    std::fs::create_dir_all(&cats).unwrap();
    for i in 0..3 {
        std::fs::write(cats.join(format!("{i}.png")), vec![i as u8; 1000]).unwrap();
        std::fs::write(cats.join(format!("{i}.txt")), format!("a photo of cat {i}")).unwrap();
    }
    s
}

#[tokio::test]
async fn seed_flow_inline_submit_get_list_logs_with_dataset_upload() {
    let s = setup().await;
    // Slow steps (100 s of fake time each) so real time passing cannot blur them.
    s.fake.push_script(Script::training(
        2,
        10,
        100,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    let r = post_json(&s.app, SUBMIT, &inline_body()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["status"], "queued");
    assert_eq!(body["idempotent_hit"], false);
    assert_eq!(body["data_uploaded"], true);
    assert_eq!(body["error"], Value::Null);
    let job_id = body["job_id"].as_str().unwrap().to_string();

    // The dataset went to Replicate's Files API as a zip and is the `images` input.
    let files = s.fake.file_ids();
    assert_eq!(files.len(), 1);
    let zip_bytes = s.fake.file_bytes(&files[0]).unwrap();
    let names: Vec<String> = common::unzip(&zip_bytes).into_keys().collect();
    assert_eq!(
        names,
        [
            "cats/0.png",
            "cats/0.txt",
            "cats/1.png",
            "cats/1.txt",
            "cats/2.png",
            "cats/2.txt"
        ]
    );
    let create = s
        .fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/v1/predictions")
        .unwrap();
    let create = create.json().unwrap();
    assert!(
        create["version"]
            .as_str()
            .unwrap()
            .starts_with("simpletuner/advanced-trainer-h100:")
    );
    let input = &create["input"];
    assert!(input["images"].as_str().unwrap().contains("/v1/files/"));
    let config: Value = serde_json::from_str(input["config_json"].as_str().unwrap()).unwrap();
    assert_eq!(config["--model_family"], "flux");
    assert!(create.get("webhook").is_none(), "no public_url, no webhook");

    let (status, got) = get(&s.app, &format!("/api/cloud/jobs/{job_id}")).await;
    assert_eq!(status, 200);
    let job = &got["job"];
    assert_eq!(job["job_id"], job_id.as_str());
    assert_eq!(job["provider"], "replicate");
    assert_eq!(job["hardware_type"], "H100");
    assert_eq!(job["metadata"]["tracker_run_name"], "api-test-run");
    assert_eq!(job["metadata"]["hardware_profile"], "h100");
    assert_eq!(
        job["metadata"]["model"],
        "simpletuner/advanced-trainer-h100"
    );
    assert!(job["metadata"]["prediction_id"].is_string());

    s.fake.advance(250);
    let (_, list) = get(&s.app, "/api/cloud/jobs?limit=10").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["jobs"][0]["job_id"], job_id.as_str());

    let (_, logs) = get(&s.app, &format!("/api/cloud/jobs/{job_id}/logs")).await;
    assert_eq!(logs["job_id"], job_id.as_str());
    let text = logs["logs"].as_str().unwrap();
    assert!(
        text.contains("step 2/10") && !text.contains("step 3/10"),
        "{text}"
    );
    // Incremental: from next_offset only what is new.
    let next = logs["next_offset"].as_u64().unwrap();
    s.fake.advance(100);
    let (_, more) = get(
        &s.app,
        &format!("/api/cloud/jobs/{job_id}/logs?offset={next}"),
    )
    .await;
    assert_eq!(more["offset"].as_u64().unwrap(), next);
    assert!(
        more["logs"]
            .as_str()
            .unwrap()
            .starts_with("epoch 1/1 step 3/10"),
        "{more}"
    );
    let (_, tail) = get(&s.app, &format!("/api/cloud/jobs/{job_id}/logs?tail=1")).await;
    assert_eq!(tail["logs"].as_str().unwrap().lines().count(), 1);

    // Nothing secret anywhere.
    assert!(!s.app.logs().contains(DEFAULT_TOKEN));
    for r in [got.to_string(), list.to_string(), logs.to_string()] {
        assert!(!r.contains(DEFAULT_TOKEN));
    }
    drop(s.datasets);
}

#[tokio::test]
async fn saved_configs_and_submit_by_name_then_ci_polling_reaches_completed() {
    let s = setup().await;
    let saved = json!({"config": {"--model_family": "sdxl", "--max_train_steps": 100, "--hub_token": "hf_secret"},
                       "dataloader_config": [{"id": "remote", "type": "huggingface", "dataset_name": "x/y"}]});
    let r = s
        .app
        .request(
            "PUT",
            "/api/cloud/configs/my-training-config",
            &[],
            saved.to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["config"]["config"]["--hub_token"], "***");
    let r = s
        .app
        .request(
            "PUT",
            "/api/cloud/configs/my-training-config",
            &[],
            saved.to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    let (_, list) = get(&s.app, "/api/cloud/configs").await;
    assert_eq!(list["configs"][0]["name"], "my-training-config");
    for (name, code) in [("bad%20name", 400), ("missing", 404)] {
        assert_eq!(
            s.app
                .request("GET", &format!("/api/cloud/configs/{name}"), &[], "")
                .await
                .status,
            code
        );
    }
    let r = s
        .app
        .request("PUT", "/api/cloud/configs/x", &[], r#"{"config": {}}"#)
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_config"))
    );

    s.fake.push_script(Script::training(
        3,
        5,
        10,
        Outcome::Succeeded {
            output: json!({"weights": "https://replicate.delivery/x/trained.tar"}),
        },
    ));
    let r = post_json(&s.app, SUBMIT, &json!({"config_name_to_load": "my-training-config", "tracker_run_name": "api-test-run", "hardware_profile": "l40s-x2"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let job_id = r.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["data_uploaded"], false);
    let create = s
        .fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/v1/predictions")
        .unwrap()
        .json()
        .unwrap();
    assert!(
        create["version"]
            .as_str()
            .unwrap()
            .starts_with("simpletuner/advanced-trainer-l40s-x2:")
    );
    // The trainer gets the real config, secrets included; the API never shows them.
    assert!(
        create["input"]["config_json"]
            .as_str()
            .unwrap()
            .contains("hf_secret")
    );

    // The seed's GitHub Actions loop: read .job.status until completed.
    let mut seen = Vec::new();
    let mut status = String::new();
    for _ in 0..30 {
        let (_, got) = get(&s.app, &format!("/api/cloud/jobs/{job_id}")).await;
        status = got["job"]["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "completed" || status == "failed" {
            assert!(!got.to_string().contains("hf_secret"));
            assert_eq!(
                got["job"]["output_url"],
                "https://replicate.delivery/x/trained.tar"
            );
            assert_eq!(got["job"]["config_name"], "my-training-config");
            assert_eq!(got["job"]["cost_estimated"], false);
            let predict = s
                .fake
                .prediction(got["job"]["metadata"]["prediction_id"].as_str().unwrap())
                .unwrap()["metrics"]["predict_time"]
                .as_f64()
                .unwrap();
            let expected = predict * 2.0 * 0.000972222;
            assert!((got["job"]["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-5);
            break;
        }
        s.fake.advance(10);
    }
    assert_eq!(status, "completed");
    assert_eq!(seen, ["queued", "running", "completed"]);

    // Delete: the config, then the finished job.
    assert_eq!(
        s.app
            .request("DELETE", "/api/cloud/configs/my-training-config", &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        s.app
            .request("DELETE", "/api/cloud/configs/my-training-config", &[], "")
            .await
            .status,
        404
    );
    let r = s
        .app
        .request("DELETE", &format!("/api/cloud/jobs/{job_id}"), &[], "")
        .await;
    assert_eq!((r.status, r.json()["success"].as_bool()), (200, Some(true)));
    assert_eq!(
        get(&s.app, &format!("/api/cloud/jobs/{job_id}")).await.0,
        404
    );
    assert_eq!(get(&s.app, "/api/cloud/jobs").await.1["total"], 0);
}

#[tokio::test]
async fn cancel_and_the_state_machine_refuse_illegal_moves() {
    let s = setup().await;
    s.fake
        .set_default_script(Script::training(2, 100, 10, Outcome::Aborted));
    let body = json!({"config": {"a": 1}, "dataloader_config": []});
    let id = post_json(&s.app, SUBMIT, &body).await.json()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Running jobs cannot be deleted.
    s.fake.advance(5);
    let r = s
        .app
        .request("DELETE", &format!("/api/cloud/jobs/{id}"), &[], "")
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["details"]["allowed_states"],
        json!(["completed", "failed", "cancelled"])
    );
    let r = s
        .app
        .request("POST", &format!("/api/cloud/jobs/{id}/cancel"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "cancelled");
    let pid = r.json()["job"]["metadata"]["prediction_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.fake.prediction(&pid).unwrap()["status"], "canceled");
    // Cancelled is terminal: cancelling again is 409, and time passing at the
    // provider never revives it.
    let r = s
        .app
        .request("POST", &format!("/api/cloud/jobs/{id}/cancel"), &[], "")
        .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (409, Some("invalid_job_state"))
    );
    s.fake.advance(10_000);
    assert_eq!(
        get(&s.app, &format!("/api/cloud/jobs/{id}")).await.1["job"]["status"],
        "cancelled"
    );

    // A prediction Replicate no longer knows (404 on cancel) counts as cancelled.
    let id2 = post_json(&s.app, SUBMIT, &body).await.json()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions/",
        FaultKind::Status {
            status: 404,
            retry_after: 0,
        },
        1,
    ));
    let r = s
        .app
        .request("POST", &format!("/api/cloud/jobs/{id2}/cancel"), &[], "")
        .await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("cancelled")),
        "{}",
        r.text()
    );
    assert_eq!(
        s.app
            .request("POST", "/api/cloud/jobs/nope/cancel", &[], "")
            .await
            .status,
        404
    );
    // The job list filters by status.
    let (_, list) = get(&s.app, "/api/cloud/jobs?status=cancelled").await;
    assert_eq!(list["total"], 2);
    assert_eq!(
        get(&s.app, "/api/cloud/jobs?status=running").await.1["total"],
        0
    );
}

#[tokio::test]
async fn idempotency_replays_refuses_mismatch_and_survives_a_50_way_race() {
    let s = setup().await;
    let mut body =
        json!({"config": {"a": 1}, "dataloader_config": [], "idempotency_key": "ci-run-1"});
    let first = post_json(&s.app, SUBMIT, &body).await;
    assert_eq!(first.status, 201);
    let again = post_json(&s.app, SUBMIT, &body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["idempotent_hit"], true);
    assert_eq!(again.json()["job_id"], first.json()["job_id"]);
    body["config"]["a"] = json!(2);
    let r = post_json(&s.app, SUBMIT, &body).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    for bad in [
        json!(""),
        json!("x".repeat(256)),
        json!("tab\tkey"),
        json!(5),
    ] {
        let r = post_json(
            &s.app,
            SUBMIT,
            &json!({"config": {"a": 1}, "idempotency_key": bad}),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("invalid_idempotency_key"))
        );
    }
    assert_eq!(s.fake.prediction_ids().len(), 1);

    // 50 concurrent submits with one new key: exactly one prediction.
    s.fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::Latency(std::time::Duration::from_millis(300)),
        1,
    ));
    let race = json!({"config": {"b": 1}, "idempotency_key": "race-key"});
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = s.app.clone();
            let race = race.clone();
            tokio::spawn(async move { post_json(&app, SUBMIT, &race).await })
        })
        .collect();
    let mut codes = std::collections::BTreeMap::new();
    let mut job_ids = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        *codes.entry(r.status).or_insert(0) += 1;
        if let Some(id) = r.json()["job_id"].as_str() {
            job_ids.insert(id.to_string());
        }
    }
    assert_eq!(codes.get(&201), Some(&1), "{codes:?}");
    assert!(
        codes.keys().all(|c| [200, 201, 409].contains(c)),
        "{codes:?}"
    );
    assert_eq!(job_ids.len(), 1, "{job_ids:?}");
    assert_eq!(s.fake.prediction_ids().len(), 2);
    // After the race a retry replays the one job.
    let r = post_json(&s.app, SUBMIT, &race).await;
    assert_eq!(
        (r.status, r.json()["job_id"].as_str().map(str::to_string)),
        (200, job_ids.into_iter().next())
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_written() {
    let s = setup().await;
    let cases = [
        (json!({}), "invalid_config"),
        (
            json!({"config": {"a": 1}, "hardware_profile": "a100"}),
            "invalid_hardware_profile",
        ),
        (
            json!({"config": {"a": 1}, "bogus": true}),
            "invalid_request",
        ),
        (json!({"config_name_to_load": "nope"}), "config_not_found"),
        (
            json!({"config": {"a": 1}, "dataloader_config": [{"id": "d1", "instance_data_dir": "/home/me/cats"}]}),
            "invalid_dataset",
        ),
        (
            json!({"config": {"a": 1}, "dataloader_config": [{"id": "d2", "instance_data_dir": "/datasets/../etc"}]}),
            "invalid_dataset",
        ),
        (
            json!({"config": {"a": 1}, "dataloader_config": [{"id": "d3", "instance_data_dir": "/datasets/dogs"}]}),
            "invalid_dataset",
        ),
    ];
    for (body, code) in cases {
        let r = post_json(&s.app, SUBMIT, &body).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some(code)),
            "{body}: {}",
            r.text()
        );
        assert_eq!(r.json()["success"], false);
        // SimpleTuner's CLI shows only FastAPI's `detail`.
        assert_eq!(r.json()["detail"], r.json()["message"], "{body}");
    }
    let r = s.app.request("POST", SUBMIT, &[], "not json").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_json"))
    );
    let r = post_json(
        &s.app,
        "/api/cloud/jobs/submit?provider=modal",
        &json!({"config": {"a": 1}}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("unknown_provider"))
    );
    let r = post_json(&s.app, SUBMIT, &json!({"config": {"a": 1}, "dataloader_config": [{"id": "d3", "instance_data_dir": "/datasets/dogs"}]})).await;
    assert!(r.json()["message"].as_str().unwrap().contains("\"d3\""));
    assert_eq!(get(&s.app, "/api/cloud/jobs").await.1["total"], 0);
    assert!(
        s.fake.requests().is_empty(),
        "no provider call for bad input"
    );
    for q in ["limit=0", "limit=501", "status=done", "offset=x"] {
        assert_eq!(
            get(&s.app, &format!("/api/cloud/jobs?{q}")).await.0,
            400,
            "{q}"
        );
    }
}

#[tokio::test]
async fn symlinked_and_oversized_datasets_are_refused() {
    let s = setup().await;
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("id_rsa"), "PRIVATE").unwrap();
    std::os::unix::fs::symlink(secret.path(), s.datasets.path().join("escape")).unwrap();
    std::os::unix::fs::symlink(
        secret.path().join("id_rsa"),
        s.datasets.path().join("cats/leak.png"),
    )
    .unwrap();
    let r = post_json(&s.app, SUBMIT, &json!({"config": {"a": 1}, "dataloader_config": [{"id": "e", "instance_data_dir": "/datasets/escape"}]})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // A symlink inside a dataset is left out of the archive.
    let r = post_json(&s.app, SUBMIT, &json!({"config": {"a": 1}, "dataloader_config": [{"id": "c", "instance_data_dir": "/datasets/cats"}]})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let zip_bytes = s.fake.file_bytes(&s.fake.file_ids()[0]).unwrap();
    let zip = zip::ZipArchive::new(Cursor::new(zip_bytes)).unwrap();
    assert!(zip.file_names().all(|n| !n.unwrap().contains("leak")));
    // Incompressible data over 100 MiB after compression: 413 before any upload.
    let big = s.datasets.path().join("big");
    std::fs::create_dir(&big).unwrap();
    let mut noise = vec![0u8; 101 * 1024 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(big.join("noise.bin"), noise).unwrap();
    let uploads = s.fake.file_ids().len();
    let r = post_json(&s.app, SUBMIT, &json!({"config": {"a": 1}, "dataloader_config": [{"id": "big", "instance_data_dir": "/datasets/big"}]})).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (413, Some("dataset_too_large")),
        "{}",
        r.text()
    );
    assert_eq!(s.fake.file_ids().len(), uploads);
}

#[tokio::test]
async fn provider_errors_are_clear_retried_or_recorded() {
    let s = setup().await;
    let body = json!({"config": {"a": 1}});
    // 429 on create: waited out and retried within the request.
    s.fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::Status {
            status: 429,
            retry_after: 1,
        },
        1,
    ));
    let r = post_json(&s.app, SUBMIT, &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // 5xx: 502 naming the provider; the job is recorded as failed.
    s.fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::Status {
            status: 503,
            retry_after: 0,
        },
        1,
    ));
    let r = post_json(&s.app, SUBMIT, &body).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (502, Some("provider_error"))
    );
    assert!(r.json()["message"].as_str().unwrap().contains("Replicate"));
    let failed = r.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        get(&s.app, &format!("/api/cloud/jobs/{failed}")).await.1["job"]["status"],
        "failed"
    );
    // Response lost after the prediction was created: the job stays, pending,
    // with a message; the prediction exists at the provider for the sync.
    s.fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::DropResponse,
        1,
    ));
    let before = s.fake.prediction_ids().len();
    let r = post_json(
        &s.app,
        SUBMIT,
        &json!({"config": {"a": 1}, "idempotency_key": "dropped"}),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    let pending = r.json()["job_id"].as_str().unwrap().to_string();
    assert_eq!(s.fake.prediction_ids().len(), before + 1);
    let (_, job) = get(&s.app, &format!("/api/cloud/jobs/{pending}")).await;
    assert_eq!(job["job"]["status"], "pending");
    assert!(
        job["job"]["error_message"]
            .as_str()
            .unwrap()
            .contains("sync")
    );
    // Retrying with the same key returns that job instead of a second prediction.
    let r = post_json(
        &s.app,
        SUBMIT,
        &json!({"config": {"a": 1}, "idempotency_key": "dropped"}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["job_id"].as_str()),
        (200, Some(pending.as_str()))
    );
    assert_eq!(s.fake.prediction_ids().len(), before + 1);
}

#[tokio::test]
async fn a_refused_token_is_reported_and_never_echoed() {
    let t = TestApp::builder()
        .var("replicate_api_token", "r8_wrong_secret_value")
        .start()
        .await;
    let app = &t.app;
    let r = post_json(app, SUBMIT, &json!({"config": {"a": 1}})).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (502, Some("provider_auth_failed")),
        "{}",
        r.text()
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("rejected the API token")
    );
    assert!(!r.text().contains("r8_wrong_secret_value"));
    assert!(!app.logs().contains("r8_wrong_secret_value"));
    let (_, list) = get(app, "/api/cloud/jobs").await;
    assert!(!list.to_string().contains("r8_wrong_secret_value"));
}

/// The body of the last prediction create the fake received.
fn last_create(fake: &fake_replicate::FakeReplicate) -> Value {
    fake.requests()
        .into_iter()
        .rfind(|r| r.path == "/v1/predictions")
        .unwrap()
        .json()
        .unwrap()
}

#[tokio::test]
async fn with_a_public_url_replicate_is_given_the_webhook() {
    let t = TestApp::builder()
        .var("public_url", "https://abc123.ngrok.io/")
        .start()
        .await;
    let (fake, app) = (&t.fake, &t.app);
    let r = post_json(app, SUBMIT, &json!({"config": {"a": 1}})).await;
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    let create = last_create(fake);
    assert_eq!(
        create["webhook"],
        format!("https://abc123.ngrok.io/api/cloud/webhooks/replicate?job={id}")
    );
    assert_eq!(
        create["webhook_events_filter"],
        json!(["start", "output", "logs", "completed"])
    );
    // A per-job webhook_url may only name this server (Replicate's webhook
    // carries the job's input); any other is refused.
    let r = post_json(
        app,
        SUBMIT,
        &json!({"config": {"a": 2}, "webhook_url": "https://abc123.ngrok.io"}),
    )
    .await;
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    let create = last_create(fake);
    assert_eq!(
        create["webhook"],
        format!("https://abc123.ngrok.io/api/cloud/webhooks/replicate?job={id}")
    );
    let r = post_json(
        app,
        SUBMIT,
        &json!({"config": {"a": 2}, "webhook_url": "https://other.example"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_webhook_url");
    let r = post_json(
        app,
        SUBMIT,
        &json!({"config": {"a": 3}, "webhook_url": "ftp://x"}),
    )
    .await;
    assert_eq!(r.status, 400);
}

/// Moves a JSON record's millisecond field back by `days` (time passing for
/// the app, whose clock the test cannot move).
fn age(app: &cloudtuner_testhost::App, key: &str, field: &str, days: u64) {
    let kv = stored(app);
    let mut v: Value = serde_json::from_slice(&kv.get(key).unwrap()).unwrap();
    let ms = v[field].as_u64().unwrap();
    v[field] = json!(ms - days * 86_400_000);
    kv.set(key, v.to_string().as_bytes());
}

#[tokio::test]
async fn retention_deletes_old_finished_jobs_with_their_keys_and_keeps_metrics() {
    let t = TestApp::builder().var("retention_days", "1").start().await;
    let (fake, app) = (&t.fake, &t.app);
    let body = |key: &str| json!({"config": {"--max_train_steps": 3}, "idempotency_key": key});
    let old = post_json(app, SUBMIT, &body("ci-run-1")).await.json()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let recent = post_json(app, SUBMIT, &body("ci-run-2")).await.json()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    fake.advance(600);
    for id in [&old, &recent] {
        let j = app
            .request("GET", &format!("/api/cloud/jobs/{id}"), &[], "")
            .await
            .json();
        assert_eq!(j["job"]["status"], "completed", "{j}");
    }
    // (Counters and the event log are installation-wide, not the job's keys.)
    let job_keys = |app: &cloudtuner_testhost::App| {
        stored(app)
            .keys()
            .iter()
            .filter(|k| !k.starts_with("prom:") && !k.starts_with("ev:") && *k != "claim:ev:head")
            .count()
    };
    let before = job_keys(app);

    // Two days pass for the old job and its idempotency record.
    age(app, &format!("job:{old}"), "completed_ms", 2);
    let record = stored(app)
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("idem:"))
        .find(|k| {
            let v: Value = serde_json::from_slice(&stored(app).get(k).unwrap()).unwrap();
            v["job_id"] == old.as_str()
        })
        .expect("the old job's idempotency record");
    age(app, &record, "created_ms", 2);

    let r = app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["pruned"], 1, "{}", r.text());
    assert_eq!(
        app.request("GET", &format!("/api/cloud/jobs/{old}"), &[], "")
            .await
            .status,
        404
    );
    let list = app.request("GET", "/api/cloud/jobs", &[], "").await.json();
    let ids: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [recent.as_str()]);
    // Its record, logs, index entries, idempotency record and claim are gone.
    let keys = stored(app).keys();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(&old) || *k == record || *k == format!("claim:{record}")),
        "{keys:?}"
    );
    // Record, logs, idempotency record, and the claim that created it on the
    // embedded store (Redis creates it with `SET NX`, SQLite with `INSERT ...
    // ON CONFLICT DO NOTHING`: no claim key).
    let gone = if common::store_under_test() == "embedded" {
        4
    } else {
        3
    };
    assert_eq!(job_keys(app), before - gone, "{keys:?}");
    // History stays: metrics still count both jobs.
    let m = app
        .request("GET", "/api/metrics?days=7", &[], "")
        .await
        .json();
    assert_eq!(m["job_count"], 2, "{m}");
    // The CI key works again (a new job, not a replay of the deleted one).
    let again = post_json(app, SUBMIT, &body("ci-run-1")).await;
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.json()["idempotent_hit"], false);
    // Nothing more is due.
    let r = app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(r.json()["pruned"], 0, "{}", r.text());
}

#[tokio::test]
async fn a_bad_retention_setting_is_reported_by_the_sync_and_deletes_nothing() {
    let t = TestApp::builder()
        .var("retention_days", "a week")
        .start()
        .await;
    let app = &t.app;
    let r = app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["pruned"], 0);
    assert!(
        r.text().contains("retention_days must be a whole number"),
        "{}",
        r.text()
    );
}

/// Issue 14, item 4: a failed job re-runs as attempt 2 (same config, datasets
/// and hardware), a re-run of that as attempt 3 of the same first job; active
/// and completed jobs are refused, others' jobs are not found, and the
/// Idempotency-Key header makes a retried re-run return the same attempt.
#[tokio::test]
async fn a_failed_job_re_runs_as_its_next_attempt() {
    let s = setup().await;
    let mut body = inline_body();
    body["hardware_profile"] = json!("l40s");
    s.fake.push_script(Script::training(
        1,
        2,
        1,
        Outcome::Failed {
            error: "CUDA out of memory".into(),
        },
    ));
    let r = post_json(&s.app, SUBMIT, &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let first = r.json()["job_id"].as_str().unwrap().to_string();
    let retry = |id: &str| format!("/api/cloud/jobs/{id}/retry");
    // Still active: not yet.
    let early = post_json(&s.app, &retry(&first), &json!({})).await;
    assert_eq!(early.status, 409, "{}", early.text());
    assert_eq!(
        early.json()["details"]["allowed_states"],
        json!(["failed", "cancelled"])
    );
    s.fake.advance(30);
    assert_eq!(common::job(&s.app, &first).await["status"], "failed");

    s.fake.push_script(Script::stuck());
    let r = s
        .app
        .request(
            "POST",
            &retry(&first),
            &[("idempotency-key", "rerun-1")],
            "",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["success"], true);
    assert_eq!(
        r.json()["data_uploaded"],
        true,
        "the dataset is packaged again"
    );
    let second = r.json()["job_id"].as_str().unwrap().to_string();
    let again = s
        .app
        .request(
            "POST",
            &retry(&first),
            &[("idempotency-key", "rerun-1")],
            "",
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["job_id"], second.as_str());
    assert_eq!(again.json()["idempotent_hit"], true);

    let j2 = common::job(&s.app, &second).await;
    assert_eq!(
        (j2["attempt"].as_u64(), j2["retry_of"].as_str()),
        (Some(2), Some(first.as_str()))
    );
    assert_eq!(j2["first_job"], first.as_str());
    assert_eq!(j2["metadata"]["hardware_profile"], "l40s");
    assert_eq!(j2["metadata"]["tracker_run_name"], "api-test-run");
    // The trainer got the same config and a zip of the same files.
    let creates: Vec<Value> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/predictions")
        .map(|r| r.json().unwrap())
        .collect();
    assert_eq!(creates.len(), 2);
    assert_eq!(
        creates[0]["input"]["config_json"],
        creates[1]["input"]["config_json"]
    );
    assert_eq!(creates[0]["version"], creates[1]["version"]);
    assert_eq!(s.fake.file_ids().len(), 2);

    // Cancelled, then re-run again: attempt 3 of the same first job.
    let r = post_json(
        &s.app,
        &format!("/api/cloud/jobs/{second}/cancel"),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.fake.push_script(Script::stuck());
    let r = post_json(
        &s.app,
        &retry(&second),
        &json!({"idempotency_key": "rerun-2"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let third = r.json()["job_id"].as_str().unwrap().to_string();
    let j3 = common::job(&s.app, &third).await;
    assert_eq!(
        (j3["attempt"].as_u64(), j3["retry_of"].as_str()),
        (Some(3), Some(second.as_str()))
    );
    assert_eq!(j3["first_job"], first.as_str());
    // The list shows attempts too.
    let (_, list) = get(&s.app, "/api/cloud/jobs?limit=10").await;
    let item = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == third.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (item["attempt"].as_u64(), item["retry_of"].as_str()),
        (Some(3), Some(second.as_str()))
    );
    let first_item = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == first.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (
            first_item["attempt"].as_u64(),
            first_item["retry_of"].clone()
        ),
        (Some(1), Value::Null)
    );

    // Nobody else's job, and bad bodies, are refused in words.
    let r = post_json(&s.app, &retry("no-such-job"), &json!({})).await;
    assert_eq!(r.status, 404);
    let r = post_json(&s.app, &retry(&first), &json!({"config": {}})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["message"].as_str().unwrap().contains("config"),
        "{}",
        r.text()
    );
}

/// SimpleTuner 4.10.1 sends a LyCORIS run's settings as the trainer's
/// `lycoris_config` input: a run submitted with them trains with them, and a
/// path this server cannot read (or none at all) is refused before anything is
/// sent, in words.
#[tokio::test]
async fn a_lycoris_config_reaches_the_trainer_as_its_own_input() {
    let t = TestApp::builder().start().await;
    let lokr = json!({"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "factor": 16});
    let mut body = json!({"config": {
        "--model_family": "flux", "--model_type": "lora", "--lora_type": "lycoris",
        "--lycoris_config": lokr.clone(), "--max_train_steps": 10
    }});
    let id = t.submit(&body).await;
    let input = &last_create(&t.fake)["input"];
    let sent: Value = serde_json::from_str(input["lycoris_config"].as_str().unwrap()).unwrap();
    assert_eq!(sent, lokr);
    let config: Value = serde_json::from_str(input["config_json"].as_str().unwrap()).unwrap();
    assert_eq!(config["--lora_type"], "lycoris");
    assert!(config.get("--lycoris_config").is_none(), "{config}");
    // The job keeps the config as submitted (a re-run sends it again).
    assert_eq!(
        t.job(&id).await["metadata"]["config_snapshot"]["config"]["--lycoris_config"],
        lokr
    );

    let creates = t.fake.prediction_ids().len();
    body["config"]["--lycoris_config"] = json!("config/lycoris_config.json");
    let r = post_json(&t.app, SUBMIT, &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_lycoris_config");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("only your machine can read")
    );
    body["config"]
        .as_object_mut()
        .unwrap()
        .remove("--lycoris_config");
    let r = post_json(&t.app, SUBMIT, &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        t.fake.prediction_ids().len(),
        creates,
        "nothing sent for refused runs"
    );
}
