//! Getting the model back: the S3-compatible endpoint driven by unmodified
//! boto3 (PyPI) through the served host, "download to this machine" end to end
//! (the trainer's upload uses the publishing_config injected at submit), and the
//! Hub / external-S3 paths decided at submit with their secrets never shown.

mod common;

use std::path::{Path, PathBuf};

use cloudtuner_testhost::App;
use common::{TestApp, add_trainers, job, post_json, researcher};
use fake_replicate::{FakeReplicate, Outcome, Script};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The app on a real port that is also its `public_url` (the trainer and
/// boto3 reach it there); reads refresh from the fake every time.
async fn served() -> TestApp {
    served_with(&[]).await
}

async fn served_with(extra: &[(&str, &str)]) -> TestApp {
    TestApp::builder().vars(extra).served().start().await
}

async fn submit(app: &App, body: Value) -> String {
    common::submit(app, &body).await
}

/// What the trainer received: the prediction input of the job's prediction.
async fn trainer_input(s: &TestApp, id: &str) -> Value {
    let pid = job(&s.app, id).await["metadata"]["prediction_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.fake.prediction(&pid).unwrap()["input"].clone()
}

/// Two jobs that keep running, and the upload credentials injected into the
/// first one's trainer config: (first id, other id, credentials).
async fn two_jobs(s: &TestApp) -> (String, String, Value) {
    s.fake
        .set_default_script(Script::training(5, 100, 10, Outcome::Aborted));
    let id = submit(&s.app, json!({"config": {"--max_train_steps": 100}})).await;
    let other = submit(&s.app, json!({"config": {"--max_train_steps": 100}})).await;
    let creds = injected_s3(&trainer_input(s, &id).await);
    (id, other, creds)
}

/// The S3 entry cloudtuner injected into the trainer's config.
fn injected_s3(input: &Value) -> Value {
    let config: Value = serde_json::from_str(input["config_json"].as_str().unwrap()).unwrap();
    config["publishing_config"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or_else(|| panic!("no publishing_config in {config}"))
}

/// Runs `ops` through boto3 with `creds` (an injected publishing_config entry).
async fn boto3(creds: &Value, secret: Option<&str>, ops: Value) -> Vec<Value> {
    let plan = json!({
        "endpoint": creds["endpoint_url"],
        "access_key": creds["access_key"],
        "secret_key": secret.map(Value::from).unwrap_or(creds["secret_key"].clone()),
        "bucket": creds["bucket"],
        "ops": ops,
    });
    common::run_boto3(plan).await
}

/// `n` bytes that do not compress (a stand-in for weights), written to a file.
fn weights(dir: &Path, name: &str, n: usize) -> (PathBuf, String) {
    let bytes = common::noise(n, 0);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, hex::encode(Sha256::digest(&bytes)))
}

/// Saves `config` as the named training config of the caller.
async fn save_config(app: &App, name: &str, config: &Value) {
    let r = app
        .request(
            "PUT",
            &format!("/api/cloud/configs/{name}"),
            &[("content-type", "application/json")],
            json!({"config": config}).to_string(),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
}

fn ok(r: &Value) -> &Value {
    assert_eq!(r["ok"], true, "{r}");
    r
}

fn code(r: &Value) -> &str {
    assert_eq!(r["ok"], false, "{r}");
    r["code"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_uploads_downloads_lists_and_is_kept_to_its_job() {
    let s = served().await;
    let (id, other, creds) = two_jobs(&s).await;
    assert_eq!(
        creds["endpoint_url"],
        format!("{}/api/cloud/storage", s.url)
    );
    assert_eq!(creds["access_key"], id);
    assert_eq!(creds["base_path"], id);
    let secret = creds["secret_key"].as_str().unwrap().to_string();

    let tmp = tempfile::tempdir().unwrap();
    let (file, sha) = weights(tmp.path(), "w.safetensors", 30 * 1024 * 1024);
    let download = tmp.path().join("back.safetensors");
    let key = format!("{id}/model.safetensors");
    let r = boto3(
        &creds,
        None,
        json!([
            {"op": "upload_file", "key": key, "path": file},
            {"op": "head", "key": key},
            {"op": "download_file", "key": key, "path": download},
            {"op": "put", "key": format!("{id}/notes.txt"), "body": "hello world"},
            {"op": "get", "key": format!("{id}/notes.txt"), "range": "bytes=0-4"},
            {"op": "list", "prefix": format!("{id}/")},
            {"op": "list", "prefix": format!("{id}/"), "max_keys": 1},
            {"op": "presign_get", "key": key},
            {"op": "delete", "key": format!("{id}/notes.txt")},
            {"op": "list", "prefix": format!("{id}/")},
            {"op": "get", "key": format!("{id}/notes.txt")},
            {"op": "put", "key": format!("{other}/stolen.txt"), "body": "x"},
            {"op": "list", "prefix": format!("{other}/")},
            {"op": "get", "key": format!("{other}/model.safetensors")},
            {"op": "presign_get", "key": key, "v4": true},
        ]),
    )
    .await;
    ok(&r[0]);
    // 30 MiB in boto3's 8 MiB parts: a 4-part multipart upload.
    assert_eq!(ok(&r[1])["size"], 30 * 1024 * 1024);
    assert!(r[1]["etag"].as_str().unwrap().ends_with("-4\""), "{}", r[1]);
    assert_eq!(ok(&r[2])["sha256"], sha, "downloaded bytes differ");
    assert!(ok(&r[3])["etag"].as_str().unwrap().starts_with('"'));
    assert_eq!(ok(&r[4])["body"], "hello");
    assert_eq!(r[4]["content_range"], "bytes 0-4/11");
    assert_eq!(
        ok(&r[5])["keys"],
        json!([format!("{id}/model.safetensors"), format!("{id}/notes.txt")])
    );
    // One key per page: the continuation token walks both.
    assert_eq!(ok(&r[6])["pages"], 2);
    assert_eq!(r[6]["keys"], r[5]["keys"]);
    assert_eq!(ok(&r[7])["sha256"], sha, "presigned GET");
    ok(&r[8]);
    assert_eq!(ok(&r[9])["keys"], json!([key]));
    assert_eq!(code(&r[10]), "NoSuchKey");
    assert_eq!(code(&r[11]), "AccessDenied");
    assert_eq!(code(&r[12]), "AccessDenied");
    assert_eq!(code(&r[13]), "AccessDenied");
    assert_eq!(ok(&r[14])["sha256"], sha, "SigV4-presigned GET");

    // A wrong secret is refused on every operation.
    let r = boto3(
        &creds,
        Some("not-the-secret"),
        json!([
            {"op": "put", "key": format!("{id}/x.txt"), "body": "x"},
            {"op": "head", "key": key},
            {"op": "presign_get", "key": key},
            {"op": "presign_get", "key": key, "v4": true},
        ]),
    )
    .await;
    assert_eq!(code(&r[0]), "SignatureDoesNotMatch");
    assert_eq!(r[1]["status"], 403);
    assert_eq!(code(&r[2]), "SignatureDoesNotMatch");
    assert_eq!(code(&r[3]), "SignatureDoesNotMatch");

    // The job now names the stored object; users read it with their own login.
    let j = job(&s.app, &id).await;
    assert_eq!(
        j["output_url"],
        format!("{}/api/cloud/storage/outputs/{key}", s.url)
    );
    let outputs = s
        .app
        .request("GET", &format!("/api/cloud/jobs/{id}/outputs"), &[], "")
        .await;
    assert_eq!(outputs.status, 200, "{}", outputs.text());
    let listed = &outputs.json()["outputs"];
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "model.safetensors");
    assert_eq!(listed[0]["size"], 30 * 1024 * 1024);
    let path = listed[0]["download_path"].as_str().unwrap().to_string();
    let got = s.app.request("GET", &path, &[], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(hex::encode(Sha256::digest(&got.body)), sha);
    let bob = researcher(&s.app, "bob").await;
    let as_bob = [("authorization", bob.as_str())];
    let r = s
        .app
        .request("GET", &format!("/api/cloud/jobs/{id}/outputs"), &as_bob, "")
        .await;
    assert_eq!(r.status, 404);
    let r = s.app.request("GET", &path, &as_bob, "").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<Code>NoSuchKey</Code>"));
    let r = s.app.anonymous().request("GET", &path, &[], "").await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("<Code>AccessDenied</Code>"));
    // Users read; they do not write.
    let r = s.app.request("PUT", &path, &[], "overwrite").await;
    assert_eq!(r.status, 403);

    // SimpleTuner's upload-token header works for the job's own prefix only.
    let token = [("x-upload-token", secret.as_str())];
    let small = format!("/api/cloud/storage/outputs/{id}/config.json");
    assert_eq!(
        s.app
            .anonymous()
            .request("PUT", &small, &token, "{}")
            .await
            .status,
        200
    );
    let theirs = format!("/api/cloud/storage/outputs/{other}/config.json");
    assert_eq!(
        s.app
            .anonymous()
            .request("PUT", &theirs, &token, "{}")
            .await
            .status,
        403
    );

    // Two hours after the job ended, its credentials are dead.
    let r = s
        .app
        .request("POST", &format!("/api/cloud/jobs/{id}/cancel"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = boto3(
        &creds,
        None,
        json!([
            {"op": "put", "key": format!("{id}/late.txt"), "body": "in grace"},
            {"op": "start_multipart", "key": format!("{id}/unfinished.safetensors")},
        ]),
    )
    .await;
    ok(&r[0]);
    ok(&r[1]);
    let jkey = format!("job:{id}");
    let mut stored: Value =
        serde_json::from_slice(&common::stored(&s.app).get(&jkey).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    stored["completed_ms"] = json!(now - 2 * 3600 * 1000 - 60_000);
    common::stored(&s.app).set(&jkey, stored.to_string().as_bytes());
    let r = boto3(
        &creds,
        None,
        json!([
            {"op": "put", "key": format!("{id}/too-late.txt"), "body": "x"},
            {"op": "get", "key": key},
        ]),
    )
    .await;
    assert_eq!(code(&r[0]), "AccessDenied");
    assert_eq!(code(&r[1]), "AccessDenied");
    assert_eq!(
        s.app
            .anonymous()
            .request("PUT", &small, &token, "{}")
            .await
            .status,
        403
    );
    // The owner still downloads.
    assert_eq!(s.app.request("GET", &path, &[], "").await.status, 200);

    // The upload secret appears in no job response and no log.
    let mut seen = String::new();
    for p in [
        format!("/api/cloud/jobs/{id}"),
        "/api/cloud/jobs".to_string(),
        format!("/api/cloud/jobs/{id}/outputs"),
        format!("/api/cloud/jobs/{id}/logs"),
    ] {
        seen.push_str(&s.app.request("GET", &p, &[], "").await.text());
    }
    assert!(
        !seen.contains(&secret),
        "a response shows the upload secret"
    );
    assert!(
        !s.app.logs().contains(&secret),
        "a log shows the upload secret"
    );

    // Deleting the job deletes its outputs.
    let r = s
        .app
        .request("DELETE", &format!("/api/cloud/jobs/{id}"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let keys = common::stored(&s.app).keys();
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("s3d:") || k.starts_with("s3o:") || k.starts_with("s3mp")),
        "chunks, manifests or unfinished uploads left: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_to_this_machine_end_to_end() {
    let s = served().await;
    s.fake.push_script(Script::training(
        5,
        10,
        10,
        Outcome::Succeeded {
            output: json!("https://replicate.delivery/x/trained.tar"),
        },
    ));
    let status = s
        .app
        .request("GET", "/api/cloud/publishing/status", &[], "")
        .await
        .json();
    assert_eq!(status["default_path"], "local", "{status}");
    assert_eq!(
        status["local"]["endpoint"],
        format!("{}/api/cloud/storage", s.url)
    );

    let id = submit(
        &s.app,
        json!({"config": {"--max_train_steps": 10}, "delivery": "local"}),
    )
    .await;
    let j = job(&s.app, &id).await;
    assert_eq!(j["delivery"]["paths"], json!(["local"]));
    s.fake.advance(30);
    assert_eq!(job(&s.app, &id).await["status"], "running");

    // The trainer (SimpleTuner's S3 publisher is boto3 upload_file) uploads
    // with what it was given, under base_path.
    let creds = injected_s3(&trainer_input(&s, &id).await);
    let tmp = tempfile::tempdir().unwrap();
    let (file, sha) = weights(tmp.path(), "lora.safetensors", 9 * 1024 * 1024);
    let key = format!(
        "{}/pytorch_lora_weights.safetensors",
        creds["base_path"].as_str().unwrap()
    );
    let r = boto3(
        &creds,
        None,
        json!([{"op": "upload_file", "key": key, "path": file}]),
    )
    .await;
    ok(&r[0]);
    s.fake.advance(200);
    let j = job(&s.app, &id).await;
    assert_eq!(j["status"], "completed");
    // Not Replicate's hour-long link: the object stored here.
    assert_eq!(
        j["output_url"],
        format!("{}/api/cloud/storage/outputs/{key}", s.url)
    );
    let outputs = s
        .app
        .request("GET", &format!("/api/cloud/jobs/{id}/outputs"), &[], "")
        .await
        .json();
    assert_eq!(outputs["count"], 1);
    let url = outputs["outputs"][0]["download_url"].as_str().unwrap();
    assert_eq!(url, j["output_url"].as_str().unwrap());
    // The owner downloads it with their own credentials.
    let path = url.strip_prefix(&s.url).unwrap();
    let got = s.app.request("GET", path, &[], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len(), 9 * 1024 * 1024);
    assert_eq!(hex::encode(Sha256::digest(&got.body)), sha);
    let bob = researcher(&s.app, "bob").await;
    let as_bob = [("authorization", bob.as_str())];
    assert_eq!(s.app.request("GET", path, &as_bob, "").await.status, 404);
    assert_eq!(
        s.app
            .request("GET", &format!("/api/cloud/jobs/{id}/outputs"), &as_bob, "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn hub_and_external_s3_are_decided_at_submit_and_secrets_never_shown() {
    const HF: &str = "hf_TESTTOKENabcdefghijklmnop";
    const S3_SECRET: &str = "wJalrXUtnFEMI-external-secret";
    let fake = FakeReplicate::start().await;
    add_trainers(&fake);
    fake.set_default_script(Script::training(
        1,
        5,
        1,
        Outcome::Succeeded {
            output: json!("https://replicate.delivery/x/out.tar"),
        },
    ));
    let hub_config =
        json!({"--max_train_steps": 5, "push_to_hub": true, "hub_model_id": "me/my-lora"});

    // Without a token, push_to_hub is refused before anything is recorded or sent.
    let bare = TestApp::builder().start_against(&fake).await;
    let bare = &bare.app;
    let r = post_json(
        bare,
        "/api/cloud/jobs/submit",
        &json!({"config": hub_config}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "hub_token_missing");
    assert!(r.json()["message"].as_str().unwrap().contains("hf_token"));
    assert_eq!(
        bare.request("GET", "/api/cloud/jobs", &[], "").await.json()["total"],
        0
    );
    assert!(fake.prediction_ids().is_empty());
    let status = bare
        .request("GET", "/api/cloud/publishing/status", &[], "")
        .await
        .json();
    assert_eq!(status["default_path"], "replicate");
    assert_eq!(status["local"]["available"], false);
    let r = post_json(
        bare,
        "/api/cloud/jobs/submit",
        &json!({"config": {"a": 1}, "delivery": "local"}),
    )
    .await;
    assert_eq!(r.json()["error"], "public_url_missing");

    // With the hf_token variable: the trainer gets token + repo; the job links the repo.
    let app = TestApp::builder()
        .var("hf_token", HF)
        .start_against(&fake)
        .await;
    let app = &app.app;
    save_config(app, "hub", &hub_config).await;
    let status = app
        .request("GET", "/api/cloud/publishing/status?config=hub", &[], "")
        .await
        .json();
    assert_eq!(status["default_path"], "hub", "{status}");
    assert_eq!(status["hub"]["token_configured"], true);
    let r = post_json(
        app,
        "/api/cloud/jobs/submit",
        &json!({"config_name_to_load": "hub"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let hub_job = r.json()["job_id"].as_str().unwrap().to_string();
    let pid = fake.prediction_ids().last().unwrap().clone();
    let input = fake.prediction(&pid).unwrap()["input"].clone();
    assert_eq!(input["hf_token"], HF);
    assert_eq!(input["hub_model_id"], "me/my-lora");
    fake.advance(60);
    let j = app
        .request("GET", &format!("/api/cloud/jobs/{hub_job}"), &[], "")
        .await
        .json();
    assert_eq!(j["job"]["status"], "completed");
    assert_eq!(j["job"]["output_url"], "https://huggingface.co/me/my-lora");
    assert_eq!(j["job"]["delivery"]["paths"], json!(["hub"]));

    // External S3 travels to the trainer; its keys are shown as *** everywhere.
    let s3_config = json!({"--max_train_steps": 5, "publishing_config": [{
        "provider": "s3", "bucket": "my-models", "endpoint_url": "https://s3.example.com",
        "access_key": "AKIAEXTERNAL123", "secret_key": S3_SECRET}]});
    save_config(app, "ext", &s3_config).await;
    let r = post_json(app, "/api/cloud/jobs/submit", &json!({"config": s3_config})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let s3_job = r.json()["job_id"].as_str().unwrap().to_string();
    let pid = fake.prediction_ids().last().unwrap().clone();
    let input = fake.prediction(&pid).unwrap()["input"].clone();
    assert!(input["config_json"].as_str().unwrap().contains(S3_SECRET));
    assert!(input.get("hf_token").is_none(), "no hub, no token sent");
    fake.advance(60);
    let mut seen = String::new();
    for p in [
        format!("/api/cloud/jobs/{s3_job}"),
        format!("/api/cloud/jobs/{hub_job}"),
        "/api/cloud/jobs".to_string(),
        "/api/cloud/configs".to_string(),
        "/api/cloud/configs/ext".to_string(),
        "/api/cloud/configs/hub".to_string(),
        "/api/cloud/publishing/status?config=ext".to_string(),
        format!("/api/cloud/jobs/{s3_job}/outputs"),
    ] {
        let r = app.request("GET", &p, &[], "").await;
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        seen.push_str(&r.text());
    }
    let j = app
        .request("GET", &format!("/api/cloud/jobs/{s3_job}"), &[], "")
        .await
        .json();
    let entry = &j["job"]["metadata"]["config_snapshot"]["config"]["publishing_config"][0];
    assert_eq!(entry["secret_key"], "***");
    assert_eq!(entry["access_key"], "***");
    assert_eq!(entry["bucket"], "my-models");
    assert_eq!(j["job"]["output_url"], "s3://my-models/");
    for secret in [HF, S3_SECRET, "AKIAEXTERNAL123"] {
        assert!(!seen.contains(secret), "a response shows {secret}");
        assert!(!app.logs().contains(secret), "a log shows {secret}");
    }
}

/// Runs the AWS CLI (PyPI `awscli`, unmodified) against the endpoint with a
/// job's credentials and no user config: (success, stdout, stderr).
async fn aws(creds: &Value, args: &[&str]) -> (bool, String, String) {
    let field = |k: &str| creds[k].as_str().unwrap().to_string();
    common::aws_cli(
        &field("endpoint_url"),
        &field("access_key"),
        &field("secret_key"),
        args,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_copies_lists_presigns_and_removes() {
    let s = served().await;
    let (id, other, creds) = two_jobs(&s).await;
    let tmp = tempfile::tempdir().unwrap();
    // Above the CLI's 8 MB threshold: `aws s3 cp` uploads it in parts.
    let (file, sha) = weights(tmp.path(), "lora.safetensors", 12 * 1024 * 1024);
    let url = format!("s3://outputs/{id}/lora.safetensors");

    let (ok_cp, _, err) = aws(&creds, &["s3", "cp", file.to_str().unwrap(), &url]).await;
    assert!(ok_cp, "aws s3 cp up: {err}");
    let (ok_ls, listing, err) = aws(&creds, &["s3", "ls", &format!("s3://outputs/{id}/")]).await;
    assert!(ok_ls, "aws s3 ls: {err}");
    assert!(
        listing.contains(&format!("{} lora.safetensors", 12 * 1024 * 1024)),
        "{listing}"
    );
    let (ok_head, head, err) = aws(
        &creds,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "outputs",
            "--key",
            &format!("{id}/lora.safetensors"),
        ],
    )
    .await;
    assert!(ok_head, "aws s3api head-object: {err}");
    let head: Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentLength"], 12 * 1024 * 1024);
    assert!(head["ETag"].as_str().unwrap().ends_with("-2\""), "{head}");

    let back = tmp.path().join("back.safetensors");
    let (ok_down, _, err) = aws(&creds, &["s3", "cp", &url, back.to_str().unwrap()]).await;
    assert!(ok_down, "aws s3 cp down: {err}");
    assert_eq!(
        hex::encode(Sha256::digest(std::fs::read(&back).unwrap())),
        sha
    );

    // `aws s3 presign` (SigV4 query form) gives a link that works without credentials.
    let (ok_presign, link, err) =
        aws(&creds, &["s3", "presign", &url, "--expires-in", "300"]).await;
    assert!(ok_presign, "aws s3 presign: {err}");
    let path = link
        .trim()
        .strip_prefix(&s.url)
        .expect("link to this server");
    let got = s.app.anonymous().request("GET", path, &[], "").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(hex::encode(Sha256::digest(&got.body)), sha);

    // Another job's prefix is refused, as S3 would say it.
    let (ok_other, _, err) = aws(
        &creds,
        &[
            "s3",
            "cp",
            file.to_str().unwrap(),
            &format!("s3://outputs/{other}/x"),
        ],
    )
    .await;
    assert!(!ok_other);
    assert!(err.contains("AccessDenied"), "{err}");

    let (ok_rm, _, err) = aws(&creds, &["s3", "rm", &url]).await;
    assert!(ok_rm, "aws s3 rm: {err}");
    let (_, listing, _) = aws(&creds, &["s3", "ls", &format!("s3://outputs/{id}/")]).await;
    assert!(!listing.contains("lora.safetensors"), "{listing}");
}

#[tokio::test]
async fn an_object_above_the_configured_limit_is_refused_whole() {
    let s = served_with(&[("storage_max_object_mb", "1")]).await;
    s.fake
        .set_default_script(Script::training(5, 100, 10, Outcome::Aborted));
    let id = submit(&s.app, json!({"config": {"--max_train_steps": 100}})).await;
    let secret = injected_s3(&trainer_input(&s, &id).await)["secret_key"]
        .as_str()
        .unwrap()
        .to_string();
    let token = [("x-upload-token", secret.as_str())];
    let path = format!("/api/cloud/storage/outputs/{id}/big.safetensors");
    let big = "x".repeat(1024 * 1024 + 1);
    let r = s.app.anonymous().request("PUT", &path, &token, big).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("<Code>EntityTooLarge</Code>"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("storage_max_object_mb"), "{}", r.text());
    // Nothing of it was kept: no chunk, no manifest, not listed.
    let keys = common::stored(&s.app).keys();
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("s3d:") || k.starts_with("s3o:")),
        "{keys:?}"
    );
    let outputs = s
        .app
        .request("GET", &format!("/api/cloud/jobs/{id}/outputs"), &[], "")
        .await
        .json();
    assert_eq!(outputs["count"], 0, "{outputs}");
    // At the limit is fine.
    let r = s
        .app
        .anonymous()
        .request("PUT", &path, &token, "x".repeat(1024 * 1024))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
