//! The fake speaks Replicate's API: shapes, auth, timelines, faults, webhooks.

use bytes::Bytes;
use fake_replicate::{DEFAULT_TOKEN, FakeReplicate, Fault, FaultKind, Outcome, Script, signing};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// A minimal HTTP/1 client (one request per connection).
async fn call(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, http::HeaderMap, Vec<u8>), String> {
    let uri: http::Uri = url.parse().unwrap();
    let stream = tokio::net::TcpStream::connect((uri.host().unwrap(), uri.port_u16().unwrap()))
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", uri.authority().unwrap().as_str())
        .header("content-type", content_type);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Ok((status, headers, body))
}

async fn get(fake: &FakeReplicate, path: &str) -> (u16, Value) {
    let (s, _, b) = call(
        &fake.url(),
        "GET",
        path,
        Some(DEFAULT_TOKEN),
        "application/json",
        vec![],
    )
    .await
    .unwrap();
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn post(fake: &FakeReplicate, path: &str, body: Value) -> (u16, Value) {
    let (s, _, b) = call(
        &fake.url(),
        "POST",
        path,
        Some(DEFAULT_TOKEN),
        "application/json",
        body.to_string().into_bytes(),
    )
    .await
    .unwrap();
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[tokio::test]
async fn auth_account_and_webhook_secret() {
    let fake = FakeReplicate::start().await;
    let (s, h, b) = call(&fake.url(), "GET", "/v1/account", Some("nope"), "", vec![])
        .await
        .unwrap();
    assert_eq!(s, 401);
    assert_eq!(h["content-type"], "application/problem+json");
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["detail"],
        "You did not pass a valid authentication token"
    );
    assert_eq!(get(&fake, "/v1/account").await.1["username"], "fake-user");
    let key = get(&fake, "/v1/webhooks/default/secret").await.1["key"].clone();
    assert_eq!(key, json!(fake.webhook_secret()));
    assert!(key.as_str().unwrap().starts_with("whsec_"));
}

#[tokio::test]
async fn predictions_follow_their_script_and_cancel() {
    let fake = FakeReplicate::start().await;
    let version = fake.add_model("acme", "trainer");
    assert_eq!(
        get(&fake, "/v1/models/acme/trainer").await.1["latest_version"]["id"],
        json!(version)
    );
    assert_eq!(
        get(&fake, "/v1/models/acme/trainer/versions").await.1["results"][0]["id"],
        json!(version)
    );
    fake.push_script(Script::training(
        5,
        3,
        10,
        Outcome::Succeeded {
            output: json!("https://x/out.tar"),
        },
    ));
    let (s, p) = post(
        &fake,
        "/v1/predictions",
        json!({"version": format!("acme/trainer:{version}"), "input": {"a": 1}}),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(p["status"], "starting");
    assert_eq!(p["id"].as_str().unwrap().len(), 26);
    let id = p["id"].as_str().unwrap().to_string();
    fake.advance(5);
    let (_, p) = get(&fake, &format!("/v1/predictions/{id}")).await;
    assert_eq!(p["status"], "processing");
    assert!(p["started_at"].is_string());
    fake.advance(20);
    let (_, p) = get(&fake, &format!("/v1/predictions/{id}")).await;
    assert!(p["logs"].as_str().unwrap().contains("step 2/3"));
    assert!(p["logs"].as_str().unwrap().contains("loss="));
    fake.advance(100);
    let (_, p) = get(&fake, &format!("/v1/predictions/{id}")).await;
    assert_eq!(p["status"], "succeeded");
    assert_eq!(p["output"], "https://x/out.tar");
    assert!(p["metrics"]["predict_time"].as_f64().unwrap() > 30.0);

    let (_, q) = post(
        &fake,
        "/v1/predictions",
        json!({"version": version, "input": {}}),
    )
    .await;
    let qid = q["id"].as_str().unwrap();
    let (s, c) = post(&fake, &format!("/v1/predictions/{qid}/cancel"), json!({})).await;
    assert_eq!((s, c["status"].as_str()), (200, Some("canceled")));
    assert_eq!(
        post(&fake, "/v1/predictions/nope/cancel", json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        post(
            &fake,
            "/v1/predictions",
            json!({"version": "acme/trainer:bad", "input": {}})
        )
        .await
        .0,
        422
    );
}

#[tokio::test]
async fn list_pages_with_a_cursor_newest_first() {
    let fake = FakeReplicate::start().await;
    let version = fake.add_model("acme", "trainer");
    fake.set_page_size(2);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            post(
                &fake,
                "/v1/predictions",
                json!({"version": version, "input": {}}),
            )
            .await
            .1["id"]
                .clone(),
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = "/v1/predictions".to_string();
    loop {
        let (_, page) = get(&fake, &path).await;
        for r in page["results"].as_array().unwrap() {
            assert!(r.get("logs").is_none());
            seen.push(r["id"].clone());
        }
        match page["next"].as_str() {
            Some(next) => path = next.trim_start_matches(&fake.url()).to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn files_are_multipart_with_real_checksums() {
    let fake = FakeReplicate::start().await;
    let content = b"PK\x03\x04 fake zip bytes".to_vec();
    let boundary = "XyZ";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"data.zip\"\r\nContent-Type: application/zip\r\n\r\n").as_bytes());
    body.extend_from_slice(&content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (s, _, b) = call(
        &fake.url(),
        "POST",
        "/v1/files",
        Some(DEFAULT_TOKEN),
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    )
    .await
    .unwrap();
    assert_eq!(s, 201);
    let f: Value = serde_json::from_slice(&b).unwrap();
    use sha2::Digest;
    assert_eq!(
        f["checksums"]["sha256"],
        hex::encode(sha2::Sha256::digest(&content))
    );
    assert_eq!(f["size"], content.len());
    assert_eq!(f["name"], "data.zip");
    let id = f["id"].as_str().unwrap();
    assert_eq!(fake.file_bytes(id).unwrap(), content);
    assert_eq!(f["urls"]["get"], format!("{}/v1/files/{id}", fake.url()));
}

#[tokio::test]
async fn faults_throttle_fail_and_drop_after_the_side_effect() {
    let fake = FakeReplicate::start().await;
    let version = fake.add_model("acme", "trainer");
    fake.fault(Fault::new(
        Some("GET"),
        "/v1/account",
        FaultKind::Status {
            status: 429,
            retry_after: 2,
        },
        1,
    ));
    let (s, h, _) = call(
        &fake.url(),
        "GET",
        "/v1/account",
        Some(DEFAULT_TOKEN),
        "",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!((s, h["retry-after"].to_str().unwrap()), (429, "2"));
    assert_eq!(h["ratelimit-remaining"], "0");
    assert_eq!(get(&fake, "/v1/account").await.0, 200, "fault used up");
    fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::DropResponse,
        1,
    ));
    let r = call(
        &fake.url(),
        "POST",
        "/v1/predictions",
        Some(DEFAULT_TOKEN),
        "application/json",
        json!({"version": version, "input": {}})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert!(r.is_err(), "connection must close without a response");
    assert_eq!(fake.prediction_ids().len(), 1, "the side effect happened");
    fake.fault(Fault::new(
        None,
        "/v1/account",
        FaultKind::Status {
            status: 502,
            retry_after: 0,
        },
        1,
    ));
    assert_eq!(get(&fake, "/v1/account").await.0, 502);
}

#[tokio::test]
async fn webhooks_are_signed_and_terminal_ones_retried() {
    // A receiver that fails once, then accepts, recording what it got.
    let receiver = fake_replicate::receiver::Receiver::start(1).await;
    let hook = receiver.url.clone();
    let fake = FakeReplicate::start().await;
    let version = fake.add_model("acme", "trainer");
    fake.push_script(Script::training(
        1,
        2,
        1,
        Outcome::Failed {
            error: "CUDA out of memory".into(),
        },
    ));
    post(&fake, "/v1/predictions", json!({"version": version, "input": {}, "webhook": hook, "webhook_events_filter": ["completed"]})).await;
    fake.advance(100);
    assert_eq!(fake.tick().await, 1);
    assert_eq!(fake.tick().await, 1, "failed terminal webhook is retried");
    assert_eq!(fake.tick().await, 0);
    let got = receiver.received.lock().unwrap();
    assert_eq!(got.len(), 2);
    let ids: Vec<_> = got.iter().map(|(h, _)| h["webhook-id"].clone()).collect();
    assert_eq!(ids[0], ids[1], "retries keep the webhook-id");
    for (h, body) in got.iter() {
        let sig = signing::sign(
            &fake.webhook_secret(),
            h["webhook-id"].to_str().unwrap(),
            h["webhook-timestamp"].to_str().unwrap().parse().unwrap(),
            body,
        )
        .unwrap();
        assert_eq!(h["webhook-signature"].to_str().unwrap(), sig);
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"], "CUDA out of memory");
    }
}
