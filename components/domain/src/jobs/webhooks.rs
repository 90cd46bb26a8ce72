//! Replicate's webhooks: Standard Webhooks signatures, then the prediction
//! folded into its job. No user authentication: the signature is the proof.
//!
//! - `webhook-id`, `webhook-timestamp` (±5 min) and `webhook-signature` (one or
//!   more space-separated `v1,<base64>`) over `"{id}.{timestamp}.{body}"`,
//!   HMAC-SHA256 keyed with the base64 part of the account's `whsec_` secret.
//! - The secret comes from `GET /v1/webhooks/default/secret`, cached in KV and
//!   fetched again once when a signature does not match (rotation).
//! - Each job remembers recent `webhook-id`s inside its record (same CAS update
//!   that applies the event), so a retried or duplicated webhook is a no-op.
//! - The job is named by `?job=<id>` in the webhook URL cloudtuner registers; a
//!   prediction must be that job's (its id, or its input's SHA-256 when the
//!   create answer was lost). Anything else is acknowledged and ignored, so
//!   Replicate does not retry it forever.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::jobs::lifecycle::apply_prediction;
use crate::jobs::record::Job;
use crate::jobs::store::JobStore;
use crate::kernel::error::ApiError;
use crate::kernel::http::HttpClient;
use crate::kernel::kv::{KvStore, UpdateError};
use crate::kernel::signing::{SignedHeaders, check_timestamp, verify};
use crate::providers::replicate::ReplicateClient;
use crate::providers::settings::ProviderSettings;

const SECRET_KEY: &str = "cache:webhook-secret";
/// Webhook ids remembered per job.
const REMEMBERED_IDS: usize = 64;

async fn fetch_secret<H: HttpClient>(http: &H, settings: &ProviderSettings) -> Option<String> {
    let client = ReplicateClient::new(http, &settings.api_base, &settings.token).ok()?;
    client.webhook_secret().await.ok()
}

/// Verifies with the cached secret, refreshing it once on a mismatch.
async fn verify_with_account_secret<H: HttpClient>(
    kv: &dyn KvStore,
    http: &H,
    settings: &ProviderSettings,
    h: &SignedHeaders,
    body: &[u8],
    now_secs: u64,
) -> Result<(), ApiError> {
    check_timestamp(h, now_secs).map_err(|e| e.to_api_error())?;
    let cached = kv
        .get(SECRET_KEY)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    if let Some(secret) = &cached
        && verify(secret, h, body, now_secs).is_ok()
    {
        return Ok(());
    }
    let fresh = fetch_secret(http, settings).await.ok_or_else(|| {
        ApiError::new(
            503,
            "webhook_secret_unavailable",
            "cannot fetch the webhook signing secret from Replicate",
        )
    })?;
    if cached.as_deref() != Some(fresh.as_str()) {
        let _ = kv.set(SECRET_KEY, fresh.as_bytes());
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
    if let Err(e) =
        verify_with_account_secret(kv, http, settings, headers, body, now_ms / 1000).await
    {
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
    if applied && let Some(logs) = prediction.get("logs").and_then(Value::as_str) {
        store.set_logs(job_id, logs)?;
    }
    Ok(json!({
        "status": if applied { "received" } else { "stale" },
        "job_id": job_id,
        "job_status": job.status.as_str(),
    }))
}
