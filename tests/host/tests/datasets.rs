//! Bringing a dataset without a server folder: `aws s3 sync` (PyPI `awscli`,
//! unmodified) into `s3://datasets/<name>` with an API key's S3 pair, the
//! dataset listed through the API, submitted as `dataset://<name>` and zipped
//! byte for byte into what Replicate receives; boto3 likewise, large files in
//! parts; other users see nothing of it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cloudtuner_testhost::App;
use common::{TestApp, noise, post_json, researcher};
use serde_json::{Value, json};

/// A key of `bearer`'s user scoped to datasets and jobs: its S3 credentials.
async fn dataset_key(app: &App, bearer: &str) -> Value {
    let r = app
        .with_header("authorization", bearer)
        .request(
            "POST",
            "/api/cloud/auth/api-keys",
            &[("content-type", "application/json")],
            json!({"name": "sync", "scoped_permissions":
                   ["dataset.upload", "job.submit", "job.view.own"]})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    let creds = body["s3_credentials"].clone();
    assert_eq!(creds["bucket"], "datasets", "{body}");
    assert!(creds["access_key_id"].as_str().unwrap().starts_with("key_"));
    creds
}

/// Runs the AWS CLI with `creds` and no user config: (success, stdout, stderr).
async fn aws(creds: &Value, args: &[&str]) -> (bool, String, String) {
    let field = |k: &str| creds[k].as_str().unwrap().to_string();
    common::aws_cli(
        &field("endpoint_url"),
        &field("access_key_id"),
        &field("secret_access_key"),
        args,
    )
    .await
}

/// A dataset folder: images (one above the CLI's 8 MB multipart threshold),
/// captions, a sub-folder. Returns {relative path: bytes}.
fn dataset_folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("0.png".to_string(), noise(200_000, 1));
    files.insert("0.txt".to_string(), b"a photo of sks cat".to_vec());
    files.insert("1.jpg".to_string(), noise(9 * 1024 * 1024, 2));
    files.insert("1.txt".to_string(), b"sks cat on a sofa".to_vec());
    files.insert("more/2.webp".to_string(), noise(50_000, 3));
    files.insert("more/2.txt".to_string(), b"sks cat, close up".to_vec());
    for (path, bytes) in &files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    files
}

async fn get_as(app: &App, bearer: &str, path: &str) -> (u16, Value) {
    let r = app
        .with_header("authorization", bearer)
        .request("GET", path, &[], "")
        .await;
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_sync_brings_a_dataset_that_submit_zips_byte_for_byte() {
    let s = TestApp::builder().served().start().await;
    let alice = researcher(&s.app, "alice").await;
    let creds = dataset_key(&s.app, &alice).await;
    let folder = tempfile::tempdir().unwrap();
    let files = dataset_folder(folder.path());
    let src = folder.path().to_str().unwrap();

    let (ok, out, err) = aws(&creds, &["s3", "sync", src, "s3://datasets/cats"]).await;
    assert!(ok, "aws s3 sync: {out}\n{err}");
    assert_eq!(out.matches("upload:").count(), files.len(), "{out}");
    // A second sync finds everything in place: listing sizes and times agree.
    let (ok, out, err) = aws(&creds, &["s3", "sync", src, "s3://datasets/cats"]).await;
    assert!(ok && !out.contains("upload:"), "second sync: {out}\n{err}");
    let (ok, listing, err) = aws(&creds, &["s3", "ls", "--recursive", "s3://datasets/cats/"]).await;
    assert!(ok, "aws s3 ls: {err}");
    for path in files.keys() {
        assert!(listing.contains(&format!("cats/{path}")), "{listing}");
    }
    let (ok, top, _) = aws(&creds, &["s3", "ls", "s3://datasets/"]).await;
    assert!(ok && top.contains("PRE cats/"), "{top}");

    // Through the API: the dataset with its counts.
    let (status, list) = get_as(&s.app, &alice, "/api/cloud/datasets").await;
    assert_eq!(status, 200, "{list}");
    let cats = &list["datasets"][0];
    assert_eq!(cats["name"], "cats");
    assert_eq!(cats["state"], "ready");
    assert_eq!(cats["reference"], "dataset://cats");
    assert_eq!(cats["file_count"], files.len());
    assert_eq!(cats["caption_files"], 3);
    assert_eq!(cats["image_files"], 3);
    let total: usize = files.values().map(Vec::len).sum();
    assert_eq!(cats["bytes"], total);
    let (status, one) = get_as(&s.app, &alice, "/api/cloud/datasets/cats").await;
    assert_eq!(status, 200);
    assert_eq!(one["files"].as_array().unwrap().len(), files.len());

    // CopyObject, then `sync --delete` removes what the folder no longer has.
    let (ok, _, err) = aws(
        &creds,
        &[
            "s3",
            "cp",
            "s3://datasets/cats/0.txt",
            "s3://datasets/cats/extra/copy.txt",
        ],
    )
    .await;
    assert!(ok, "aws s3 cp (copy): {err}");
    let (ok, copied, _) = aws(
        &creds,
        &["s3", "cp", "s3://datasets/cats/extra/copy.txt", "-"],
    )
    .await;
    assert!(ok && copied == "a photo of sks cat", "{copied}");
    let (ok, out, err) = aws(
        &creds,
        &["s3", "sync", "--delete", src, "s3://datasets/cats"],
    )
    .await;
    assert!(
        ok && out.contains("delete: s3://datasets/cats/extra/copy.txt"),
        "{out}\n{err}"
    );
    // DeleteObjects (`s3api delete-objects`) on a key that is gone and one that never was.
    let (ok, out, err) = aws(
        &creds,
        &[
            "s3api",
            "delete-objects",
            "--bucket",
            "datasets",
            "--delete",
            "Objects=[{Key=cats/extra/copy.txt},{Key=cats/none.txt}]",
        ],
    )
    .await;
    assert!(ok && out.contains("cats/none.txt"), "{out}\n{err}");

    // ListParts: an upload in parts shows its stored parts, for resuming.
    let (ok, out, err) = aws(
        &creds,
        &[
            "s3api",
            "create-multipart-upload",
            "--bucket",
            "datasets",
            "--key",
            "cats/big.bin",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let upload_id = serde_json::from_str::<Value>(&out).unwrap()["UploadId"]
        .as_str()
        .unwrap()
        .to_string();
    let part = folder.path().join("part.bin");
    std::fs::write(&part, noise(1000, 9)).unwrap();
    let (ok, _, err) = aws(
        &creds,
        &[
            "s3api",
            "upload-part",
            "--bucket",
            "datasets",
            "--key",
            "cats/big.bin",
            "--part-number",
            "1",
            "--upload-id",
            &upload_id,
            "--body",
            part.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, out, err) = aws(
        &creds,
        &[
            "s3api",
            "list-parts",
            "--bucket",
            "datasets",
            "--key",
            "cats/big.bin",
            "--upload-id",
            &upload_id,
        ],
    )
    .await;
    assert!(ok, "{err}");
    let parts = serde_json::from_str::<Value>(&out).unwrap();
    assert_eq!(parts["Parts"][0]["PartNumber"], 1, "{parts}");
    assert_eq!(parts["Parts"][0]["Size"], 1000, "{parts}");
    let (ok, _, err) = aws(
        &creds,
        &[
            "s3api",
            "abort-multipart-upload",
            "--bucket",
            "datasets",
            "--key",
            "cats/big.bin",
            "--upload-id",
            &upload_id,
        ],
    )
    .await;
    assert!(ok, "{err}");

    // Secrets and hidden files are refused, each in words.
    let env = folder.path().join("x.env");
    std::fs::write(&env, "TOKEN=1").unwrap();
    let (ok, _, err) = aws(
        &creds,
        &[
            "s3",
            "cp",
            env.to_str().unwrap(),
            "s3://datasets/cats/x.env",
        ],
    )
    .await;
    assert!(!ok && err.contains("key or secret"), "{err}");

    // Another user sees nothing of it, through S3 or the API.
    let bob = researcher(&s.app, "bob").await;
    let bob_creds = dataset_key(&s.app, &bob).await;
    let (ok, listing, _) = aws(
        &bob_creds,
        &["s3", "ls", "--recursive", "s3://datasets/cats/"],
    )
    .await;
    assert!(
        !listing.contains("0.png"),
        "bob listed alice's files: {ok} {listing}"
    );
    let (ok, _, err) = aws(&bob_creds, &["s3", "cp", "s3://datasets/cats/0.txt", "-"]).await;
    assert!(!ok && err.contains("404"), "{err}");
    assert_eq!(
        get_as(&s.app, &bob, "/api/cloud/datasets/cats").await.0,
        404
    );
    let r = s
        .app
        .with_header("authorization", &bob)
        .request("DELETE", "/api/cloud/datasets/cats", &[], "")
        .await;
    assert_eq!(r.status, 404);
    let bob_submit = s
        .app
        .with_header("authorization", &bob)
        .request(
            "POST",
            common::SUBMIT,
            &[("content-type", "application/json")],
            json!({"config": {"--max_train_steps": 10},
                   "dataloader_config": [{"id": "cats", "instance_data_dir": "dataset://cats"}]})
            .to_string(),
        )
        .await;
    assert_eq!(bob_submit.status, 400, "{}", bob_submit.text());
    assert!(bob_submit.text().contains("no uploaded dataset named"));

    // Alice submits with it: Replicate gets a zip of exactly those files.
    let r = s
        .app
        .with_header("authorization", &alice)
        .request(
            "POST",
            common::SUBMIT,
            &[("content-type", "application/json")],
            json!({"config": {"--max_train_steps": 10},
                   "dataloader_config": [{"id": "cats", "type": "local",
                        "instance_data_dir": "dataset://cats", "caption_strategy": "textfile"}]})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["data_uploaded"], true);
    let ids = s.fake.file_ids();
    assert_eq!(ids.len(), 1);
    let got = common::unzip(&s.fake.file_bytes(&ids[0]).unwrap());
    let want: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, b)| (format!("cats/{p}"), b.clone()))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert!(got == want, "the zipped bytes differ from the folder's");

    // Deleting the dataset removes its files.
    let r = s
        .app
        .with_header("authorization", &alice)
        .request("DELETE", "/api/cloud/datasets/cats", &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["deleted_files"], files.len());
    let (_, listing, _) = aws(&creds, &["s3", "ls", "--recursive", "s3://datasets/"]).await;
    assert!(listing.trim().is_empty(), "{listing}");
    assert_eq!(
        get_as(&s.app, &alice, "/api/cloud/datasets/cats").await.0,
        404
    );
}

#[tokio::test]
async fn the_seeds_server_path_is_still_refused_naming_the_dataset_and_path() {
    let s = TestApp::builder().start().await;
    let r = post_json(
        &s.app,
        common::SUBMIT,
        &json!({"config": {"--model_family": "flux", "--max_train_steps": 10},
                "dataloader_config": [{"id": "my-dataset", "type": "local",
                    "instance_data_dir": "/data/datasets/my-dataset"}]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"], "invalid_dataset");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("\"my-dataset\"") && message.contains("/data/datasets/my-dataset"),
        "{message}"
    );
    assert!(s.fake.file_ids().is_empty());
}

/// Runs `ops` through boto3 against the `datasets` bucket with a dataset key's pair.
async fn boto3(creds: &Value, ops: Value) -> Vec<Value> {
    common::run_boto3(json!({
        "endpoint": creds["endpoint_url"],
        "access_key": creds["access_key_id"],
        "secret_key": creds["secret_access_key"],
        "bucket": creds["bucket"],
        "ops": ops,
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_uploads_a_dataset_in_parts_that_only_its_owner_reads() {
    use sha2::{Digest, Sha256};
    let s = TestApp::builder().served().start().await;
    let alice = researcher(&s.app, "alice").await;
    let bob = researcher(&s.app, "bob").await;
    let creds = dataset_key(&s.app, &alice).await;
    let bob_creds = dataset_key(&s.app, &bob).await;
    let dir = tempfile::tempdir().unwrap();
    // 12 MiB: boto3's upload_file goes multipart above 8 MiB (two parts here).
    let big = noise(12 * 1024 * 1024, 7);
    let big_path = dir.path().join("big.png");
    std::fs::write(&big_path, &big).unwrap();
    let back = dir.path().join("back.png");
    let r = boto3(
        &creds,
        json!([
            {"op": "upload_file", "path": big_path, "key": "pets/big.png"},
            {"op": "put", "key": "pets/big.txt", "body": "a big dog"},
            {"op": "list", "prefix": "pets/"},
            {"op": "download_file", "key": "pets/big.png", "path": back},
        ]),
    )
    .await;
    assert!(r.iter().all(|o| o["ok"] == true), "{r:?}");
    assert_eq!(r[2]["keys"], json!(["pets/big.png", "pets/big.txt"]));
    assert_eq!(r[3]["sha256"], hex::encode(Sha256::digest(&big)));

    let (status, pets) = get_as(&s.app, &alice, "/api/cloud/datasets/pets").await;
    assert_eq!(status, 200, "{pets}");
    assert_eq!(pets["state"], "ready", "{pets}");
    assert_eq!(pets["file_count"], 2, "{pets}");
    assert_eq!(pets["bytes"], big.len() as u64 + 9, "{pets}");

    // Bob's pair reaches his own namespace only: alice's objects do not exist there.
    let r = boto3(
        &bob_creds,
        json!([
            {"op": "get", "key": "pets/big.txt"},
            {"op": "list", "prefix": ""},
        ]),
    )
    .await;
    assert_eq!(r[0]["code"], "NoSuchKey", "{r:?}");
    assert_eq!(r[1]["keys"], json!([]), "{r:?}");
    let (status, _) = get_as(&s.app, &bob, "/api/cloud/datasets/pets").await;
    assert_eq!(status, 404);
}
