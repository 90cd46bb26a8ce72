//! Idempotency keys for submit, better than SimpleTuner's (whose keys are
//! global, unbound to the request body and checked after the work): scoped
//! per principal, bound to a fingerprint of the request body, reserved before
//! any work so concurrent duplicates cannot both run, kept 24 h.
//!
//! Race safety on Spin: a missing record is claimed with `increment` (exactly
//! one caller sees 1); an existing record (expired or released) is taken over
//! with compare-and-swap, which is atomic for existing keys. Records are never
//! deleted by the request path, so the claim counter and record stay in step.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kernel::error::ApiError;
use crate::kernel::kv::{KvError, KvStore, MAX_CAS_ATTEMPTS};

pub const TTL_MS: u64 = 24 * 3600 * 1000;
/// A reservation whose request died without finishing stops blocking after this.
pub const STALE_MS: u64 = 10 * 60 * 1000;
/// A reservation that names no job after this belongs to a request that died
/// (a store outage cut it before it could give the key back): a submit names
/// its job within its first seconds, and platforms end a request at 30 s.
pub const JOBLESS_MS: u64 = 2 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    InProgress,
    Done,
    Released,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    state: State,
    fingerprint: String,
    job_id: Option<String>,
    created_ms: u64,
}

/// The outcome of presenting a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This request owns the key: do the work, then [`complete`] or [`release`].
    New(Reservation),
    /// The same request already produced this job.
    Replay { job_id: String },
    /// The same request is still being processed.
    InProgress,
    /// The key was used with a different request body.
    Mismatch,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    key: String,
    fingerprint: String,
    created_ms: u64,
}

/// Keys are 1–255 printable ASCII characters.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 255 {
        return Err("idempotency_key must be 1-255 characters".into());
    }
    if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err("idempotency_key must be printable ASCII".into());
    }
    Ok(())
}

pub fn fingerprint(body: &serde_json::Value) -> String {
    // serde_json's maps are sorted, so this is canonical for equal JSON.
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

fn record_key(principal: &str, key: &str) -> String {
    let h = hex::encode(Sha256::digest(key.as_bytes()));
    format!("idem:{principal}:{}", &h[..40])
}

pub fn claim(
    kv: &dyn KvStore,
    principal: &str,
    key: &str,
    fingerprint: &str,
    now_ms: u64,
) -> Result<Claim, KvError> {
    let rkey = record_key(principal, key);
    let fresh = |created_ms| Record {
        state: State::InProgress,
        fingerprint: fingerprint.to_string(),
        job_id: None,
        created_ms,
    };
    let reservation = Reservation {
        key: rkey.clone(),
        fingerprint: fingerprint.to_string(),
        created_ms: now_ms,
    };
    let fresh_bytes = serde_json::to_vec(&fresh(now_ms)).expect("record");
    for attempt in 0..MAX_CAS_ATTEMPTS {
        // A new key is the common case: try creating it before reading.
        if attempt == 0 && kv.create(&rkey, &fresh_bytes)? {
            return Ok(Claim::New(reservation));
        }
        let Some(raw) = kv.read_for_swap(&rkey)? else {
            if kv.create(&rkey, &fresh_bytes)? {
                return Ok(Claim::New(reservation));
            }
            // Another request created it meanwhile: read what it wrote.
            continue;
        };
        let rec: Option<Record> = serde_json::from_slice(&raw).ok();
        let reusable = match &rec {
            None => true,
            Some(r) => {
                r.state == State::Released
                    || now_ms >= r.created_ms + TTL_MS
                    || abandoned_before_any_job(r, now_ms)
            }
        };
        if reusable {
            if kv.swap(&rkey, Some(&raw), &fresh_bytes)? {
                return Ok(Claim::New(reservation));
            }
            continue;
        }
        let rec = rec.expect("checked");
        if rec.fingerprint != fingerprint {
            return Ok(Claim::Mismatch);
        }
        return Ok(match (rec.state, rec.job_id) {
            (State::Done, Some(job_id)) => Claim::Replay { job_id },
            // A request that died mid-way after creating its job: the job
            // exists (the sync reconciles it), so answer with it.
            (State::InProgress, Some(job_id)) if now_ms >= rec.created_ms + STALE_MS => {
                Claim::Replay { job_id }
            }
            _ => Claim::InProgress,
        });
    }
    Err(KvError::unavailable(
        "the idempotency record is being changed by too many requests at once; try again shortly",
    ))
}

/// A request that stopped (a store outage) before its key named a job: a
/// submit sends nothing to the provider before that ([`attach`]), so after
/// [`JOBLESS_MS`] nothing can be behind the key and a retry may run afresh.
fn abandoned_before_any_job(r: &Record, now_ms: u64) -> bool {
    r.state == State::InProgress && r.job_id.is_none() && now_ms >= r.created_ms + JOBLESS_MS
}

/// The sync adopted `job_id`'s prediction after its submit could not finish
/// (a store outage): the key at `record_key` that still holds the request in
/// progress for that job now replays it. Returns whether it changed.
pub fn settle(kv: &dyn KvStore, record_key: &str, job_id: &str) -> Result<bool, KvError> {
    let Some(raw) = kv.read_for_swap(record_key)? else {
        return Ok(false);
    };
    let Ok(mut rec) = serde_json::from_slice::<Record>(&raw) else {
        return Ok(false);
    };
    if rec.state != State::InProgress || rec.job_id.as_deref() != Some(job_id) {
        return Ok(false);
    }
    rec.state = State::Done;
    kv.swap(
        record_key,
        Some(&raw),
        &serde_json::to_vec(&rec).expect("record"),
    )
}

fn write(
    kv: &dyn KvStore,
    r: &Reservation,
    state: State,
    job_id: Option<&str>,
) -> Result<(), KvError> {
    let rec = Record {
        state,
        fingerprint: r.fingerprint.clone(),
        job_id: job_id.map(str::to_string),
        created_ms: r.created_ms,
    };
    kv.set(&r.key, &serde_json::to_vec(&rec).expect("record"))
}

/// Notes the job this reservation created, while the request goes on.
pub fn attach(kv: &dyn KvStore, r: &Reservation, job_id: &str) -> Result<(), KvError> {
    write(kv, r, State::InProgress, Some(job_id))
}

/// The request finished with `job_id`: replays now return it.
pub fn complete(kv: &dyn KvStore, r: &Reservation, job_id: &str) -> Result<(), KvError> {
    write(kv, r, State::Done, Some(job_id))
}

/// The request failed before doing anything lasting: a retry runs afresh.
pub fn release(kv: &dyn KvStore, r: &Reservation) -> Result<(), KvError> {
    write(kv, r, State::Released, None)
}

impl Reservation {
    /// The record's KV key (a hash of the caller's key: no secret).
    pub fn record_key(&self) -> &str {
        &self.key
    }
}

/// Removes the record at `record_key` (and its claim counter, in the race-safe
/// order of [`crate::kernel::kv::delete_created`]) once it is past its 24 h and names
/// `job_id`, so finished jobs leave no keys behind. Returns whether it was
/// removed.
pub fn remove_expired(
    kv: &dyn KvStore,
    record_key: &str,
    job_id: &str,
    now_ms: u64,
) -> Result<bool, KvError> {
    let Some(raw) = kv.get(record_key)? else {
        return Ok(false);
    };
    let Ok(rec) = serde_json::from_slice::<Record>(&raw) else {
        return Ok(false);
    };
    if rec.job_id.as_deref() != Some(job_id) || now_ms < rec.created_ms + TTL_MS {
        return Ok(false);
    }
    crate::kernel::kv::delete_created(kv, record_key)?;
    Ok(true)
}

/// Where presenting a submit's key leads.
#[derive(Debug)]
pub enum Begun<J> {
    /// This request owns the key: do the work, then [`complete`] or [`release`].
    New(Reservation),
    /// The same request already produced this job: answer with it.
    Replay(J),
}

/// Presents a submit's key: a fresh reservation, or the job the same request
/// already produced (`find` looks it up). A replay whose job was deleted starts
/// the key over. A different body with the key is 422; the same body still in
/// flight is 409.
pub fn begin<J>(
    kv: &dyn KvStore,
    principal: &str,
    key: &str,
    fingerprint: &str,
    now_ms: u64,
    find: impl Fn(&str) -> Result<Option<J>, ApiError>,
) -> Result<Begun<J>, ApiError> {
    let in_progress = || {
        ApiError::new(
            409,
            "idempotency_in_progress",
            "a request with this idempotency_key is still being processed; retry shortly",
        )
    };
    match claim(kv, principal, key, fingerprint, now_ms)? {
        Claim::New(r) => Ok(Begun::New(r)),
        Claim::Mismatch => Err(ApiError::new(
            422,
            "idempotency_key_reused",
            "this idempotency_key was used with a different request body",
        )),
        Claim::InProgress => Err(in_progress()),
        Claim::Replay { job_id } => match find(&job_id)? {
            Some(job) => Ok(Begun::Replay(job)),
            // Its job was deleted: the key starts over.
            None => {
                forget(kv, principal, key, fingerprint)?;
                match claim(kv, principal, key, fingerprint, now_ms)? {
                    Claim::New(r) => Ok(Begun::New(r)),
                    _ => Err(in_progress()),
                }
            }
        },
    }
}

/// The key's job was deleted: forget it, so the key can be used again.
pub fn forget(
    kv: &dyn KvStore,
    principal: &str,
    key: &str,
    fingerprint: &str,
) -> Result<(), KvError> {
    let r = Reservation {
        key: record_key(principal, key),
        fingerprint: fingerprint.to_string(),
        created_ms: 0,
    };
    release(kv, &r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn claim_replay_mismatch_and_release() {
        let kv = MemoryKv::default();
        let Claim::New(r) = claim(&kv, "alice", "k1", "fp", 0).unwrap() else {
            panic!("first claim wins")
        };
        assert_eq!(
            claim(&kv, "alice", "k1", "fp", 1).unwrap(),
            Claim::InProgress
        );
        assert_eq!(
            claim(&kv, "alice", "k1", "other", 1).unwrap(),
            Claim::Mismatch
        );
        // Scoped per principal: bob's identical key is his own.
        assert!(matches!(
            claim(&kv, "bob", "k1", "fp", 1).unwrap(),
            Claim::New(_)
        ));
        complete(&kv, &r, "job-1").unwrap();
        assert_eq!(
            claim(&kv, "alice", "k1", "fp", 2).unwrap(),
            Claim::Replay {
                job_id: "job-1".into()
            }
        );
        // After 24 h the key is new again.
        assert!(matches!(
            claim(&kv, "alice", "k1", "fp", TTL_MS).unwrap(),
            Claim::New(_)
        ));
        let Claim::New(r2) = claim(&kv, "alice", "k2", "fp", 0).unwrap() else {
            panic!()
        };
        release(&kv, &r2).unwrap();
        assert!(matches!(
            claim(&kv, "alice", "k2", "fp", 1).unwrap(),
            Claim::New(_)
        ));
    }

    #[test]
    fn a_key_left_in_progress_without_a_job_is_reusable_once_stale_and_never_with_one() {
        let kv = MemoryKv::default();
        let Claim::New(_) = claim(&kv, "a", "k", "fp", 0).unwrap() else {
            panic!()
        };
        // The request died (a store outage) before naming a job.
        assert_eq!(claim(&kv, "a", "k", "fp", 1).unwrap(), Claim::InProgress);
        assert_eq!(
            claim(&kv, "a", "k", "fp", JOBLESS_MS - 1).unwrap(),
            Claim::InProgress
        );
        assert!(matches!(
            claim(&kv, "a", "k", "fp", JOBLESS_MS).unwrap(),
            Claim::New(_)
        ));
        // One that named its job replays it, never runs afresh.
        let Claim::New(r) = claim(&kv, "a", "k2", "fp", 0).unwrap() else {
            panic!()
        };
        attach(&kv, &r, "job-9").unwrap();
        assert_eq!(
            claim(&kv, "a", "k2", "fp", STALE_MS).unwrap(),
            Claim::Replay {
                job_id: "job-9".into()
            }
        );
    }

    #[test]
    fn settling_an_adopted_job_makes_its_key_replay_it() {
        let kv = MemoryKv::default();
        let Claim::New(r) = claim(&kv, "a", "k", "fp", 0).unwrap() else {
            panic!()
        };
        attach(&kv, &r, "job-1").unwrap();
        assert!(
            !settle(&kv, r.record_key(), "job-2").unwrap(),
            "another job's key"
        );
        assert!(settle(&kv, r.record_key(), "job-1").unwrap());
        assert!(!settle(&kv, r.record_key(), "job-1").unwrap(), "once");
        assert_eq!(
            claim(&kv, "a", "k", "fp", 1).unwrap(),
            Claim::Replay {
                job_id: "job-1".into()
            }
        );
        assert!(!settle(&kv, "idem:missing", "job-1").unwrap());
    }

    #[test]
    fn finished_records_are_removed_after_their_day_and_the_key_works_again() {
        let kv = MemoryKv::default();
        let Claim::New(r) = claim(&kv, "a", "k", "fp", 0).unwrap() else {
            panic!()
        };
        complete(&kv, &r, "job-1").unwrap();
        let key = r.record_key().to_string();
        // Too early, or another job's record: kept.
        assert!(!remove_expired(&kv, &key, "job-1", TTL_MS - 1).unwrap());
        assert!(!remove_expired(&kv, &key, "job-2", TTL_MS).unwrap());
        assert!(remove_expired(&kv, &key, "job-1", TTL_MS).unwrap());
        assert!(kv.keys().is_empty(), "{:?}", kv.keys());
        // The key is claimable again (claim counter gone with the record).
        assert!(matches!(
            claim(&kv, "a", "k", "fp", TTL_MS).unwrap(),
            Claim::New(_)
        ));
    }

    #[test]
    fn a_dead_request_with_a_job_replays_after_it_goes_stale() {
        let kv = MemoryKv::default();
        let Claim::New(r) = claim(&kv, "a", "k", "fp", 0).unwrap() else {
            panic!()
        };
        attach(&kv, &r, "job-9").unwrap();
        assert_eq!(claim(&kv, "a", "k", "fp", 1).unwrap(), Claim::InProgress);
        assert_eq!(
            claim(&kv, "a", "k", "fp", STALE_MS).unwrap(),
            Claim::Replay {
                job_id: "job-9".into()
            }
        );
    }

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        assert!(validate_key("ci-run-42").is_ok());
        assert!(validate_key(&"x".repeat(255)).is_ok());
        for bad in ["", "tab\there", "naïve"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_key(&"x".repeat(256)).is_err());
    }
}
