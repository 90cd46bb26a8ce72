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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::http::HttpClient;
use crate::job::Job;
use crate::jobs::JobStore;
use crate::kv::{KvStore, UpdateError};
use crate::lifecycle::{ProviderSettings, apply_prediction};
use crate::replicate::ReplicateClient;
use crate::secrets::constant_time_eq;

pub const TOLERANCE_SECS: u64 = 300;
const SECRET_KEY: &str = "cache:webhook-secret";
/// Webhook ids remembered per job.
const REMEMBERED_IDS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    MissingHeaders,
    BadTimestamp,
    OutsideTolerance,
    BadSecret,
    NoMatch,
}

impl SignatureError {
    pub fn to_api_error(&self) -> ApiError {
        let m = match self {
            SignatureError::MissingHeaders => {
                "webhook-id, webhook-timestamp and webhook-signature are required"
            }
            SignatureError::BadTimestamp => "webhook-timestamp is not a Unix time",
            SignatureError::OutsideTolerance => "webhook-timestamp is more than 5 minutes from now",
            SignatureError::BadSecret => "the signing secret is not a whsec_ base64 secret",
            SignatureError::NoMatch => "no webhook-signature matches",
        };
        ApiError::new(401, "invalid_signature", m)
    }
}

/// The three Standard Webhooks headers.
#[derive(Debug, Clone, Default)]
pub struct SignedHeaders {
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
}

pub fn sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> Result<String, SignatureError> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| SignatureError::BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SignatureError::BadSecret)?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks the timestamp window only (cheap; before any secret is fetched).
pub fn check_timestamp(
    h: &SignedHeaders,
    now_secs: u64,
) -> Result<(String, u64, String), SignatureError> {
    let (Some(id), Some(ts), Some(sig)) = (&h.id, &h.timestamp, &h.signature) else {
        return Err(SignatureError::MissingHeaders);
    };
    let ts: u64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if ts.abs_diff(now_secs) > TOLERANCE_SECS {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok((id.clone(), ts, sig.clone()))
}

pub fn verify(
    secret: &str,
    h: &SignedHeaders,
    body: &[u8],
    now_secs: u64,
) -> Result<(), SignatureError> {
    let (id, ts, signatures) = check_timestamp(h, now_secs)?;
    let expected = sign(secret, &id, ts, body)?;
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.trim().strip_prefix("v1,"))
        .any(|sig| constant_time_eq(sig, &expected));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

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
    verify_with_account_secret(kv, http, settings, headers, body, now_ms / 1000).await?;
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
        Err(e) => return Err(crate::lifecycle::update_failed(job_id, e)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, ts: u64, sig: &str) -> SignedHeaders {
        SignedHeaders {
            id: Some(id.into()),
            timestamp: Some(ts.to_string()),
            signature: Some(sig.into()),
        }
    }

    #[test]
    fn shared_test_vectors_verify() {
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        assert_eq!(
            verify(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                &h,
                br#"{"test": 2432232314}"#,
                1614265330
            ),
            Ok(())
        );
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let h = headers(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        );
        assert_eq!(
            verify(
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                &h,
                body,
                1649367553
            ),
            Ok(())
        );
    }

    #[test]
    fn negative_cases_fail() {
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        let ts = 1649367553;
        let good = "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(
            verify(
                secret,
                &headers(id, ts, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="),
                body,
                ts
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(secret, &headers(id, ts, "v1,"), body, ts),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(
                secret,
                &headers(id, ts, &format!("v1,{}", &good[8..])),
                body,
                ts
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                &headers(id, ts, &format!("v1,{good}")),
                body,
                ts
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(
                secret,
                &headers(id, ts, &format!("v1,{good}")),
                body,
                ts + TOLERANCE_SECS + 1
            ),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(
                secret,
                &headers(id, ts, &format!("v1,{good}")),
                body,
                ts - TOLERANCE_SECS - 1
            ),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(secret, &SignedHeaders::default(), body, ts),
            Err(SignatureError::MissingHeaders)
        );
        // Several signatures (key rotation): any v1 match passes; other schemes are skipped.
        let multi = format!("v1a,xyz v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,{good}");
        assert_eq!(verify(secret, &headers(id, ts, &multi), body, ts), Ok(()));
        // A tampered body fails.
        assert_eq!(
            verify(secret, &headers(id, ts, &format!("v1,{good}")), b"{}", ts),
            Err(SignatureError::NoMatch)
        );
    }
}
