//! The HTTP routes of the fake (`/v1/...`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use md5::Md5;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::model::{FaultKind, FileObj, Prediction, RecordedRequest, State, new_id, rfc3339};
use crate::script::is_terminal;

type Shared = Arc<Mutex<State>>;
type Resp = Response<Full<Bytes>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn json_resp(status: u16, body: &Value) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("ratelimit-remaining", "2999")
        .header("ratelimit-reset", "1")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn problem(status: u16, title: &str, detail: &str) -> Resp {
    let mut r = json_resp(
        status,
        &json!({"title": title, "detail": detail, "status": status}),
    );
    r.headers_mut().insert(
        "content-type",
        "application/problem+json".parse().expect("header"),
    );
    r
}

/// The error type makes hyper drop the connection without a response.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "response dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

pub(crate) async fn handle(state: Shared, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Replicate's prediction deadline (`Cancel-After: 30m`).
    let cancel_after = req
        .headers()
        .get("cancel-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let fault = {
        let mut s = lock(&state);
        s.requests.push(RecordedRequest {
            method: method.clone(),
            path: if query.is_empty() {
                path.clone()
            } else {
                format!("{path}?{query}")
            },
            authorization: auth.clone(),
            body: body.to_vec(),
        });
        let found = s.faults.iter_mut().find(|f| f.matches(&method, &path));
        found.map(|f| {
            f.times -= 1;
            f.kind.clone()
        })
    };
    let mut drop_after = false;
    match fault {
        Some(FaultKind::Status {
            status,
            retry_after,
        }) => {
            let mut r = if status == 429 {
                problem(
                    429,
                    "Too Many Requests",
                    &format!("Request was throttled. Expected available in {retry_after} second."),
                )
            } else {
                problem(status, "Server Error", "Internal server error")
            };
            if status == 429 {
                let h = r.headers_mut();
                h.insert("retry-after", retry_after.to_string().parse().expect("h"));
                h.insert("ratelimit-remaining", "0".parse().expect("h"));
                h.insert(
                    "ratelimit-reset",
                    retry_after.to_string().parse().expect("h"),
                );
            }
            return Ok(r);
        }
        Some(FaultKind::Latency(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::DropResponse) => drop_after = true,
        None => {}
    }

    let authorized = {
        let s = lock(&state);
        auth.as_deref()
            .and_then(|a| {
                a.strip_prefix("Bearer ")
                    .or_else(|| a.strip_prefix("Token "))
            })
            .is_some_and(|t| s.tokens.iter().any(|k| k == t))
    };
    // Replicate's status page (replicatestatus.com) is public; the fake
    // serves its summary beside the API.
    let public = method == "GET" && path == "/api/v1/summary";
    let resp = if public {
        json_resp(200, &lock(&state).status_summary)
    } else if !authorized {
        problem(
            401,
            "Unauthenticated",
            "You did not pass a valid authentication token",
        )
    } else {
        route(
            &state,
            &method,
            &path,
            &query,
            &content_type,
            cancel_after,
            body,
        )
        .await
    };
    if drop_after {
        return Err(Dropped);
    }
    Ok(resp)
}

async fn route(
    state: &Shared,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    cancel_after: Option<String>,
    body: Bytes,
) -> Resp {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("GET", ["v1", "account"]) => json_resp(200, &lock(state).account),
        ("GET", ["v1", "hardware"]) => json_resp(
            200,
            &json!([{"sku":"cpu","name":"CPU"},{"sku":"gpu-l40s","name":"Nvidia L40S GPU"},{"sku":"gpu-h100","name":"Nvidia H100 GPU"}]),
        ),
        ("GET", ["v1", "webhooks", "default", "secret"]) => {
            json_resp(200, &json!({"key": lock(state).webhook_secret}))
        }
        ("GET", ["v1", "models", owner, name]) => {
            match lock(state).model_json(&format!("{owner}/{name}")) {
                Some(m) => json_resp(200, &m),
                None => problem(404, "Not found", "Model not found"),
            }
        }
        ("GET", ["v1", "models", owner, name, "versions"]) => {
            let s = lock(state);
            match s.models.get(&format!("{owner}/{name}")) {
                Some(vs) => json_resp(
                    200,
                    &json!({"next": null, "previous": null,
                            "results": vs.iter().map(|v| s.version_json(v)).collect::<Vec<_>>()}),
                ),
                None => problem(404, "Not found", "Model not found"),
            }
        }
        ("POST", ["v1", "predictions"]) => create_prediction(state, &body, cancel_after),
        ("GET", ["v1", "predictions"]) => list_predictions(state, query),
        ("GET", ["v1", "predictions", id]) => match lock(state).prediction_json(id, true) {
            Some(p) => json_resp(200, &p),
            None => problem(404, "Not found", "Prediction not found"),
        },
        ("POST", ["v1", "predictions", id, "cancel"]) => cancel_prediction(state, id),
        ("POST", ["v1", "files"]) => create_file(state, content_type, body).await,
        ("GET", ["v1", "files"]) => {
            let s = lock(state);
            let results: Vec<Value> = s.files.values().map(|f| f.json.clone()).collect();
            json_resp(
                200,
                &json!({"next": null, "previous": null, "results": results}),
            )
        }
        ("GET", ["v1", "files", id]) => match lock(state).files.get(*id) {
            Some(f) => json_resp(200, &f.json),
            None => problem(404, "Not found", "File not found"),
        },
        ("DELETE", ["v1", "files", id]) => match lock(state).files.remove(*id) {
            Some(_) => Response::builder()
                .status(204)
                .body(Full::new(Bytes::new()))
                .expect("response"),
            None => problem(404, "Not found", "File not found"),
        },
        _ => problem(404, "Not found", "Not found"),
    }
}

/// `Cancel-After`'s duration in seconds: a number with `s`, `m` or `h`
/// (or several, as in `1h30m`).
fn parse_duration(text: &str) -> Option<u64> {
    let (mut total, mut digits) = (0u64, String::new());
    for c in text.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            's' | 'm' | 'h' => {
                let n: u64 = digits.parse().ok()?;
                total += n * match c {
                    's' => 1,
                    'm' => 60,
                    _ => 3600,
                };
                digits.clear();
            }
            _ => return None,
        }
    }
    (digits.is_empty() && total > 0).then_some(total)
}

fn create_prediction(state: &Shared, body: &[u8], cancel_after: Option<String>) -> Resp {
    let deadline = match cancel_after.as_deref().map(parse_duration) {
        None => None,
        Some(Some(secs)) => Some(secs),
        Some(None) => {
            return problem(
                422,
                "Invalid Cancel-After",
                "Cancel-After must be a duration such as 30m",
            );
        }
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return problem(400, "Bad request", "Request body must be JSON");
    };
    let Some(spec) = req.get("version").and_then(Value::as_str) else {
        return problem(422, "Invalid input", "version is required");
    };
    let Some(input) = req.get("input").filter(|i| i.is_object()).cloned() else {
        return problem(422, "Invalid input", "input must be an object");
    };
    let webhook = req
        .get("webhook")
        .and_then(Value::as_str)
        .map(str::to_string);
    let events_filter = req.get("webhook_events_filter").and_then(|f| {
        f.as_array().map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
    });
    let mut s = lock(state);
    let Some((model, version)) = s.resolve_version(spec) else {
        return problem(422, "Invalid version", "Invalid version or not permitted");
    };
    let script = s
        .queued_scripts
        .pop_front()
        .unwrap_or_else(|| s.default_script.clone());
    let created = s.now();
    let p = Prediction {
        id: new_id(),
        model,
        version,
        input,
        created,
        script,
        // At its deadline the prediction is cancelled (aborted if it never started).
        canceled_at: deadline.map(|secs| created + secs),
        webhook,
        events_filter,
        delivered_steps: 0,
        cancel_delivered: false,
        terminal_retry: None,
    };
    let body = s.render(&p, true);
    s.predictions.push(p);
    json_resp(201, &body)
}

fn list_predictions(state: &Shared, query: &str) -> Resp {
    let s = lock(state);
    let offset: usize = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("cursor="))
        .and_then(|c| c.strip_prefix("o"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let newest_first: Vec<&Prediction> = s.predictions.iter().rev().collect();
    let page: Vec<Value> = newest_first
        .iter()
        .skip(offset)
        .take(s.page_size)
        .map(|p| s.render(p, false))
        .collect();
    let next = (offset + s.page_size < newest_first.len())
        .then(|| format!("{}/v1/predictions?cursor=o{}", s.base, offset + s.page_size));
    json_resp(
        200,
        &json!({"next": next, "previous": null, "results": page}),
    )
}

fn cancel_prediction(state: &Shared, id: &str) -> Resp {
    let mut s = lock(state);
    let now = s.now();
    let Some(idx) = s.predictions.iter().position(|p| p.id == id) else {
        return problem(404, "Not found", "Prediction not found");
    };
    if !is_terminal(&s.predictions[idx].view(now).status) {
        s.predictions[idx].canceled_at = Some(now);
    }
    let body = s.render(&s.predictions[idx], true);
    json_resp(200, &body)
}

async fn create_file(state: &Shared, content_type: &str, body: Bytes) -> Resp {
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return problem(400, "Bad request", "expected multipart/form-data");
    };
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut content: Option<(String, String, Vec<u8>)> = None;
    let mut metadata = json!({});
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name() {
            Some("content") => {
                let name = field.file_name().unwrap_or("file").to_string();
                let ctype = field
                    .content_type()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "application/octet-stream".into());
                let Ok(bytes) = field.bytes().await else {
                    return problem(400, "Bad request", "unreadable content part");
                };
                content = Some((name, ctype, bytes.to_vec()));
            }
            Some("metadata") => {
                if let Ok(text) = field.text().await {
                    metadata = serde_json::from_str(&text).unwrap_or(json!({}));
                }
            }
            _ => {}
        }
    }
    let Some((name, ctype, bytes)) = content else {
        return problem(
            422,
            "Invalid input",
            "a multipart part named `content` is required",
        );
    };
    let mut s = lock(state);
    let now = s.now();
    use base64::Engine as _;
    let id = base64::engine::general_purpose::STANDARD_NO_PAD.encode(new_id());
    let md5 = hex::encode(Md5::digest(&bytes));
    let json = json!({
        "id": id,
        "name": name,
        "content_type": ctype,
        "size": bytes.len(),
        "etag": md5,
        "checksums": {"sha256": hex::encode(Sha256::digest(&bytes)), "md5": md5},
        "metadata": metadata,
        "created_at": rfc3339(now),
        "expires_at": rfc3339(now + 86_400),
        "urls": {"get": format!("{}/v1/files/{id}", s.base)},
    });
    s.files.insert(
        id,
        FileObj {
            json: json.clone(),
            bytes,
        },
    );
    json_resp(201, &json)
}
