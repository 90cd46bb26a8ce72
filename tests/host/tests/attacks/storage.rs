//! Attacks on storage: the S3-compatible endpoint and datasets. Stored bytes
//! are the users' and trainers', served from the app's own origin; the quota
//! is all that stands between one tenant and the shared store.

use cloudtuner_domain::storage::datasets::MAX_OPEN_UPLOADS;
use cloudtuner_domain::storage::sigv4::{self, Claimed, Signed};
use cloudtuner_testhost::{App, TestResponse};
use fake_replicate::{Outcome, Script};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{TestApp, researcher};

/// The host the test host sends (`App::request`): what SigV4 signs.
const HOST: &str = "127.0.0.1:8001";
const STORAGE: &str = "/api/cloud/storage";
const PAGE: &str =
    "<html><script>fetch('/api/cloud/auth/api-keys',{method:'POST'})</script></html>";

async fn as_user(
    app: &App,
    bearer: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<bytes::Bytes>,
) -> TestResponse {
    app.with_header("authorization", bearer)
        .request(method, path, headers, body)
        .await
}

/// A new user with `role`, signed in: (bearer header value).
async fn signed_in(app: &App, name: &str, role: &str) -> String {
    format!(
        "Bearer {}",
        crate::common::new_user(app, name, role).await.1
    )
}

/// A new API key of `bearer`'s user with `scopes`: the create response (its
/// `key`, and `s3_credentials` when it may upload datasets).
async fn api_key(app: &App, bearer: &str, scopes: &[&str]) -> Value {
    let r = as_user(
        app,
        bearer,
        "POST",
        "/api/cloud/auth/api-keys",
        &[("content-type", "application/json")],
        json!({"name": "k", "scoped_permissions": scopes}).to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

/// `PUT` of a dataset file with the user's login (as the UI uploads).
async fn put_file(
    app: &App,
    bearer: &str,
    key: &str,
    content_type: &str,
    body: &str,
) -> TestResponse {
    let path = format!("{STORAGE}/datasets/{key}");
    as_user(
        app,
        bearer,
        "PUT",
        &path,
        &[("content-type", content_type)],
        body.to_string(),
    )
    .await
}

/// A URL boto3 presigns (SigV4) for `GET bucket/key` with `creds`, as path
/// and query on [`HOST`]: presigning is local, nothing is sent.
fn presign(creds: &Value, bucket: &str, key: &str) -> String {
    let script = r#"
import json, sys, boto3
from botocore.config import Config
a = json.loads(sys.argv[1])
c = boto3.client("s3", endpoint_url=a["endpoint"], aws_access_key_id=a["ak"],
                 aws_secret_access_key=a["sk"], region_name="us-east-1",
                 config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
print(c.generate_presigned_url("get_object", Params={"Bucket": a["bucket"], "Key": a["key"]}, ExpiresIn=300))
"#;
    let args = json!({
        "endpoint": format!("http://{HOST}{STORAGE}"),
        "ak": creds["access_key_id"], "sk": creds["secret_access_key"],
        "bucket": bucket, "key": key,
    });
    let out = std::process::Command::new("python3")
        .args(["-c", script, &args.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    url.trim()
        .strip_prefix(&format!("http://{HOST}"))
        .unwrap_or_else(|| panic!("presigned for another host: {url}"))
        .to_string()
}

/// Asserts a response a browser could open is inert: no sniffing, no
/// script, and (for a document type) a download rather than a page.
fn assert_inert(r: &TestResponse, download: bool) {
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{:?}",
        r.headers
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{:?}",
        r.headers
    );
    let disposition = r.header("content-disposition").unwrap_or_default();
    assert_eq!(
        disposition.starts_with("attachment"),
        download,
        "{:?}",
        r.headers
    );
}

/// SigV4 header-signed request headers for `method path` over a body whose
/// signed hash is `payload_hash` (the hash, not the body: an attacker may
/// change the body after signing).
fn sigv4_headers(
    creds: &Value,
    method: &str,
    path: &str,
    payload_hash: &str,
) -> Vec<(String, String)> {
    let access = creds["access_key_id"].as_str().unwrap();
    let secret = creds["secret_access_key"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let amz_date = sigv4::format_amz_date(now);
    let scope = format!("{}/us-east-1/s3/aws4_request", &amz_date[..8]);
    let headers = vec![
        ("host".to_string(), HOST.to_string()),
        ("x-amz-content-sha256".to_string(), payload_hash.to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    let claimed = Claimed {
        access_key: access.into(),
        scope: scope.clone(),
        amz_date,
        signed_headers: vec![
            "host".into(),
            "x-amz-content-sha256".into(),
            "x-amz-date".into(),
        ],
        signature: String::new(),
        expires_secs: None,
    };
    let signed = Signed {
        method,
        raw_path: path,
        raw_query: "",
        headers: &headers,
    };
    let canonical = sigv4::canonical_request(&signed, &claimed, payload_hash);
    let signature = sigv4::signature(secret, &claimed, &canonical);
    let mut out: Vec<(String, String)> = headers.into_iter().filter(|(n, _)| n != "host").collect();
    out.push((
        "authorization".into(),
        format!("AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"),
    ));
    out
}

fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn s3_code(r: &TestResponse) -> String {
    let t = r.text();
    t.split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
        .to_string()
}

/// A researcher uploads an HTML page into a dataset and presigns a SigV4
/// link to it (boto3 `generate_presigned_url`). Threat: an admin who opens
/// the link runs the script on the app's origin with their session (same
/// site: the `SameSite=Strict` cookie goes along) and mints an admin key for
/// the attacker. The link must download, inert, and so must every stored
/// document type; safe images still show inline, but never sniffed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_link_to_an_uploaded_html_file_downloads_inert() {
    let s = TestApp::builder().start().await;
    let mallory = researcher(&s.app, "mallory").await;
    let creds = api_key(&s.app, &mallory, &["dataset.upload"]).await["s3_credentials"].clone();
    for (key, ct) in [
        ("d/x.html", "text/html"),
        ("d/y.svg", "image/svg+xml"),
        ("d/z.xml", "text/xml"),
        ("d/w.bin", "application/x-unknown"),
    ] {
        let r = put_file(&s.app, &mallory, key, ct, PAGE).await;
        assert_eq!(r.status, 200, "{key}: {}", r.text());
    }
    let r = put_file(&s.app, &mallory, "d/ok.png", "image/png", "png").await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The presigned link, opened by anyone (the admin's browser).
    let link = presign(&creds, "datasets", "d/x.html");
    let r = s.app.anonymous().request("GET", &link, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), PAGE);
    assert_inert(&r, true);
    assert!(
        r.header("content-disposition").unwrap().contains("x.html"),
        "{:?}",
        r.headers
    );

    // Every document type downloads; a PNG shows, but inert too.
    for key in ["d/y.svg", "d/z.xml", "d/w.bin"] {
        let r = as_user(
            &s.app,
            &mallory,
            "GET",
            &format!("{STORAGE}/datasets/{key}"),
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        assert_inert(&r, true);
    }
    let r = as_user(
        &s.app,
        &mallory,
        "GET",
        &format!("{STORAGE}/datasets/d/ok.png"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_inert(&r, false);
    // Errors echo the key: inert as well.
    let r = s
        .app
        .anonymous()
        .request(
            "GET",
            &format!("{STORAGE}/datasets/d/%3Cscript%3E.html"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.header("content-security-policy")
            .unwrap_or_default()
            .contains("sandbox")
    );
}

/// A trainer (holding only its job's upload secret) uploads
/// `outputs/<job>/a.html`; the job view links it as the job's output. Threat:
/// the job's owner or an admin clicks it and runs the trainer's script as
/// themselves on the app's origin. Every link to it must download, inert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_html_output_downloads_inert_from_every_link() {
    let s = TestApp::builder().served().start().await;
    s.fake
        .set_default_script(Script::training(5, 100, 10, Outcome::Aborted));
    let id = s
        .submit(&json!({"config": {"--max_train_steps": 100}}))
        .await;
    let pid = s.job(&id).await["metadata"]["prediction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let input = s.fake.prediction(&pid).unwrap()["input"].clone();
    let config: Value = serde_json::from_str(input["config_json"].as_str().unwrap()).unwrap();
    let secret = config["publishing_config"]
        .as_array()
        .and_then(|a| a.last())
        .unwrap()["secret_key"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("{STORAGE}/outputs/{id}/a.html");
    let r = s
        .app
        .anonymous()
        .request(
            "PUT",
            &path,
            &[
                ("x-upload-token", secret.as_str()),
                ("content-type", "text/html"),
            ],
            PAGE,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The links the UI shows: the job's output and the outputs list.
    let out_url = s.job(&id).await["output_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let outputs = s
        .app
        .request("GET", &format!("/api/cloud/jobs/{id}/outputs"), &[], "")
        .await
        .json();
    let listed = outputs["outputs"][0]["download_path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(out_url.ends_with(&listed), "{out_url} / {listed}");
    for link in [path.as_str(), listed.as_str()] {
        let r = s.app.request("GET", link, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), PAGE);
        assert_inert(&r, true);
    }
    // The UI's "Output:" link downloads instead of opening (static/js/views/job.js).
    let ui = std::fs::read_to_string(
        cloudtuner_testhost::workspace_root().join("static/js/views/job.js"),
    )
    .unwrap();
    assert!(
        ui.contains("download: storedName(j.output_url)"),
        "the Output: link must download"
    );
}

/// A key scoped to `metrics.view` (given to a Prometheus scraper) tries to
/// read its owner's datasets. Threat: whoever holds the scraper's key
/// downloads the owner's training images. Scopes hold for reads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_scoped_to_metrics_reads_none_of_its_owners_datasets() {
    let s = TestApp::builder().start().await;
    // An admin: the role that has metrics.view to give a key.
    let alice = signed_in(&s.app, "alice", "admin").await;
    let r = put_file(
        &s.app,
        &alice,
        "private/1.txt",
        "text/plain",
        "a private caption",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let scraper = api_key(&s.app, &alice, &["metrics.view"]).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let as_scraper = s.app.anonymous().with_header("x-api-key", &scraper);
    for path in [
        format!("{STORAGE}/datasets/private/1.txt"),
        format!("{STORAGE}/datasets?list-type=2&prefix=private/"),
    ] {
        let r = as_scraper.request("GET", &path, &[], "").await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(
            !r.text().contains("private caption") && !r.text().contains("<Contents>"),
            "{}",
            r.text()
        );
    }
    for path in ["/api/cloud/datasets", "/api/cloud/datasets/private"] {
        let r = as_scraper.request("GET", path, &[], "").await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "permission_denied");
    }
    // A key scoped to datasets still reads them.
    let uploader = api_key(&s.app, &alice, &["dataset.upload"]).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .app
        .anonymous()
        .with_header("x-api-key", &uploader)
        .request("GET", &format!("{STORAGE}/datasets/private/1.txt"), &[], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "a private caption"));
}

/// A header-signed PUT whose signed payload hash is of one body, sent with
/// another body framed as aws-chunked and an *unsigned* `Content-Encoding:
/// aws-chunked`. Threat: anyone who can alter a signed request in transit
/// (a proxy, a replay within 15 minutes) replaces the file's bytes; the
/// signature promised the body. Only a signed `STREAMING-*` hash means chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_aws_chunked_header_does_not_skip_the_signed_payload_hash() {
    let s = TestApp::builder().start().await;
    let alice = researcher(&s.app, "alice").await;
    let creds = api_key(&s.app, &alice, &["dataset.upload"]).await["s3_credentials"].clone();
    let path = format!("{STORAGE}/datasets/cats/1.txt");
    let hash = hex::encode(Sha256::digest(b"a cat"));
    let signed = sigv4_headers(&creds, "PUT", &path, &hash);
    let mut tampered = pairs(&signed);
    tampered.push(("content-encoding", "aws-chunked"));
    let r = s
        .app
        .anonymous()
        .request("PUT", &path, &tampered, "4\r\nevil\r\n0\r\n\r\n")
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(s3_code(&r), "XAmzContentSHA256Mismatch", "{}", r.text());
    let r = as_user(&s.app, &alice, "GET", &path, &[], "").await;
    assert_eq!(r.status, 404, "nothing was stored: {}", r.text());
    // The request as signed goes through.
    let r = s
        .app
        .anonymous()
        .request("PUT", &path, &pairs(&signed), "a cat")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A researcher under a 1 MiB quota opens multipart uploads and sends parts
/// but never completes them. Threat: parts were admitted uncounted (and never
/// expired), so one user could fill the shared store with any number of
/// parts. Parts count from the moment they arrive until complete or abort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_parts_count_against_the_dataset_quota() {
    let s = TestApp::builder()
        .var("dataset_quota_mb", "1")
        .start()
        .await;
    let mallory = researcher(&s.app, "mallory").await;
    let part = "x".repeat(700 * 1024);
    let mut uploads = Vec::new();
    for (i, expect) in [(0, 200), (1, 403)] {
        let key = format!("{STORAGE}/datasets/fill/{i}.bin");
        let r = as_user(&s.app, &mallory, "POST", &format!("{key}?uploads"), &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let id = r
            .text()
            .split("<UploadId>")
            .nth(1)
            .unwrap()
            .split("</UploadId>")
            .next()
            .unwrap()
            .to_string();
        let r = as_user(
            &s.app,
            &mallory,
            "PUT",
            &format!("{key}?partNumber=1&uploadId={id}"),
            &[],
            part.clone(),
        )
        .await;
        assert_eq!(r.status, expect, "part of upload {i}: {}", r.text());
        if expect == 403 {
            assert_eq!(s3_code(&r), "QuotaExceeded");
        }
        uploads.push((key, id));
    }
    // A plain PUT does not fit beside the part either.
    let r = put_file(
        &s.app,
        &mallory,
        "fill/plain.bin",
        "application/octet-stream",
        &"y".repeat(400 * 1024),
    )
    .await;
    assert_eq!(
        (r.status, s3_code(&r).as_str()),
        (403, "QuotaExceeded"),
        "{}",
        r.text()
    );
    // Aborting the upload frees its parts' share.
    let (key, id) = &uploads[0];
    let r = as_user(
        &s.app,
        &mallory,
        "DELETE",
        &format!("{key}?uploadId={id}"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = put_file(
        &s.app,
        &mallory,
        "fill/plain.bin",
        "application/octet-stream",
        &"y".repeat(400 * 1024),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A researcher opens multipart uploads without end. Threat: each one is
/// records and an index entry in the shared store, unbounded per user, and
/// (before expiry) kept forever. A user may have so many open, then no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_multipart_uploads_per_user_are_capped() {
    let s = TestApp::builder().start().await;
    let mallory = researcher(&s.app, "mallory").await;
    for i in 0..=MAX_OPEN_UPLOADS {
        let r = as_user(
            &s.app,
            &mallory,
            "POST",
            &format!("{STORAGE}/datasets/many/{i}.bin?uploads"),
            &[],
            "",
        )
        .await;
        if i < MAX_OPEN_UPLOADS {
            assert_eq!(r.status, 200, "upload {i}: {}", r.text());
        } else {
            assert_eq!(
                (r.status, s3_code(&r).as_str()),
                (403, "TooManyUploads"),
                "{}",
                r.text()
            );
        }
    }
    // Another user is not held back by mallory's uploads.
    let bob = researcher(&s.app, "bob").await;
    let r = as_user(
        &s.app,
        &bob,
        "POST",
        &format!("{STORAGE}/datasets/mine/0.bin?uploads"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Parallel PUTs that each fit alone, together over the quota. Threat: each
/// checked the quota, then wrote: all passed one check. Admission is one
/// atomic step, so what is stored never exceeds the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_puts_cannot_all_pass_one_quota_check() {
    let s = TestApp::builder()
        .var("dataset_quota_mb", "1")
        .start()
        .await;
    let mallory = researcher(&s.app, "mallory").await;
    let body = "z".repeat(300 * 1024);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let app = s.app.with_header("authorization", &mallory);
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            app.request(
                "PUT",
                &format!("{STORAGE}/datasets/race/{i}.bin"),
                &[],
                body,
            )
            .await
            .status
        }));
    }
    let mut stored = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 200 || status == 403, "{status}");
        stored += usize::from(status == 200);
    }
    assert!(stored <= 3, "{stored} × 300 KiB stored under a 1 MiB quota");
    let r = as_user(&s.app, &mallory, "GET", "/api/cloud/datasets", &[], "").await;
    let used = r.json()["usage"]["bytes"].as_u64().unwrap();
    assert!(used <= 1024 * 1024, "{used}");
}
