//! A channel's delivery history: every attempt (events and tests), newest
//! last, the most recent [`KEEP`] per channel, in SimpleTuner's
//! `DeliveryLogEntry` shape. The recipient is the masked URL.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Channel, mask};
use crate::kernel::clock::rfc3339;
use crate::kernel::kv::{self, KvStore, get_json};

/// Attempts kept per channel.
pub const KEEP: usize = 100;
const SEQ: &str = "chan-hist:seq";

pub(super) fn key(channel: u64) -> String {
    format!("chan-hist:{channel}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: u64,
    pub channel_id: u64,
    pub channel_type: String,
    pub event_type: String,
    pub job_id: Option<String>,
    pub recipient: String,
    pub delivered: bool,
    pub error: Option<String>,
    pub at_ms: u64,
}

impl Entry {
    pub fn new(
        c: &Channel,
        event: &str,
        job: Option<&str>,
        delivered: bool,
        error: Option<String>,
        at_ms: u64,
    ) -> Self {
        Entry {
            id: 0,
            channel_id: c.id,
            channel_type: c.kind.as_str().into(),
            event_type: event.into(),
            job_id: job.map(str::to_string),
            recipient: mask(&c.url),
            delivered,
            error,
            at_ms,
        }
    }

    /// SimpleTuner's `DeliveryLogEntry`.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "channel_id": self.channel_id,
            "channel_type": self.channel_type,
            "event_type": self.event_type,
            "job_id": self.job_id,
            "user_id": null,
            "recipient": self.recipient,
            "delivery_status": if self.delivered { "delivered" } else { "failed" },
            "error_message": self.error,
            "sent_at": rfc3339(self.at_ms),
            "delivered_at": self.delivered.then(|| rfc3339(self.at_ms)),
        })
    }
}

/// Appends `entry` (best effort: history must never fail a delivery).
pub fn record(kv: &dyn KvStore, mut entry: Entry) {
    let Ok(n) = kv.increment(SEQ, 1) else {
        return;
    };
    entry.id = u64::try_from(n).unwrap_or_default();
    let _ = kv::edit_json(kv, &key(entry.channel_id), |list: &mut Vec<Entry>| {
        list.push(entry.clone());
        let excess = list.len().saturating_sub(KEEP);
        list.drain(..excess);
    });
}

/// The attempts for `channels`, newest first, at most `limit`, optionally
/// only those of `job`.
pub fn of(
    kv: &dyn KvStore,
    channels: &[u64],
    job: Option<&str>,
    limit: usize,
) -> Result<Vec<Entry>, kv::KvError> {
    let mut out = Vec::new();
    for c in channels {
        let list: Vec<Entry> = get_json(kv, &key(*c))?.unwrap_or_default();
        out.extend(
            list.into_iter()
                .filter(|e| job.is_none_or(|j| e.job_id.as_deref() == Some(j))),
        );
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.id));
    out.truncate(limit);
    Ok(out)
}
