//! Unauthenticated noise (rejected webhooks, failed sign-ins: anything whose
//! actor is `anonymous`) is counted, not chained: one bucket per (kind, hour)
//! with a count and the first few samples, in one value (`ev:noise`). So
//! anyone on the internet can raise a counter, never push a user's history
//! out of the chain, and the noise costs one key however loud it is.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::NewEvent;
use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore};

const KEY: &str = "ev:noise";
const HOUR_MS: u64 = 3_600_000;
/// Buckets kept (newest): three days of hourly buckets for two kinds.
const BUCKETS_KEPT: usize = 144;
/// Samples kept per bucket: the first ones of the hour.
const SAMPLES: usize = 3;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Sample {
    at_ms: u64,
    target: Option<String>,
    detail: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Bucket {
    kind: String,
    hour_ms: u64,
    count: u64,
    last_ms: u64,
    samples: Vec<Sample>,
}

/// Counts `ev` (already bounded) in its (kind, hour) bucket.
pub(super) fn count(kv: &dyn KvStore, ev: &NewEvent, now_ms: u64) -> Result<(), ApiError> {
    let hour_ms = now_ms - now_ms % HOUR_MS;
    kv::edit_json(kv, KEY, |buckets: &mut Vec<Bucket>| {
        let i = match buckets
            .iter()
            .position(|b| b.kind == ev.kind && b.hour_ms == hour_ms)
        {
            Some(i) => i,
            None => {
                buckets.push(Bucket {
                    kind: ev.kind.to_string(),
                    hour_ms,
                    ..Default::default()
                });
                buckets.len() - 1
            }
        };
        let b = &mut buckets[i];
        b.count += 1;
        b.last_ms = b.last_ms.max(now_ms);
        if b.samples.len() < SAMPLES {
            b.samples.push(Sample {
                at_ms: now_ms,
                target: ev.target.map(str::to_string),
                detail: ev.detail.clone(),
            });
        }
        buckets.sort_by_key(|b| std::cmp::Reverse(b.hour_ms));
        buckets.truncate(BUCKETS_KEPT);
    })
    .map_err(ApiError::from)
}

/// The buckets matching `kind` (a kind or its prefix) that end after
/// `since_ms`, newest first, as the API shows them.
pub(super) fn list(
    kv: &dyn KvStore,
    kind: Option<&str>,
    since_ms: Option<u64>,
) -> Result<Vec<Value>, ApiError> {
    let buckets: Vec<Bucket> = kv::get_json(kv, KEY)?.unwrap_or_default();
    Ok(buckets
        .iter()
        .filter(|b| kind.is_none_or(|k| b.kind == k || b.kind.starts_with(&format!("{k}."))))
        .filter(|b| since_ms.is_none_or(|s| b.last_ms >= s))
        .map(|b| {
            json!({
                "type": b.kind,
                "actor": "anonymous",
                "from": rfc3339(b.hour_ms),
                "to": rfc3339(b.hour_ms + HOUR_MS),
                "count": b.count,
                "last_at": rfc3339(b.last_ms),
                "samples": b.samples.iter().map(|s| json!({
                    "at": rfc3339(s.at_ms), "target": s.target, "detail": s.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect())
}
