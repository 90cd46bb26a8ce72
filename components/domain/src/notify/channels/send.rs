//! What a channel is sent: events queued into the shared outbox
//! ([`enqueue`]), delivered by the sync ([`deliver`]) or at once as a test
//! ([`test_send`]), each attempt written to the channel's history.

use serde_json::{Value, json};

use super::history::{self, Entry};
use super::{Channel, ChannelStore, Kind, mask, not_found};
use crate::kernel::clock::{now_ms, rfc3339};
use crate::kernel::error::ApiError;
use crate::kernel::http::{HttpClient, HttpRequest, Method, TransportError};
use crate::kernel::kv::KvStore;
use crate::kernel::signing::sign;
use crate::notify::queue::{Delivery, JobEvent, Pending, push};

/// The outbox `subscription` of a channel's deliveries.
pub(crate) fn outbox_id(id: u64) -> String {
    format!("chan:{id}")
}

/// The channel an outbox entry is for, if it is a channel's.
pub(crate) fn channel_of(subscription: &str) -> Option<u64> {
    subscription.strip_prefix("chan:")?.parse().ok()
}

/// The channel event a job status announces. `queued` is when the provider
/// accepted the job (it was submitted); `pending` a job waiting here.
pub fn event_for(status: &str) -> Option<&'static str> {
    Some(match status {
        "pending" => "job.queued",
        "queued" => "job.submitted",
        "running" => "job.started",
        "completed" => "job.completed",
        "failed" => "job.failed",
        "cancelled" => "job.cancelled",
        _ => return None,
    })
}

/// Queues a job's status change to the channels that hear about its owner's
/// jobs (theirs and their teams') and want that event.
pub(crate) fn enqueue(kv: &dyn KvStore, change: &JobEvent, now_ms: u64) -> Result<(), ApiError> {
    let Some(event) = event_for(change.status) else {
        return Ok(());
    };
    let id_prefix = format!("{}_{}", change.job_id, change.status);
    queue_to_hearing(
        kv,
        change.owner,
        event,
        &id_prefix,
        now_ms,
        || json!({"job": (change.view)()}),
    )
}

/// Queues `event` once per channel that hears about `owner`'s jobs and wants
/// it; `id_prefix` makes the delivery id stable (`msg_<prefix>_chan<id>`), so
/// a repeat is queued once. The event's `data` is built only when some
/// channel wants it.
fn queue_to_hearing(
    kv: &dyn KvStore,
    owner: &str,
    event: &str,
    id_prefix: &str,
    now_ms: u64,
    data: impl FnOnce() -> Value,
) -> Result<(), ApiError> {
    let channels: Vec<Channel> = ChannelStore::new(kv)
        .hearing(owner)?
        .into_iter()
        .filter(|c| c.wants(event))
        .collect();
    if channels.is_empty() {
        return Ok(());
    }
    let payload = json!({"type": event, "timestamp": rfc3339(now_ms), "data": data()});
    let entries = channels
        .iter()
        .map(|c| Pending {
            webhook_id: format!("msg_{id_prefix}_chan{}", c.id),
            subscription: outbox_id(c.id),
            owner: c.owner.turn(),
            event: event.to_string(),
            payload: payload.clone(),
            attempts: 0,
            next_ms: now_ms,
        })
        .collect();
    push(kv, entries)
}

/// Announces an approval event (`approval.required`, `.granted`,
/// `.rejected`, `.expired`) about `owner`'s job to the channels that hear
/// about their jobs and want it. `data` is the event's `data`: `{"job": the
/// job as the API shows it, "reason": words}`; `key` names the request, so a
/// repeated announcement of one event is queued once. Nothing calls this yet:
/// it is the one call approvals (issue 27, item 4) need.
pub fn announce(
    kv: &dyn KvStore,
    event: &str,
    owner: &str,
    key: &str,
    data: Value,
    now_ms: u64,
) -> Result<(), ApiError> {
    let Some(event) = super::APPROVAL_EVENTS.iter().find(|e| **e == event) else {
        return Err(ApiError::bad_request(format!(
            "{event} is not an approval event"
        )));
    };
    let id_prefix = format!("{key}_{event}");
    queue_to_hearing(kv, owner, event, &id_prefix, now_ms, || data)
}

/// Delivers one outbox entry to channel `id`; `None` when the channel is
/// gone or disabled (the entry is dropped).
pub(crate) async fn deliver<H: HttpClient>(
    kv: &dyn KvStore,
    http: &H,
    id: u64,
    p: &Pending,
    public_url: Option<&str>,
    now_ms: u64,
) -> Option<Delivery> {
    let store = ChannelStore::new(kv);
    let channel = store.get(id).ok().flatten().filter(|c| c.is_enabled)?;
    let (outcome, error) = if !channel.allow_private && refused(&channel.url) {
        // A target stored before the current filter is re-checked here.
        (
            Delivery::Gone,
            Some("the target is a private address".into()),
        )
    } else {
        let req = request(
            &channel,
            &p.event,
            &p.payload,
            &p.webhook_id,
            public_url,
            now_ms,
        );
        answer(http.send(req).await)
    };
    if outcome == Delivery::Gone {
        let _ = store.update(id, |c| {
            c.is_enabled = false;
            Ok(())
        });
    }
    let job = p.payload["data"]["job"]["job_id"].as_str();
    let entry = Entry::new(
        &channel,
        &p.event,
        job,
        outcome == Delivery::Ok,
        error,
        now_ms,
    );
    history::record(kv, entry);
    Some(outcome)
}

/// Sends a test message to channel `id` now; SimpleTuner's
/// `TestConnectionResponse` (`success`, `error`, `latency_ms`).
pub async fn test_send<H: HttpClient>(
    kv: &dyn KvStore,
    http: &H,
    channel: &Channel,
    public_url: Option<&str>,
    now: u64,
) -> Value {
    let payload = json!({"type": "test", "timestamp": rfc3339(now), "data": {}});
    let webhook_id = format!("msg_test_chan{}_{now}", channel.id);
    let (outcome, error) = if !channel.allow_private && refused(&channel.url) {
        (
            Delivery::Failed,
            Some("the target is a private address".into()),
        )
    } else {
        let req = request(channel, "test", &payload, &webhook_id, public_url, now);
        answer(http.send(req).await)
    };
    let latency = now_ms().saturating_sub(now);
    let ok = outcome == Delivery::Ok;
    history::record(
        kv,
        Entry::new(channel, "test", None, ok, error.clone(), now),
    );
    json!({"success": ok, "error": error, "latency_ms": latency as f64})
}

/// 404 unless `id` is a channel (for callers that checked access already).
pub fn existing(kv: &dyn KvStore, id: u64) -> Result<Channel, ApiError> {
    ChannelStore::new(kv).get(id)?.ok_or_else(|| not_found(id))
}

fn refused(url: &str) -> bool {
    super::targets::parse(url)
        .map(|u| super::targets::special_host(&u).is_some())
        .unwrap_or(true)
}

/// The outcome of a send, with the reason of a failure in words (the host
/// at most, never the URL).
fn answer(
    result: Result<crate::kernel::http::HttpResponse, TransportError>,
) -> (Delivery, Option<String>) {
    match result {
        Ok(r) if (200..300).contains(&r.status) => (Delivery::Ok, None),
        Ok(r) if r.status == 410 => (
            Delivery::Gone,
            Some("the receiver answered 410 Gone: the channel is disabled".into()),
        ),
        Ok(r) => (
            Delivery::Failed,
            Some(format!("the receiver answered HTTP {}", r.status)),
        ),
        Err(TransportError::Denied) => (
            Delivery::Failed,
            Some(
                "this server may not send to that host (see the notification_hosts variable)"
                    .into(),
            ),
        ),
        Err(TransportError::Failed(m)) => (Delivery::Failed, Some(m)),
    }
}

/// The request for one event: Slack's message, or the signed JSON event.
fn request(
    c: &Channel,
    event: &str,
    payload: &Value,
    webhook_id: &str,
    public_url: Option<&str>,
    now_ms: u64,
) -> HttpRequest {
    let req = HttpRequest::new(Method::Post, c.url.clone())
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("cloudtuner/", env!("CARGO_PKG_VERSION")),
        );
    match c.kind {
        Kind::Slack => req.json_body(&slack_message(event, payload, public_url)),
        Kind::Webhook => signed(
            req,
            c,
            &webhook_body(event, payload, public_url),
            webhook_id,
            now_ms,
        ),
    }
}

/// Standard Webhooks headers (the channel's `whsec_` secret), plus
/// SimpleTuner's `X-SimpleTuner-*` ones (signed with the caller's
/// `webhook_secret` when they gave one).
fn signed(req: HttpRequest, c: &Channel, body: &Value, id: &str, now_ms: u64) -> HttpRequest {
    let body = body.to_string();
    let ts = now_ms / 1000;
    let mut req = req
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("x-simpletuner-event", body_event(body.as_bytes()))
        .header("x-simpletuner-timestamp", ts.to_string());
    if let Ok(sig) = sign(&c.secret, id, ts, body.as_bytes()) {
        req = req.header("webhook-signature", format!("v1,{sig}"));
    }
    if let Some(key) = &c.simpletuner_secret {
        req = req.header(
            "x-simpletuner-signature",
            format!("sha256={}", hmac_hex(key, body.as_bytes())),
        );
    }
    req.body = body.into_bytes();
    req
}

fn body_event(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["event_type"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a message says about the job in `payload` (`data.job`).
struct About {
    name: String,
    job_id: String,
    status: String,
    cost: String,
    link: Option<String>,
    error: Option<String>,
}

impl About {
    fn of(payload: &Value, public_url: Option<&str>) -> Self {
        let job = &payload["data"]["job"];
        let job_id = job["job_id"].as_str().unwrap_or_default().to_string();
        let name = job["config_name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| job_id.chars().take(12).collect());
        let cost = match job["cost_usd"].as_f64() {
            Some(usd) if job["cost_estimated"] == true => format!("~${usd:.2}"),
            Some(usd) => format!("${usd:.2}"),
            None => "not known yet".into(),
        };
        let link = public_url
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty() && !job_id.is_empty())
            .map(|u| format!("{u}/#/job/{job_id}"));
        About {
            name,
            status: job["status"].as_str().unwrap_or_default().to_string(),
            job_id,
            cost,
            link,
            error: job["error_message"].as_str().map(str::to_string),
        }
    }
}

fn title(event: &str) -> String {
    match event {
        "test" => "Test message".into(),
        e => {
            let words = e.replace(['.', '_'], " ");
            let mut out = String::new();
            for w in words.split_whitespace() {
                let mut cs = w.chars();
                if let Some(f) = cs.next() {
                    out.extend(f.to_uppercase());
                    out.push_str(cs.as_str());
                    out.push(' ');
                }
            }
            out.trim_end().to_string()
        }
    }
}

fn emoji(event: &str) -> &'static str {
    match event {
        "job.completed" | "approval.granted" | "test" => ":white_check_mark:",
        "job.failed" | "approval.rejected" => ":x:",
        "job.cancelled" | "approval.expired" => ":no_entry_sign:",
        "job.started" => ":rocket:",
        "approval.required" => ":raised_hand:",
        _ => ":bell:",
    }
}

/// Slack mrkdwn text from user data: `&`, `<`, `>` escaped, so a config
/// name cannot make a link or a mention.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack's incoming-webhook message: `text` (the notification's fallback)
/// and Block Kit `blocks` with the job's name, status, cost and a link to
/// the job in the UI (when the server has a `public_url`).
pub fn slack_message(event: &str, payload: &Value, public_url: Option<&str>) -> Value {
    let title = title(event);
    if event == "test" {
        let text = format!("{} cloudtuner: this channel works", emoji(event));
        return json!({"text": text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        ]});
    }
    let a = About::of(payload, public_url);
    let text = format!(
        "{} {title}: {} ({}, cost {})",
        emoji(event),
        esc(&a.name),
        a.status,
        a.cost
    );
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Job:*\n{}", esc(&a.name))}),
        json!({"type": "mrkdwn", "text": format!("*Status:*\n{}", a.status)}),
        json!({"type": "mrkdwn", "text": format!("*Cost:*\n{}", a.cost)}),
    ];
    if let Some(reason) = payload["data"]["reason"].as_str() {
        let short: String = reason.chars().take(200).collect();
        fields.push(json!({"type": "mrkdwn", "text": format!("*Reason:*\n{}", esc(&short))}));
    }
    if let Some(e) = &a.error {
        let short: String = e.chars().take(200).collect();
        fields.push(json!({"type": "mrkdwn", "text": format!("*Error:*\n{}", esc(&short))}));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("{} {title}", emoji(event)), "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(link) = &a.link {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("<{link}|Open the job in cloudtuner>")}}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": format!("cloudtuner • job `{}`", a.job_id)}
    ]}));
    json!({"text": text, "blocks": blocks})
}

/// The generic webhook's body: SimpleTuner's webhook payload
/// (`event_type`, `title`, `message`, `severity`, `job_id`, `timestamp`,
/// `data`) plus the job's `link`.
pub fn webhook_body(event: &str, payload: &Value, public_url: Option<&str>) -> Value {
    let a = About::of(payload, public_url);
    let severity = match event {
        "job.failed" | "approval.rejected" => "error",
        "job.completed" | "approval.granted" => "success",
        "approval.required" | "approval.expired" | "job.cancelled" => "warning",
        _ => "info",
    };
    let message = if event == "test" {
        "cloudtuner: this channel works".to_string()
    } else {
        format!(
            "{}: {} ({}, cost {})",
            title(event),
            a.name,
            a.status,
            a.cost
        )
    };
    json!({
        "event_type": event,
        "title": title(event),
        "message": message,
        "severity": severity,
        "job_id": (!a.job_id.is_empty()).then_some(a.job_id),
        "link": a.link,
        "timestamp": payload["timestamp"],
        "data": payload["data"],
    })
}

/// The channel's target as the history and the log may show it.
pub fn recipient(c: &Channel) -> String {
    mask(&c.url)
}
