//! Replicate's webhooks: Standard Webhooks signatures, then the prediction
//! folded into its job. No user authentication: the signature is the proof.
//!
//! - `webhook-id`, `webhook-timestamp` (±5 min) and `webhook-signature` (one or
//!   more space-separated `v1,<base64>`) over `"{id}.{timestamp}.{body}"`,
//!   HMAC-SHA256 keyed with the base64 part of the account's `whsec_` secret.
//! - The secret comes from `GET /v1/webhooks/default/secret`, cached in KV and
//!   fetched again when a signature does not match (rotation), at most once
//!   a minute whatever anyone sends.
//! - Each job remembers recent `webhook-id`s inside its record (same CAS update
//!   that applies the event), so a retried or duplicated webhook is a no-op.
//! - The job is named by `?job=<id>` in the webhook URL cloudtuner registers; a
//!   prediction must be that job's (its id, or its input's SHA-256 when the
//!   create answer was lost). Anything else is acknowledged and ignored, so
//!   Replicate does not retry it forever.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::jobs::lifecycle::apply_prediction;
use crate::jobs::record::Job;
use crate::jobs::store::JobStore;
use crate::kernel::error::ApiError;
use crate::kernel::http::HttpClient;
use crate::kernel::kv::{self, KvStore, UpdateError};
use crate::kernel::signing::{SignatureError, SignedHeaders, check_timestamp, verify};
use crate::providers::replicate::ReplicateClient;
use crate::providers::settings::ProviderSettings;

const SECRET_KEY: &str = "cache:webhook-secret";
/// The least time between two fetches of the signing secret: a forged
/// webhook with a current timestamp must not make every request spend the
/// token's rate limit at Replicate.
pub const REFETCH_AFTER_MS: u64 = 60_000;
/// Webhook ids remembered per job.
const REMEMBERED_IDS: usize = 64;

/// What `cache:webhook-secret` holds: the secret and when it was last
/// fetched (or a fetch was attempted). The first version stored the bare
/// secret; it reads as fetched long ago.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CachedSecret {
    secret: Option<String>,
    fetched_ms: u64,
    /// When a fetch last failed (0: never): with no secret cached, a fetch
    /// is retried at most once per [`REFETCH_AFTER_MS`] after a failure.
    #[serde(default)]
    failed_ms: u64,
}

fn read_cached(raw: &[u8]) -> CachedSecret {
    serde_json::from_slice(raw).unwrap_or_else(|_| CachedSecret {
        secret: Some(String::from_utf8_lossy(raw).into_owned()).filter(|s| !s.is_empty()),
        fetched_ms: 0,
        failed_ms: 0,
    })
}

/// Claims this minute's one fetch of the secret (compare-and-swap on the
/// cache, so concurrent forgeries still cause one fetch). False when a fetch
/// happened less than [`REFETCH_AFTER_MS`] ago, or the store cannot say.
fn claim_refetch(kv: &dyn KvStore, now_ms: u64) -> bool {
    let claim = |cur: &[u8]| -> Result<Vec<u8>, ()> {
        let mut c = read_cached(cur);
        if now_ms < c.fetched_ms.saturating_add(REFETCH_AFTER_MS) {
            return Err(());
        }
        c.fetched_ms = now_ms;
        Ok(serde_json::to_vec(&c).expect("serialises"))
    };
    match kv::update(kv, SECRET_KEY, claim) {
        Ok(_) => true,
        Err(UpdateError::Missing) => {
            let first = CachedSecret {
                secret: None,
                fetched_ms: now_ms,
                failed_ms: 0,
            };
            let first = serde_json::to_vec(&first).expect("serialises");
            kv::create_once(kv, SECRET_KEY, &first).unwrap_or(false)
        }
        Err(_) => false,
    }
}

async fn fetch_secret<H: HttpClient>(http: &H, settings: &ProviderSettings) -> Option<String> {
    let client = ReplicateClient::new(http, &settings.api_base, &settings.token).ok()?;
    client.webhook_secret().await.ok()
}

/// Verifies with the cached secret; on a mismatch fetches it again (it may
/// have been rotated), at most once per [`REFETCH_AFTER_MS`].
async fn verify_with_account_secret<H: HttpClient>(
    kv: &dyn KvStore,
    http: &H,
    settings: &ProviderSettings,
    h: &SignedHeaders,
    body: &[u8],
    now_ms: u64,
) -> Result<(), ApiError> {
    let now_secs = now_ms / 1000;
    check_timestamp(h, now_secs).map_err(|e| e.to_api_error())?;
    let cached = kv.get(SECRET_KEY).ok().flatten().map(|v| read_cached(&v));
    let cached = cached.and_then(|c| c.secret);
    if let Some(secret) = &cached
        && verify(secret, h, body, now_secs).is_ok()
    {
        return Ok(());
    }
    let unavailable = || {
        ApiError::new(
            503,
            "webhook_secret_unavailable",
            "cannot fetch the webhook signing secret from Replicate",
        )
    };
    if !claim_refetch(kv, now_ms) {
        // Fetched a moment ago: this signature does not match the current secret.
        if cached.is_some() {
            return Err(SignatureError::NoMatch.to_api_error());
        }
        // Nothing cached yet: another request's first fetch is under way (a
        // burst of genuine webhooks on a fresh install must not fail), so
        // fetch too, unless a fetch failed within the minute.
        let failed_ms = kv
            .get(SECRET_KEY)
            .ok()
            .flatten()
            .map_or(0, |v| read_cached(&v).failed_ms);
        if failed_ms != 0 && now_ms < failed_ms.saturating_add(REFETCH_AFTER_MS) {
            return Err(unavailable());
        }
    }
    let Some(fresh) = fetch_secret(http, settings).await else {
        let c = CachedSecret {
            secret: cached.clone(),
            fetched_ms: now_ms,
            failed_ms: now_ms,
        };
        let _ = kv::set_json(kv, SECRET_KEY, &c);
        return Err(unavailable());
    };
    if cached.as_deref() != Some(fresh.as_str()) {
        let c = CachedSecret {
            secret: Some(fresh.clone()),
            fetched_ms: now_ms,
            failed_ms: 0,
        };
        let _ = kv::set_json(kv, SECRET_KEY, &c);
    }
    verify(&fresh, h, body, now_secs).map_err(|e| e.to_api_error())
}

fn input_sha(p: &Value) -> Option<String> {
    p.get("input")
        .map(|i| hex::encode(Sha256::digest(i.to_string().as_bytes())))
}

/// Whether prediction `p` belongs to `job`.
pub fn belongs(job: &Job, p: &Value) -> bool {
    let pid = p.get("id").and_then(Value::as_str);
    match (&job.prediction_id, pid) {
        (Some(mine), Some(theirs)) => mine == theirs,
        (None, Some(_)) => job.input_sha256.is_some() && job.input_sha256 == input_sha(p),
        _ => false,
    }
}

/// Handles one webhook POST; returns the HTTP status and body.
pub async fn receive<H: HttpClient>(
    kv: &dyn KvStore,
    http: &H,
    settings: &ProviderSettings,
    headers: &SignedHeaders,
    job_param: Option<&str>,
    body: &[u8],
    now_ms: u64,
) -> Result<Value, ApiError> {
    use crate::kernel::counters::{Event, count};
    if let Err(e) = verify_with_account_secret(kv, http, settings, headers, body, now_ms).await {
        count(kv, Event::Webhook("rejected"), 1);
        crate::kernel::event_log::record(
            kv,
            crate::kernel::event_log::NewEvent {
                kind: "webhook.rejected",
                actor: "anonymous",
                target: job_param,
                owner: None,
                detail: json!({"reason": e.message}),
            },
            now_ms,
        );
        return Err(e);
    }
    count(kv, Event::Webhook("verified"), 1);
    let prediction: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("webhook body is not JSON: {e}"),
        )
    })?;
    let ignored = |reason: &str| json!({"status": "ignored", "reason": reason});
    let Some(job_id) = job_param else {
        return Ok(ignored("no job named in the webhook URL"));
    };
    let store = JobStore::new(kv);
    #[derive(Debug)]
    enum Skip {
        Duplicate,
        Foreign,
    }
    // The logs go in before the job that may carry the end: a log follower
    // that reads an ended job then reads its final lines (see `log_stream`).
    // Logs only grow, so a stale or duplicate delivery leaves them as they
    // are; failing here changes nothing, and Replicate retries the webhook.
    if let Some(logs) = prediction.get("logs").and_then(Value::as_str)
        && store.get(job_id)?.is_some_and(|j| belongs(&j, &prediction))
    {
        store.set_logs(job_id, logs)?;
    }
    let webhook_id = headers.id.clone().unwrap_or_default();
    let mut applied = false;
    // One read-modify-write: ownership, dedupe and the change are checked on
    // the same version of the job.
    let result = store.update(job_id, |j| {
        if !belongs(j, &prediction) {
            return Err(Skip::Foreign);
        }
        if j.webhook_ids.contains(&webhook_id) {
            return Err(Skip::Duplicate);
        }
        applied = apply_prediction(j, &prediction, now_ms);
        j.webhook_ids.push(webhook_id.clone());
        if j.webhook_ids.len() > REMEMBERED_IDS {
            j.webhook_ids.remove(0);
        }
        Ok(())
    });
    let job = match result {
        Ok(j) => j,
        Err(UpdateError::Missing) => return Ok(ignored("unknown job")),
        Err(UpdateError::Rejected(Skip::Foreign)) => {
            return Ok(ignored("the prediction is not this job's"));
        }
        Err(UpdateError::Rejected(Skip::Duplicate)) => {
            return Ok(json!({"status": "duplicate", "job_id": job_id}));
        }
        Err(e) => return Err(crate::jobs::lifecycle::update_failed(job_id, e)),
    };
    Ok(json!({
        "status": if applied { "received" } else { "stale" },
        "job_id": job_id,
        "job_status": job.status.as_str(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::http::Method;
    use crate::kernel::kv::MemoryKv;
    use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};

    use crate::jobs::provider_tests::{NOW, SECRET, settings};
    const FETCH: &str = "/v1/webhooks/default/secret";

    fn forged(now_ms: u64) -> SignedHeaders {
        SignedHeaders {
            id: Some("msg_forged".into()),
            timestamp: Some((now_ms / 1000).to_string()),
            signature: Some("v1,AAAA".into()),
        }
    }

    fn post(kv: &MemoryKv, http: &ScriptedHttp, h: &SignedHeaders, now_ms: u64) -> u16 {
        match block_on(receive(kv, http, &settings(), h, Some("j1"), b"{}", now_ms)) {
            Ok(_) => 200,
            Err(e) => e.status,
        }
    }

    #[test]
    fn forged_webhooks_refetch_the_secret_at_most_once_a_minute() {
        let kv = MemoryKv::default();
        let http = ScriptedHttp::new();
        http.on(
            Method::Get,
            FETCH,
            vec![Reply::Json(200, json!({"key": SECRET})); 10],
        );
        for i in 0..50 {
            assert_eq!(post(&kv, &http, &forged(NOW + i * 100), NOW + i * 100), 401);
        }
        assert_eq!(
            http.count(Method::Get, FETCH),
            1,
            "one fetch for 50 forgeries"
        );
        let later = NOW + REFETCH_AFTER_MS;
        assert_eq!(post(&kv, &http, &forged(later), later), 401);
        assert_eq!(
            http.count(Method::Get, FETCH),
            2,
            "a minute later, one more"
        );
        // A rotated secret is still picked up, once the minute has passed.
        let rotated = crate::kernel::signing::sign(SECRET, "msg_ok", later / 1000, b"{}").unwrap();
        let ok = SignedHeaders {
            id: Some("msg_ok".into()),
            timestamp: Some((later / 1000).to_string()),
            signature: Some(format!("v1,{rotated}")),
        };
        assert_eq!(post(&kv, &http, &ok, later), 200);
    }

    #[test]
    fn a_secret_cached_by_the_first_version_still_verifies() {
        let kv = MemoryKv::default();
        kv.set(SECRET_KEY, SECRET.as_bytes()).unwrap();
        let http = ScriptedHttp::new();
        let sig = crate::kernel::signing::sign(SECRET, "msg_ok", NOW / 1000, b"{}").unwrap();
        let ok = SignedHeaders {
            id: Some("msg_ok".into()),
            timestamp: Some((NOW / 1000).to_string()),
            signature: Some(format!("v1,{sig}")),
        };
        assert_eq!(post(&kv, &http, &ok, NOW), 200);
        assert_eq!(http.count(Method::Get, FETCH), 0);
    }

    #[test]
    fn an_unreachable_replicate_is_asked_once_a_minute() {
        let kv = MemoryKv::default();
        let http = ScriptedHttp::new();
        http.on(Method::Get, FETCH, vec![Reply::Json(500, json!({})); 10]);
        assert_eq!(post(&kv, &http, &forged(NOW), NOW), 503);
        let asked = http.count(Method::Get, FETCH);
        assert_eq!(post(&kv, &http, &forged(NOW + 1), NOW + 1), 503);
        assert_eq!(http.count(Method::Get, FETCH), asked, "not asked again");
    }
}
