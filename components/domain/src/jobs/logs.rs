//! A job's logs as stored (the tail of Replicate's text, with absolute byte
//! offsets) and the slices `GET /jobs/{id}/logs` reads of them.

use serde::{Deserialize, Serialize};

use crate::kernel::error::ApiError;
use crate::kernel::kv::{KvError, KvStore, MAX_CAS_ATTEMPTS};

pub const MAX_LOG_BYTES: usize = 768 * 1024;

/// A job's logs as stored: the tail of the full text, and how many bytes of
/// its start were dropped (so byte offsets stay absolute).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredLogs {
    pub dropped: usize,
    pub text: String,
}

/// What `GET /jobs/{id}/logs` asks for: `offset` (absolute byte, the last
/// `next_offset`) and `tail` (last N lines).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogQuery {
    pub offset: Option<usize>,
    pub tail: Option<usize>,
}

impl LogQuery {
    pub fn parse(params: &[(String, String)]) -> Result<Self, ApiError> {
        let number = |name: &str| {
            crate::kernel::http::param(params, name)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        ApiError::bad_request(format!("`{name}` must be a non-negative integer"))
                    })
                })
                .transpose()
        };
        Ok(LogQuery {
            offset: number("offset")?,
            tail: number("tail")?,
        })
    }
}

/// A slice of logs for `GET /jobs/{id}/logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSlice {
    pub text: String,
    /// Absolute byte offset where `text` starts.
    pub offset: usize,
    /// Pass this as `offset` next time to get only new output.
    pub next_offset: usize,
    /// Bytes before `offset` that are no longer stored.
    pub truncated: bool,
}

/// Stores `full` (the provider's whole log text so far) at `key` unless what
/// is stored is already as long. A job's log text only grows, so a shorter
/// text is an older answer (a refresh racing the webhook that ended the job,
/// or a late webhook) and must not replace the final lines a follower is
/// owed. Guarded by compare-and-swap; a first write is an upsert (a swap on a
/// missing key is one), so it looks again and a longer text written at the
/// same moment still wins.
pub(crate) fn store_growing(kv: &dyn KvStore, key: &str, full: &str) -> Result<(), KvError> {
    let new = serde_json::to_vec(&StoredLogs::keep_tail(full))
        .map_err(|e| KvError::new(e.to_string()))?;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let seen = kv.read_for_swap(key)?;
        if let Some(bytes) = &seen {
            // Unreadable stored logs are replaced rather than kept forever.
            let stored = serde_json::from_slice::<StoredLogs>(bytes).map_or(0, |l| l.total_bytes());
            if stored >= full.len() {
                return Ok(());
            }
        }
        if kv.swap(key, seen.as_deref(), &new)? && seen.is_some() {
            return Ok(());
        }
    }
    Err(KvError::new(format!(
        "{key}: the logs kept changing while being stored"
    )))
}

impl StoredLogs {
    pub fn keep_tail(full: &str) -> Self {
        if full.len() <= MAX_LOG_BYTES {
            return Self {
                dropped: 0,
                text: full.to_string(),
            };
        }
        let mut cut = full.len() - MAX_LOG_BYTES;
        while !full.is_char_boundary(cut) {
            cut += 1;
        }
        Self {
            dropped: cut,
            text: full[cut..].to_string(),
        }
    }

    pub fn total_bytes(&self) -> usize {
        self.dropped + self.text.len()
    }

    /// From absolute byte `offset` (clamped to what is stored), optionally only
    /// the last `tail` lines of that.
    pub fn slice(&self, offset: Option<usize>, tail: Option<usize>) -> LogSlice {
        let total = self.total_bytes();
        let want = offset.unwrap_or(self.dropped).min(total);
        let mut start = want.max(self.dropped) - self.dropped;
        while !self.text.is_char_boundary(start) {
            start += 1;
        }
        let mut text = &self.text[start..];
        let mut abs = self.dropped + start;
        if let Some(n) = tail {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let skip = lines.len().saturating_sub(n);
            let skipped: usize = lines[..skip].iter().map(|l| l.len()).sum();
            text = &text[skipped..];
            abs += skipped;
        }
        LogSlice {
            text: text.to_string(),
            offset: abs,
            next_offset: total,
            truncated: offset.is_some_and(|o| o < self.dropped)
                || (offset.is_none() && tail.is_none() && self.dropped > 0),
        }
    }
}
