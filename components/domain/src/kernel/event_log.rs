//! The event log: an append-only record of who did what (sign-ins, keys,
//! users, jobs, settings, rejected webhooks, refused permissions), chained so
//! tampering shows: each entry carries the SHA-256 of the one before it and
//! its own, over its fields.
//!
//! Storage: `ev:head` (the last sequence number and its hash, advanced by
//! compare-and-swap, so concurrent writers are ordered and none is lost) and
//! one key per entry, `ev:<seq>`. Only the newest [`KEPT`] entries are kept
//! (each append deletes the one that falls out), so the log costs at most
//! `KEPT + 2` keys of Fermyon Cloud's 1,024. Entries hold ids, names and
//! outcomes, never a secret. Recording never fails the action it records.
//!
//! Only attributable events are chained. What anyone on the internet can
//! cause without a credential (actor `anonymous`: rejected webhooks, failed
//! sign-ins) is counted per (kind, hour) with a few samples ([`noise`]), so
//! it cannot push users' history out of the chain. Every stored field is
//! bounded ([`MAX_FIELD_CHARS`], [`MAX_DETAIL_BYTES`]).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::clock::rfc3339;
use super::error::ApiError;
use super::kv::{self, KvStore};

/// Entries kept: enough for weeks of a small team's activity, a quarter of a
/// Fermyon Cloud store.
pub const KEPT: u64 = 250;
const HEAD: &str = "ev:head";
/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

mod noise;

/// The longest string kept in any field; longer ones are cut.
pub const MAX_FIELD_CHARS: usize = 200;
/// The largest `detail` kept, as JSON; a larger one is replaced by a note.
pub const MAX_DETAIL_BYTES: usize = 2048;
/// The actor of events nobody authenticated: they are counted, not chained.
pub const ANONYMOUS: &str = "anonymous";

fn entry_key(seq: u64) -> String {
    format!("ev:{seq:012}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

/// What happened, as a caller records it.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// `auth.login`, `auth.login_failed`, `job.submitted`, ...
    pub kind: &'a str,
    /// Who did it: a user id, `anonymous`, or `system` (the sync, webhooks).
    pub actor: &'a str,
    /// What it was done to (a job id, user id, key id, setting), if anything.
    pub target: Option<&'a str>,
    /// Whose object the target is: they may read the event too.
    pub owner: Option<&'a str>,
    /// A few words or numbers more; never a secret.
    pub detail: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub at_ms: u64,
    pub kind: String,
    pub actor: String,
    pub target: Option<String>,
    pub owner: Option<String>,
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl Entry {
    /// SHA-256 over the previous hash and every field but the hash itself.
    fn digest(&self) -> String {
        let fields = json!([
            self.seq,
            self.at_ms,
            self.kind,
            self.actor,
            self.target,
            self.owner,
            self.detail
        ]);
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(fields.to_string().as_bytes());
        hex::encode(h.finalize())
    }

    pub fn to_api(&self) -> Value {
        json!({
            "seq": self.seq,
            "at": rfc3339(self.at_ms),
            "type": self.kind,
            "actor": self.actor,
            "target": self.target,
            "owner": self.owner,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }
}

/// Appends `ev` (anonymous events are counted instead, see [`noise`]).
/// Errors are swallowed: the log must not break what it records.
pub fn record(kv: &dyn KvStore, ev: NewEvent, now_ms: u64) {
    let (kind, actor) = (cut(ev.kind), cut(ev.actor));
    let (target, owner) = (ev.target.map(cut), ev.owner.map(cut));
    let ev = NewEvent {
        kind: &kind,
        actor: &actor,
        target: target.as_deref(),
        owner: owner.as_deref(),
        detail: bound_detail(&ev.detail),
    };
    let _ = if ev.actor == ANONYMOUS {
        noise::count(kv, &ev, now_ms)
    } else {
        append(kv, &ev, now_ms).map(|_| ())
    };
}

/// `s` cut to [`MAX_FIELD_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `detail` with every string cut and every list and object shortened; if it
/// is still larger than [`MAX_DETAIL_BYTES`], a note saying so.
fn bound_detail(detail: &Value) -> Value {
    fn walk(v: &Value, depth: usize) -> Value {
        match v {
            Value::String(s) => Value::String(cut(s)),
            Value::Array(a) if depth < 4 => a.iter().take(20).map(|x| walk(x, depth + 1)).collect(),
            Value::Object(o) if depth < 4 => Value::Object(
                o.iter()
                    .take(20)
                    .map(|(k, x)| (cut(k), walk(x, depth + 1)))
                    .collect(),
            ),
            Value::Array(_) | Value::Object(_) => json!("…"),
            other => other.clone(),
        }
    }
    let bounded = walk(detail, 0);
    if bounded.to_string().len() > MAX_DETAIL_BYTES {
        return json!({"truncated": true});
    }
    bounded
}

fn append(kv: &dyn KvStore, ev: &NewEvent, now_ms: u64) -> Result<u64, ApiError> {
    let mut made: Option<Entry> = None;
    let mut advance = |current: &[u8]| -> Result<Vec<u8>, ApiError> {
        let head: Head = serde_json::from_slice(current)
            .map_err(|e| ApiError::storage(format!("event log head: {e}")))?;
        let mut entry = Entry {
            seq: head.seq + 1,
            at_ms: now_ms,
            kind: ev.kind.into(),
            actor: ev.actor.into(),
            target: ev.target.map(str::to_string),
            owner: ev.owner.map(str::to_string),
            detail: ev.detail.clone(),
            prev_hash: head.hash,
            hash: String::new(),
        };
        entry.hash = entry.digest();
        let next = serde_json::to_vec(&Head {
            seq: entry.seq,
            hash: entry.hash.clone(),
        })
        .expect("serialises");
        made = Some(entry);
        Ok(next)
    };
    // The head exists after the first event: update first, create only when missing.
    match kv::update::<ApiError>(kv, HEAD, &mut advance) {
        Err(kv::UpdateError::Missing) => {
            let genesis = serde_json::to_vec(&Head {
                seq: 0,
                hash: GENESIS.into(),
            })
            .expect("serialises");
            kv::create_once(kv, HEAD, &genesis)?;
            kv::update::<ApiError>(kv, HEAD, &mut advance)
        }
        other => other,
    }
    .map_err(|e| match e {
        kv::UpdateError::Rejected(api) => api,
        other => other.into_kv("the event log").into(),
    })?;
    let entry = made.expect("the update ran");
    // This writer alone advanced the head to `seq`, so it alone writes it.
    kv::set_json(kv, &entry_key(entry.seq), &entry)?;
    if entry.seq > KEPT {
        let _ = kv.delete(&entry_key(entry.seq - KEPT));
    }
    Ok(entry.seq)
}

fn head(kv: &dyn KvStore) -> Result<Head, ApiError> {
    Ok(kv::get_json(kv, HEAD)?.unwrap_or(Head {
        seq: 0,
        hash: GENESIS.into(),
    }))
}

/// What the log keeps, in words (answered by list and verify).
pub const RETENTION: &str = "the newest 250 chained entries (sign-ins, keys, users, jobs, settings, \
    refused permissions); unauthenticated events (rejected webhooks, failed sign-ins) are counted per \
    type and hour, with the first samples, for the newest 144 hours of such events";

/// `GET /api/cloud/events`: newest first, filtered, a page at a time.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub since_ms: Option<u64>,
    /// Entries older than this sequence number (the previous page's `next_before`).
    pub before: Option<u64>,
    pub limit: usize,
}

/// Reads entries newest first in batches of a page, keeping those `viewer`
/// may see (`None`: everything, for admins) that match `q`. Unfiltered it
/// reads one page; filtered, at most the [`KEPT`] entries there are.
pub fn list(kv: &dyn KvStore, q: &EventQuery, viewer: Option<&str>) -> Result<Value, ApiError> {
    let head = head(kv)?;
    let oldest = head.seq.saturating_sub(KEPT) + 1;
    let mut next = q.before.unwrap_or(head.seq + 1).min(head.seq + 1);
    let limit = q.limit.clamp(1, 200);
    let mut events = Vec::new();
    while next > oldest && events.len() < limit {
        let from = next.saturating_sub(limit as u64).max(oldest);
        let keys: Vec<String> = (from..next).rev().map(entry_key).collect();
        for raw in kv.get_many(&keys)?.into_iter().flatten() {
            let Ok(e) = serde_json::from_slice::<Entry>(&raw) else {
                continue;
            };
            if q.since_ms.is_some_and(|s| e.at_ms < s) {
                next = oldest; // older entries are older still
                break;
            }
            let visible = viewer.is_none_or(|v| e.owner.as_deref() == Some(v) || e.actor == v);
            let matches = q
                .kind
                .as_deref()
                .is_none_or(|k| e.kind == k || e.kind.starts_with(&format!("{k}.")))
                && q.actor.as_deref().is_none_or(|a| e.actor == a)
                && q.target
                    .as_deref()
                    .is_none_or(|t| e.target.as_deref() == Some(t));
            if visible && matches {
                events.push(e);
                if events.len() == limit {
                    break;
                }
            }
        }
        next = match events.last() {
            Some(last) if events.len() == limit => last.seq,
            _ => from.min(next),
        };
    }
    let more = next > oldest;
    // Counted noise is nobody's object: admins see it, on the first page.
    let aggregates = match (viewer, q.before, q.actor.as_deref(), &q.target) {
        (None, None, None | Some(ANONYMOUS), None) => {
            noise::list(kv, q.kind.as_deref(), q.since_ms)?
        }
        _ => Vec::new(),
    };
    Ok(json!({
        "events": events.iter().map(Entry::to_api).collect::<Vec<_>>(),
        "next_before": more.then_some(next),
        "kept": KEPT,
        "latest_seq": head.seq,
        "dropped": oldest - 1,
        "aggregates": aggregates,
        "retention": RETENTION,
    }))
}

/// `GET /api/cloud/events/verify`: recomputes every kept entry's hash and
/// checks each links to the one before; says where the chain breaks.
pub fn verify(kv: &dyn KvStore) -> Result<Value, ApiError> {
    let head = head(kv)?;
    let oldest = head.seq.saturating_sub(KEPT) + 1;
    let keys: Vec<String> = (oldest..=head.seq).map(entry_key).collect();
    let mut problems = Vec::new();
    let mut prev: Option<Entry> = None;
    for (seq, raw) in (oldest..=head.seq).zip(kv.get_many(&keys)?) {
        let Some(entry) = raw.and_then(|r| serde_json::from_slice::<Entry>(&r).ok()) else {
            problems.push(json!({"seq": seq, "problem": "missing or unreadable"}));
            prev = None;
            continue;
        };
        if entry.seq != seq || entry.digest() != entry.hash {
            problems.push(json!({"seq": seq, "problem": "its hash does not match its contents"}));
        }
        let expected_prev = match (&prev, seq) {
            (Some(p), _) => Some(p.hash.clone()),
            (None, 1) => Some(GENESIS.to_string()),
            (None, _) => None, // the entry before it has aged out (or is missing, reported)
        };
        if expected_prev.is_some_and(|h| h != entry.prev_hash) {
            problems.push(json!({"seq": seq, "problem": "it does not follow the entry before it"}));
        }
        prev = Some(entry);
    }
    if let Some(last) = &prev
        && last.seq == head.seq
        && last.hash != head.hash
    {
        problems.push(json!({"seq": head.seq, "problem": "the head does not name the last entry"}));
    }
    // Entries aged out are gone: the chain is checked from the oldest kept
    // one, whose link to its predecessor cannot be checked. Say so.
    let dropped = oldest - 1;
    let scope = if dropped == 0 {
        format!("the whole log: {} entries from #1", head.seq)
    } else {
        format!(
            "from the oldest kept entry #{oldest} to #{}; the {dropped} entries before it were dropped \
             by retention and are not checked (nor is #{oldest}'s link to them)",
            head.seq
        )
    };
    Ok(json!({
        "valid": problems.is_empty(),
        "complete": dropped == 0,
        "checked": head.seq + 1 - oldest,
        "dropped": dropped,
        "from_seq": oldest.min(head.seq),
        "to_seq": head.seq,
        "verified": scope,
        "retention": RETENTION,
        "head_hash": head.hash,
        "problems": problems,
    }))
}

#[cfg(test)]
mod tests;
