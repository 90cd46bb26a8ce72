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
//! - Special-purpose targets (loopback, private, link-local, CGNAT, reserved,
//!   documentation, multicast, in any spelling; `localhost`, `*.local`,
//!   `*.internal`: see [`targets`]) are refused unless an admin sets
//!   `allow_private`. Host names that *resolve* to private addresses can only
//!   be stopped by the runtime: run Spin with
//!   `[outbound_networking] block_networks = ["private"]`.
//! - A user has at most [`MAX_PER_OWNER`] subscriptions, and delivery takes
//!   turns across owners and subscriptions ([`outbox`]), so one user's dead
//!   targets cannot delay anyone else's.
//!
//! - Slack and generic-webhook **channels** (SimpleTuner's
//!   `/api/cloud/notifications/channels`, per user or team) ride the same
//!   outbox: see [`channels`].
//!
//! Layout: `notif:<id>` (subscription, with its secret), `notifs:u:<owner>`
//! (ids), `notif:outbox` (pending deliveries, CAS).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::principal::Principal;
use crate::kernel::clock::rfc3339;
use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::kv::{self, KvStore, get_json, set_json};
use crate::kernel::secrets::random_base62;

pub const EVENTS: [&str; 5] = [
    "job.queued",
    "job.running",
    "job.completed",
    "job.failed",
    "job.cancelled",
];
/// Subscriptions one user may have.
pub const MAX_PER_OWNER: usize = 10;

pub mod channels;
mod outbox;
mod queue;
pub mod targets;

pub use outbox::{DELIVERIES_PER_PASS, Pending, deliver_due, deliver_due_linked, enqueue};

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

pub fn create(
    kv: &dyn KvStore,
    principal: &Principal,
    body: &Value,
    now_ms: u64,
) -> Result<(Subscription, String), ApiError> {
    let obj = object_with_fields(body, &["url", "events", "allow_private"], "invalid_request")?;
    let allow_private = obj
        .get("allow_private")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let url = checked_target(
        obj.get("url").and_then(Value::as_str).unwrap_or(""),
        allow_private,
        principal,
    )?;
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
    let secret = new_secret();
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
    // The slot first (inside the same CAS as the count), then the record.
    let mut full = false;
    edit_list(
        kv,
        &format!("notifs:u:{}", sub.owner),
        |ids: &mut Vec<String>| {
            full = ids.len() >= MAX_PER_OWNER;
            if !full {
                ids.push(sub.id.clone());
            }
        },
    )?;
    if full {
        return Err(ApiError::new(
            409,
            "too_many_notifications",
            format!(
                "you have {MAX_PER_OWNER} notification URLs, the most one user may have; delete one first"
            ),
        )
        .with_detail("max", MAX_PER_OWNER));
    }
    set_json(kv, &format!("notif:{}", sub.id), &sub)?;
    Ok((sub, secret))
}

/// The target `raw` as parsed and checked: an absolute http(s) URL (400),
/// not a private or special-purpose host unless an admin allows it (400
/// `private_target`; 403 when a non-admin asks to allow it). Returned as
/// parsed, so a delivery sends to exactly what was checked. Subscriptions and
/// channels share this policy.
pub fn checked_target(
    raw: &str,
    allow_private: bool,
    principal: &Principal,
) -> Result<String, ApiError> {
    let target = targets::parse(raw.trim())?;
    if allow_private && !principal.is_admin() {
        return Err(ApiError::new(
            403,
            "permission_denied",
            "only admins may allow private-network targets",
        ));
    }
    if let Some(host) = targets::special_host(&target)
        && !allow_private
    {
        return Err(ApiError::new(
            400,
            "private_target",
            format!(
                "{host} is a private or special-purpose address; an admin can allow it with \"allow_private\": true"
            ),
        ));
    }
    Ok(target.to_string())
}

/// A Standard Webhooks signing secret (`whsec_` and 24 random bytes).
pub fn new_secret() -> String {
    format!("whsec_{}", base64_secret())
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

pub use outbox::JobEvent;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::http::Method;
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
    fn special_targets_are_refused_unless_an_admin_allows_them() {
        let kv = MemoryKv::default();
        let body = json!({"url": "http://[::ffff:127.0.0.1]:8001/"});
        let e = create(&kv, &Principal::admin("root"), &body, 0).unwrap_err();
        assert_eq!((e.status, e.code), (400, "private_target"));
        let allowed = json!({"url": "http://2130706433/x", "allow_private": true});
        let (sub, _) = create(&kv, &Principal::admin("root"), &allowed, 0).unwrap();
        assert_eq!(sub.url, "http://127.0.0.1/x", "stored as checked");
    }

    #[test]
    fn a_user_has_at_most_max_per_owner_subscriptions() {
        let kv = MemoryKv::default();
        let body = json!({"url": "https://hooks.example.com/x"});
        let alice = Principal::admin("alice");
        for _ in 0..MAX_PER_OWNER {
            create(&kv, &alice, &body, 0).unwrap();
        }
        let e = create(&kv, &alice, &body, 0).unwrap_err();
        assert_eq!((e.status, e.code), (409, "too_many_notifications"));
        assert_eq!(list_for(&kv, "alice").unwrap().len(), MAX_PER_OWNER);
        create(&kv, &Principal::admin("bob"), &body, 0).unwrap();
    }

    #[test]
    fn one_users_dead_targets_do_not_delay_another_users_delivery() {
        let kv = MemoryKv::default();
        let events = json!({"url": "https://dead.example/", "events": ["job.completed"]});
        for _ in 0..MAX_PER_OWNER {
            create(&kv, &Principal::admin("mallory"), &events, 0).unwrap();
        }
        // Mallory's jobs finish first: 30 jobs x 10 dead targets queued ahead.
        for i in 0..30 {
            let id = format!("m{i}");
            let done = JobEvent {
                job_id: &id,
                owner: "mallory",
                status: "completed",
                view: &|| json!({}),
            };
            enqueue(&kv, &done, 0).unwrap();
        }
        subscribed(&kv, "http://hooks.test/live");
        let http = ScriptedHttp::new();
        http.on(Method::Post, "/", vec![Reply::Lost; 1000]);
        http.on(Method::Post, "/live", vec![Reply::Json(200, json!({}))]);
        let (sent, failed) = block_on(deliver_due(&kv, &http, 0));
        assert_eq!(sent, 1, "alice's event goes out in the first pass");
        assert_eq!(failed, MAX_PER_OWNER, "each dead target tried once");
        // The dead targets back off as a whole: the next pass tries none.
        assert_eq!(block_on(deliver_due(&kv, &http, 1_000)), (0, 0));
    }
}
