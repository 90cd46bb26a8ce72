//! Outbound notifications: users register URLs and receive `job.queued`,
//! `job.running`, `job.completed`, `job.failed` and `job.cancelled` events
//! signed with Standard Webhooks (their own `whsec_` secret), so CI can wait
//! on a webhook instead of polling.
//!
//! - Events are queued when a job's status changes ([`enqueue`], called from
//!   the one job update path) and delivered by the scheduled sync
//!   ([`deliver_due`]), with a stable `webhook-id` per event, retries with
//!   backoff (5 s, 1 min, 5 min, 30 min, 2 h, 6 h; then dropped), a 410 that
//!   disables the subscription, and no redirects followed (wasi-http never
//!   follows them).
//! - Private-network targets (loopback, RFC 1918, link-local, `localhost`) are
//!   refused unless an admin sets `allow_private`. Host names that *resolve*
//!   to private addresses can only be stopped by the runtime: run Spin with
//!   `[outbound_networking] block_networks = ["private"]`.
//!
//! Layout: `notif:<id>` (subscription, with its secret), `notifs:u:<owner>`
//! (ids), `notif:outbox` (pending deliveries, CAS).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::principal::Principal;
use crate::kernel::clock::rfc3339;
use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::http::{HttpClient, HttpRequest, Method};
use crate::kernel::kv::{self, KvStore, get_json, set_json};
use crate::kernel::secrets::random_base62;
use crate::kernel::signing::sign;

pub const EVENTS: [&str; 5] = [
    "job.queued",
    "job.running",
    "job.completed",
    "job.failed",
    "job.cancelled",
];
const OUTBOX: &str = "notif:outbox";
/// Seconds to wait after the n-th failed attempt.
const BACKOFF_SECS: [u64; 6] = [5, 60, 300, 1800, 7200, 21600];
/// Deliveries attempted per sync pass (each is one outbound request).
pub const DELIVERIES_PER_PASS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub owner: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub active: bool,
    pub created_ms: u64,
    pub allow_private: bool,
}

impl Subscription {
    /// The API view: never the secret.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id, "url": self.url, "events": self.events, "active": self.active,
            "allow_private": self.allow_private, "created_at": rfc3339(self.created_ms),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub webhook_id: String,
    pub subscription: String,
    pub event: String,
    pub payload: Value,
    pub attempts: u32,
    pub next_ms: u64,
}

fn is_private(host: &str) -> bool {
    let h = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".local")
        || h.ends_with(".internal")
    {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1])
        }
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

/// `scheme://host[:port]/...` → (scheme, host).
fn split_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some((scheme, host))
}

pub fn create(
    kv: &dyn KvStore,
    principal: &Principal,
    body: &Value,
    now_ms: u64,
) -> Result<(Subscription, String), ApiError> {
    let obj = object_with_fields(body, &["url", "events", "allow_private"], "invalid_request")?;
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let Some((scheme, host)) = split_url(&url) else {
        return Err(ApiError::bad_request(
            "`url` must be an absolute http(s) URL",
        ));
    };
    if scheme != "https" && scheme != "http" {
        return Err(ApiError::bad_request("`url` must use http or https"));
    }
    let allow_private = obj
        .get("allow_private")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if allow_private && !principal.is_admin() {
        return Err(ApiError::new(
            403,
            "permission_denied",
            "only admins may allow private-network targets",
        ));
    }
    if is_private(host) && !allow_private {
        return Err(ApiError::new(
            400,
            "private_target",
            format!(
                "{host} is a private-network address; an admin can allow it with \"allow_private\": true"
            ),
        ));
    }
    let events = match obj.get("events") {
        None | Some(Value::Null) => EVENTS.iter().map(|e| e.to_string()).collect(),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for e in a {
                let e = e.as_str().filter(|e| EVENTS.contains(e)).ok_or_else(|| {
                    ApiError::bad_request(format!("unknown event {e}; use {}", EVENTS.join(", ")))
                })?;
                out.push(e.to_string());
            }
            out
        }
        Some(_) => return Err(ApiError::bad_request("`events` must be an array")),
    };
    let secret = format!("whsec_{}", base64_secret());
    let sub = Subscription {
        id: format!("ntf_{}", random_base62(16)),
        owner: principal.id.clone(),
        url,
        events,
        secret: secret.clone(),
        active: true,
        created_ms: now_ms,
        allow_private,
    };
    set_json(kv, &format!("notif:{}", sub.id), &sub)?;
    edit_list(
        kv,
        &format!("notifs:u:{}", sub.owner),
        |ids: &mut Vec<String>| ids.push(sub.id.clone()),
    )?;
    Ok((sub, secret))
}

fn base64_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("system randomness");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn edit_list<T: Serialize + serde::de::DeserializeOwned + Default>(
    kv: &dyn KvStore,
    key: &str,
    f: impl FnMut(&mut T),
) -> Result<(), ApiError> {
    kv::edit_json(kv, key, f).map_err(ApiError::from)
}

pub fn list_for(kv: &dyn KvStore, owner: &str) -> Result<Vec<Subscription>, ApiError> {
    let ids: Vec<String> = get_json(kv, &format!("notifs:u:{owner}"))?.unwrap_or_default();
    let mut out = Vec::new();
    for id in ids {
        if let Some(s) = get_json::<Subscription>(kv, &format!("notif:{id}"))? {
            out.push(s);
        }
    }
    Ok(out)
}

pub fn delete(kv: &dyn KvStore, principal: &Principal, id: &str) -> Result<(), ApiError> {
    let sub: Option<Subscription> = get_json(kv, &format!("notif:{id}"))?;
    match sub {
        Some(s) if s.owner == principal.id || principal.is_admin() => {
            edit_list(
                kv,
                &format!("notifs:u:{}", s.owner),
                |ids: &mut Vec<String>| ids.retain(|i| i != id),
            )?;
            kv.delete(&format!("notif:{id}")).map_err(ApiError::from)
        }
        _ => Err(ApiError::new(
            404,
            "notification_not_found",
            format!("no notification {id}"),
        )),
    }
}

/// A job's status change, as notifications see it (built by the job store).
#[derive(Clone)]
pub struct JobEvent<'a> {
    pub job_id: &'a str,
    pub owner: &'a str,
    /// The new status: `queued`, `running`, `completed`, `failed`, ...
    pub status: &'a str,
    /// The job as the API shows it (the event's `data.job`): called only
    /// when someone subscribes, so a status change with no subscribers costs
    /// no serialisation.
    pub view: &'a dyn Fn() -> Value,
}

/// The event type a status is announced as; `None` for statuses nobody
/// subscribes to (`pending`, `uploading`).
fn event_for(status: &str) -> Option<&'static str> {
    EVENTS
        .iter()
        .copied()
        .find(|e| e.strip_prefix("job.") == Some(status))
}

/// Queues the event for a job's new status to its owner's subscriptions.
pub fn enqueue(kv: &dyn KvStore, change: &JobEvent, now_ms: u64) -> Result<(), ApiError> {
    let Some(event) = event_for(change.status) else {
        return Ok(());
    };
    let subs: Vec<Subscription> = list_for(kv, change.owner)?
        .into_iter()
        .filter(|s| s.active && s.events.iter().any(|e| e == event))
        .collect();
    if subs.is_empty() {
        return Ok(());
    }
    let payload =
        json!({"type": event, "timestamp": rfc3339(now_ms), "data": {"job": (change.view)()}});
    edit_list(kv, OUTBOX, |outbox: &mut Vec<Pending>| {
        for s in &subs {
            // Stable per (job, status, subscription): a retry reuses it.
            let webhook_id = format!("msg_{}_{}_{}", change.job_id, change.status, s.id);
            if !outbox.iter().any(|p| p.webhook_id == webhook_id) {
                outbox.push(Pending {
                    webhook_id,
                    subscription: s.id.clone(),
                    event: event.to_string(),
                    payload: payload.clone(),
                    attempts: 0,
                    next_ms: now_ms,
                });
            }
        }
    })
}

/// Delivers due events (at most [`DELIVERIES_PER_PASS`]); returns (sent, failed).
pub async fn deliver_due<H: HttpClient>(kv: &dyn KvStore, http: &H, now_ms: u64) -> (usize, usize) {
    let outbox: Vec<Pending> = get_json(kv, OUTBOX).ok().flatten().unwrap_or_default();
    let due: Vec<Pending> = outbox
        .into_iter()
        .filter(|p| p.next_ms <= now_ms)
        .take(DELIVERIES_PER_PASS)
        .collect();
    let (mut sent, mut failed) = (0, 0);
    for p in due {
        let sub: Option<Subscription> = get_json(kv, &format!("notif:{}", p.subscription))
            .ok()
            .flatten();
        let outcome = match &sub {
            Some(s) if s.active => Some(post(http, s, &p, now_ms).await),
            _ => None, // deleted or disabled: drop the event
        };
        if outcome == Some(Delivery::Gone)
            && let Some(mut s) = sub
        {
            s.active = false;
            let _ = set_json(kv, &format!("notif:{}", s.id), &s);
        }
        let _ = edit_list(kv, OUTBOX, |outbox: &mut Vec<Pending>| {
            let Some(i) = outbox.iter().position(|q| q.webhook_id == p.webhook_id) else {
                return;
            };
            match outcome {
                Some(Delivery::Failed) if (outbox[i].attempts as usize) < BACKOFF_SECS.len() => {
                    let wait = BACKOFF_SECS[outbox[i].attempts as usize];
                    outbox[i].attempts += 1;
                    outbox[i].next_ms = now_ms + wait * 1000;
                }
                _ => {
                    outbox.remove(i);
                }
            }
        });
        match outcome {
            Some(Delivery::Ok) => sent += 1,
            Some(_) => failed += 1,
            None => {}
        }
    }
    (sent, failed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Ok,
    Failed,
    Gone,
}

async fn post<H: HttpClient>(http: &H, s: &Subscription, p: &Pending, now_ms: u64) -> Delivery {
    let body = p.payload.to_string();
    let ts = now_ms / 1000;
    let Ok(sig) = sign(&s.secret, &p.webhook_id, ts, body.as_bytes()) else {
        return Delivery::Failed;
    };
    let mut req = HttpRequest::new(Method::Post, s.url.clone())
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("cloudtuner/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", p.webhook_id.clone())
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", format!("v1,{sig}"));
    req.body = body.into_bytes();
    match http.send(req).await {
        Ok(r) if (200..300).contains(&r.status) => Delivery::Ok,
        Ok(r) if r.status == 410 => Delivery::Gone,
        _ => Delivery::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;
    use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};

    fn subscribed(kv: &MemoryKv, url: &str) -> Subscription {
        let body = json!({"url": url, "events": ["job.completed"], "allow_private": true});
        let (sub, _) = create(kv, &Principal::admin("alice"), &body, 0).unwrap();
        let done = JobEvent {
            job_id: "j1",
            owner: "alice",
            status: "completed",
            view: &|| json!({"job_id": "j1"}),
        };
        enqueue(kv, &done, 0).unwrap();
        let running = JobEvent {
            status: "running",
            ..done
        };
        enqueue(kv, &running, 0).unwrap(); // not subscribed: not queued
        sub
    }

    #[test]
    fn failed_deliveries_are_retried_later_and_a_410_disables_the_subscription() {
        let kv = MemoryKv::default();
        subscribed(&kv, "http://hooks.test/a");
        let http = ScriptedHttp::new();
        http.on(
            Method::Post,
            "/a",
            vec![Reply::Json(500, json!({})), Reply::Json(200, json!({}))],
        );
        assert_eq!(block_on(deliver_due(&kv, &http, 0)), (0, 1));
        assert_eq!(
            block_on(deliver_due(&kv, &http, 1_000)),
            (0, 0),
            "backing off"
        );
        assert_eq!(block_on(deliver_due(&kv, &http, 5_000)), (1, 0));
        assert_eq!(
            block_on(deliver_due(&kv, &http, 999_999)),
            (0, 0),
            "delivered once"
        );
        let sent = http.requests();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[0].header_value("webhook-id"),
            sent[1].header_value("webhook-id")
        );

        let kv = MemoryKv::default();
        let sub = subscribed(&kv, "http://hooks.test/gone");
        let http = ScriptedHttp::new();
        http.on(Method::Post, "/gone", vec![Reply::Json(410, json!({}))]);
        assert_eq!(block_on(deliver_due(&kv, &http, 0)), (0, 1));
        assert!(
            !list_for(&kv, "alice")
                .unwrap()
                .iter()
                .any(|s| s.id == sub.id && s.active)
        );
    }

    #[test]
    fn private_targets_are_recognised() {
        for h in [
            "localhost",
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "[::1]",
            "100.64.0.1",
            "db.internal",
        ] {
            assert!(is_private(h), "{h}");
        }
        for h in ["example.com", "8.8.8.8", "[2001:db8::1]"] {
            assert!(!is_private(h), "{h}");
        }
        assert_eq!(
            split_url("https://u:p@hooks.example.com:8443/x?y"),
            Some(("https", "hooks.example.com"))
        );
        assert_eq!(split_url("http://[::1]:80/"), Some(("http", "[::1]")));
    }
}
