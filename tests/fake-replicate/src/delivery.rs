//! Webhook delivery: after time passes, each prediction with a `webhook` gets
//! one POST carrying its current state when an event it subscribed to happened
//! (Replicate throttles intermediate events the same way). Only the terminal
//! webhook is retried, up to 4 attempts, with the same `webhook-id`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::model::{State, WebhookDelivery, new_id, real_now};
use crate::script::is_terminal;
use crate::signing::sign;

const MAX_TERMINAL_ATTEMPTS: u32 = 4;

struct Outgoing {
    prediction_index: usize,
    url: String,
    webhook_id: String,
    body: Value,
    terminal: bool,
    attempt: u32,
}

fn wants(filter: &Option<Vec<String>>, event: &str) -> bool {
    match filter {
        Some(f) => f.iter().any(|e| e == event),
        None => matches!(event, "output" | "completed"),
    }
}

pub(crate) async fn tick(state: &Arc<Mutex<State>>) -> usize {
    let (outgoing, secret, skew, dropping) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let now = s.now();
        let mut out = Vec::new();
        for i in 0..s.predictions.len() {
            let p = &s.predictions[i];
            let Some(url) = p.webhook.clone() else {
                continue;
            };
            let view = p.view(now);
            if let Some((id, attempts)) = p.terminal_retry.clone() {
                out.push(Outgoing {
                    prediction_index: i,
                    url,
                    webhook_id: id,
                    body: s.render(p, true),
                    terminal: true,
                    attempt: attempts + 1,
                });
                continue;
            }
            let new_steps =
                &p.script.steps[p.delivered_steps.min(view.steps_reached)..view.steps_reached];
            let mut events: Vec<&str> = Vec::new();
            for step in new_steps {
                match step.status.as_deref() {
                    Some("processing") => events.push("start"),
                    Some(s) if is_terminal(s) => events.push("completed"),
                    _ => {}
                }
                if !step.logs.is_empty() {
                    events.push("logs");
                }
                if step.output.is_some() {
                    events.push("output");
                }
            }
            let canceled_now =
                view.status == "canceled" && !p.cancel_delivered && p.canceled_at.is_some();
            if canceled_now {
                events.push("completed");
            }
            let terminal = events.contains(&"completed");
            let send = events.iter().any(|e| wants(&p.events_filter, e));
            let body = s.render(p, true);
            let p = &mut s.predictions[i];
            p.delivered_steps = view.steps_reached;
            if canceled_now {
                p.cancel_delivered = true;
            }
            if send {
                out.push(Outgoing {
                    prediction_index: i,
                    url,
                    webhook_id: format!("msg_{}", new_id()),
                    body,
                    terminal,
                    attempt: 1,
                });
            }
        }
        let secret = s
            .signing_override
            .clone()
            .unwrap_or_else(|| s.webhook_secret.clone());
        (out, secret, s.webhook_skew, s.drop_webhooks)
    };
    if dropping {
        return 0;
    }
    let attempted = outgoing.len();
    for o in outgoing {
        let body = o.body.to_string();
        let ts = (real_now() as i64 + skew).max(0) as u64;
        let signature = sign(&secret, &o.webhook_id, ts, body.as_bytes()).unwrap_or_default();
        let status = post(&o.url, &o.webhook_id, ts, &signature, body).await;
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let prediction_id = o.body["id"].as_str().unwrap_or_default().to_string();
        s.deliveries.push(WebhookDelivery {
            url: o.url.clone(),
            webhook_id: o.webhook_id.clone(),
            prediction_id,
            status: o.body["status"].as_str().unwrap_or_default().to_string(),
            response_status: status,
            attempt: o.attempt,
        });
        let p = &mut s.predictions[o.prediction_index];
        p.terminal_retry = if o.terminal && !ok && o.attempt < MAX_TERMINAL_ATTEMPTS {
            Some((o.webhook_id, o.attempt))
        } else {
            None
        };
    }
    attempted
}

/// POSTs without following redirects (a 3xx counts as failure, as on Replicate).
async fn post(url: &str, id: &str, ts: u64, signature: &str, body: String) -> Option<u16> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let authority = uri.authority()?.to_string();
    let req = http::Request::builder()
        .method("POST")
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", authority)
        .header("content-type", "application/json")
        .header("user-agent", "Replicate-Webhook/1.0 (fake)")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), sender.send_request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Some(status)
}
