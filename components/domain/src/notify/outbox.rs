//! The outbox: events waiting for delivery, in one value (`notif:outbox`,
//! changed by compare-and-swap), delivered by the sync a few per pass.

use std::collections::VecDeque;

use serde_json::json;

use super::queue::{Delivery, OUTBOX, push};
pub use super::queue::{JobEvent, Pending};
use super::{EVENTS, Subscription, edit_list, list_for, targets};
use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::http::{HttpClient, HttpRequest, Method};
use crate::kernel::kv::KvStore;
use crate::kernel::kv::{get_json, set_json};
use crate::kernel::signing::sign;

/// Seconds to wait after the n-th failed attempt.
const BACKOFF_SECS: [u64; 6] = [5, 60, 300, 1800, 7200, 21600];
/// Deliveries attempted per sync pass (each is one outbound request).
pub const DELIVERIES_PER_PASS: usize = 20;
/// Deliveries one subscription may take in one pass.
const PER_SUBSCRIPTION_PER_PASS: usize = 2;

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
    // Channels (Slack, generic webhooks) hear about the same changes.
    let channels = super::channels::send::enqueue(kv, change, now_ms);
    let Some(event) = event_for(change.status) else {
        return channels;
    };
    let subs: Vec<Subscription> = list_for(kv, change.owner)?
        .into_iter()
        .filter(|s| s.active && s.events.iter().any(|e| e == event))
        .collect();
    if subs.is_empty() {
        return channels;
    }
    let payload =
        json!({"type": event, "timestamp": rfc3339(now_ms), "data": {"job": (change.view)()}});
    let entries = subs
        .iter()
        .map(|s| Pending {
            // Stable per (job, status, subscription): a retry reuses it.
            webhook_id: format!("msg_{}_{}_{}", change.job_id, change.status, s.id),
            subscription: s.id.clone(),
            owner: change.owner.to_string(),
            event: event.to_string(),
            payload: payload.clone(),
            attempts: 0,
            next_ms: now_ms,
        })
        .collect();
    push(kv, entries)?;
    channels
}

/// Picks up to [`DELIVERIES_PER_PASS`] due events, taking turns: one per
/// owner per round (owners whose oldest due event is oldest first), and at
/// most [`PER_SUBSCRIPTION_PER_PASS`] per subscription, so one user's many
/// (or dead) targets cannot fill the pass.
fn pick_due(outbox: Vec<Pending>, now_ms: u64) -> Vec<Pending> {
    let mut due: Vec<Pending> = outbox.into_iter().filter(|p| p.next_ms <= now_ms).collect();
    due.sort_by_key(|p| p.next_ms);
    let mut queues: Vec<(String, VecDeque<Pending>)> = Vec::new();
    for p in due {
        let owner = p.owner.clone();
        match queues.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, q)) => q.push_back(p),
            None => queues.push((owner, [p].into())),
        }
    }
    let mut per_sub: std::collections::HashMap<String, usize> = Default::default();
    let mut picked = Vec::new();
    while picked.len() < DELIVERIES_PER_PASS && queues.iter().any(|(_, q)| !q.is_empty()) {
        for (_, q) in queues.iter_mut() {
            while let Some(p) = q.pop_front() {
                let n = per_sub.entry(p.subscription.clone()).or_default();
                if *n < PER_SUBSCRIPTION_PER_PASS {
                    *n += 1;
                    picked.push(p);
                    break;
                }
            }
            if picked.len() == DELIVERIES_PER_PASS {
                break;
            }
        }
    }
    picked
}

/// Delivers due events (at most [`DELIVERIES_PER_PASS`], fairly: see
/// [`pick_due`]); returns (sent, failed). A failed delivery backs its whole
/// subscription off, so a dead target is tried once per backoff step, not
/// once per queued event.
pub async fn deliver_due<H: HttpClient>(kv: &dyn KvStore, http: &H, now_ms: u64) -> (usize, usize) {
    deliver_due_linked(kv, http, None, now_ms).await
}

/// [`deliver_due`], with the server's `public_url` for the links to jobs in
/// channel messages.
pub async fn deliver_due_linked<H: HttpClient>(
    kv: &dyn KvStore,
    http: &H,
    public_url: Option<&str>,
    now_ms: u64,
) -> (usize, usize) {
    let outbox: Vec<Pending> = get_json(kv, OUTBOX).ok().flatten().unwrap_or_default();
    let due = pick_due(outbox, now_ms);
    let (mut sent, mut failed) = (0, 0);
    let mut failing: Vec<String> = Vec::new();
    for p in due {
        if failing.contains(&p.subscription) {
            continue; // backed off below; stays queued
        }
        let outcome = match super::channels::send::channel_of(&p.subscription) {
            Some(id) => super::channels::send::deliver(kv, http, id, &p, public_url, now_ms).await,
            None => deliver_one(kv, http, &p, now_ms).await,
        };
        if outcome == Some(Delivery::Failed) {
            failing.push(p.subscription.clone());
        }
        let _ = edit_list(kv, OUTBOX, |outbox: &mut Vec<Pending>| {
            settle(outbox, &p, outcome, now_ms)
        });
        match outcome {
            Some(Delivery::Ok) => sent += 1,
            Some(_) => failed += 1,
            None => {}
        }
    }
    (sent, failed)
}

/// Delivers `p` to its subscription; `None` when it is deleted or disabled.
async fn deliver_one<H: HttpClient>(
    kv: &dyn KvStore,
    http: &H,
    p: &Pending,
    now_ms: u64,
) -> Option<Delivery> {
    let sub: Option<Subscription> = get_json(kv, &format!("notif:{}", p.subscription))
        .ok()
        .flatten();
    let outcome = match &sub {
        // A target stored before the current filter is re-checked here.
        Some(s) if s.active && !s.allow_private && refused(&s.url) => Some(Delivery::Gone),
        Some(s) if s.active => Some(post(http, s, p, now_ms).await),
        _ => None, // deleted or disabled: drop the event
    };
    if outcome == Some(Delivery::Gone)
        && let Some(mut s) = sub
    {
        s.active = false;
        let _ = set_json(kv, &format!("notif:{}", s.id), &s);
    }
    outcome
}

fn refused(url: &str) -> bool {
    targets::parse(url)
        .map(|u| targets::special_host(&u).is_some())
        .unwrap_or(true)
}

/// Records the outcome of delivering `p` in the outbox.
fn settle(outbox: &mut Vec<Pending>, p: &Pending, outcome: Option<Delivery>, now_ms: u64) {
    let Some(i) = outbox.iter().position(|q| q.webhook_id == p.webhook_id) else {
        return;
    };
    match outcome {
        Some(Delivery::Failed) if (outbox[i].attempts as usize) < BACKOFF_SECS.len() => {
            let wait = BACKOFF_SECS[outbox[i].attempts as usize];
            outbox[i].attempts += 1;
            let next = now_ms + wait * 1000;
            // The subscription backs off as a whole.
            for q in outbox
                .iter_mut()
                .filter(|q| q.subscription == p.subscription)
            {
                q.next_ms = q.next_ms.max(next);
            }
        }
        _ => {
            outbox.remove(i);
        }
    }
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
