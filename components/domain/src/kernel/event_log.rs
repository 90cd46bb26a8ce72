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

/// Appends `ev`. Errors are swallowed: the log must not break what it records.
pub fn record(kv: &dyn KvStore, ev: NewEvent, now_ms: u64) {
    let _ = append(kv, &ev, now_ms);
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
    .map_err(|e| ApiError::storage(format!("event log: {e:?}")))?;
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
    Ok(json!({
        "events": events.iter().map(Entry::to_api).collect::<Vec<_>>(),
        "next_before": more.then_some(next),
        "kept": KEPT,
        "latest_seq": head.seq,
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
    Ok(json!({
        "valid": problems.is_empty(),
        "checked": head.seq + 1 - oldest,
        "from_seq": oldest.min(head.seq),
        "to_seq": head.seq,
        "head_hash": head.hash,
        "problems": problems,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    fn ev<'a>(kind: &'a str, actor: &'a str, owner: Option<&'a str>) -> NewEvent<'a> {
        NewEvent {
            kind,
            actor,
            target: Some("t1"),
            owner,
            detail: json!({}),
        }
    }

    #[test]
    fn entries_chain_list_newest_first_and_verify() {
        let kv = MemoryKv::default();
        for i in 0..5 {
            record(&kv, ev("job.submitted", "alice", Some("alice")), 1_000 + i);
        }
        record(&kv, ev("auth.login_failed", "anonymous", None), 2_000);
        let page = list(
            &kv,
            &EventQuery {
                limit: 4,
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let seqs: Vec<u64> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [6, 5, 4, 3]);
        assert_eq!(page["next_before"], 3);
        let rest = list(
            &kv,
            &EventQuery {
                limit: 4,
                before: Some(3),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(rest["events"].as_array().unwrap().len(), 2);
        assert!(rest["next_before"].is_null());
        // Alice sees her own events, not the failed sign-in.
        let mine = list(
            &kv,
            &EventQuery {
                limit: 50,
                ..Default::default()
            },
            Some("alice"),
        )
        .unwrap();
        assert_eq!(mine["events"].as_array().unwrap().len(), 5);
        let kinds = list(
            &kv,
            &EventQuery {
                limit: 50,
                kind: Some("auth".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(kinds["events"].as_array().unwrap().len(), 1);
        assert_eq!(verify(&kv).unwrap()["valid"], true);
    }

    #[test]
    fn a_changed_entry_breaks_the_chain_where_it_was_changed() {
        let kv = MemoryKv::default();
        for i in 0..4 {
            record(&kv, ev("job.cancelled", "bob", Some("bob")), i);
        }
        let key = entry_key(2);
        let mut e: Entry = kv::get_json(&kv, &key).unwrap().unwrap();
        e.actor = "mallory".into();
        kv::set_json(&kv, &key, &e).unwrap();
        let v = verify(&kv).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(v["problems"][0]["seq"], 2, "{v}");
        // Rewriting its hash too is caught by the next entry.
        e.hash = e.digest();
        kv::set_json(&kv, &key, &e).unwrap();
        let v = verify(&kv).unwrap();
        assert_eq!(v["problems"][0]["seq"], 3, "{v}");
    }

    #[test]
    fn only_the_newest_entries_are_kept() {
        let kv = MemoryKv::default();
        for i in 0..KEPT + 10 {
            record(&kv, ev("job.submitted", "a", None), i);
        }
        assert!(kv.get(&entry_key(10)).unwrap().is_none());
        assert!(kv.get(&entry_key(11)).unwrap().is_some());
        let v = verify(&kv).unwrap();
        assert_eq!(
            (v["valid"].as_bool(), v["checked"].as_u64()),
            (Some(true), Some(KEPT))
        );
    }
}
