//! Failed sign-ins, tracked in ONE bounded value (`loginfail`) instead of a
//! key per username: anyone can try any username, and a key per name let an
//! anonymous caller fill Fermyon Cloud's 1,024-key store (after which no job
//! could be written). Known and unknown usernames are tracked alike, so the
//! lockout does not tell which names exist.
//!
//! The map holds at most [`MAX_TRACKED`] names (by SHA-256, never in clear);
//! entries idle for a day go first, then the least recently failed unlocked
//! ones. A flood of made-up names can therefore evict a real user's count,
//! which only gives an attacker back the argon2-paced guessing rate; it
//! cannot unlock a name that is locked while unlocked entries remain.
//!
//! An attempt is *reserved* before its password is checked ([`reserve`]): one
//! compare-and-swap counts it as a failure and, from the
//! [`FREE_FAILURES`]th, locks the name; a right password then forgets the
//! count ([`clear`]). Counting after the check let parallel guesses all pass
//! the lock before any was counted (15 to 17 of 48 evaluated, for 5 allowed).
//! A reservation that cannot be written is refused, never evaluated.
//!
//! The argon2 work itself (~19 MiB and tens of milliseconds each) is bounded
//! across instances by [`Argon2Slot`]: a counter per 10-second slot, raised
//! before hashing and lowered after; a sign-in beyond
//! [`MAX_CONCURRENT_ARGON2`] is answered 503 with `Retry-After`, unhashed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kernel::kv::{self, KvError, KvStore, get_json};
use crate::kernel::secrets::sha256_hex;

pub const KEY: &str = "loginfail";
/// Failures allowed before sign-ins for that username are locked for a while.
pub const FREE_FAILURES: u64 = 5;
pub const MAX_LOCK_MS: u64 = 15 * 60 * 1000;
pub const MAX_TRACKED: usize = 512;
const IDLE_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Failures {
    #[serde(default)]
    names: BTreeMap<String, Entry>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Entry {
    count: u64,
    last_ms: u64,
    locked_until: u64,
}

fn name_key(username: &str) -> String {
    sha256_hex(&username.to_ascii_lowercase())[..32].to_string()
}

/// Until when sign-ins for `username` are locked, if they are now.
pub fn locked_until(kv: &dyn KvStore, username: &str, now_ms: u64) -> Result<Option<u64>, KvError> {
    let f: Option<Failures> = get_json(kv, KEY)?;
    Ok(
        f.and_then(|f| f.names.get(&name_key(username)).map(|e| e.locked_until))
            .filter(|until| *until > now_ms),
    )
}

/// Counts a failure; from the [`FREE_FAILURES`]th on, locks the name for 30 s,
/// doubling per failure up to [`MAX_LOCK_MS`].
pub fn record_failure(kv: &dyn KvStore, username: &str, now_ms: u64) -> Result<(), KvError> {
    tally(kv, username, now_ms, false).map(|_| ())
}

/// What [`reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt is counted (as a failure until [`clear`]ed): check it.
    Granted,
    /// The name is locked until then: do not check the password.
    Locked { until_ms: u64 },
}

/// Reserves one sign-in attempt for `username` before its password is
/// checked, atomically with the lock check: the attempt counts as a failure
/// (locking the name from the [`FREE_FAILURES`]th on, for 30 s doubling up to
/// [`MAX_LOCK_MS`]) unless a success [`clear`]s it. Of any number of parallel
/// attempts, at most the free ones are granted.
pub fn reserve(kv: &dyn KvStore, username: &str, now_ms: u64) -> Result<Reservation, KvError> {
    tally(kv, username, now_ms, true)
}

/// Counts a failure for `username`, unless `refuse_locked` and it is locked.
fn tally(
    kv: &dyn KvStore,
    username: &str,
    now_ms: u64,
    refuse_locked: bool,
) -> Result<Reservation, KvError> {
    let name = name_key(username);
    let mut decision = Reservation::Granted;
    kv::edit_json(kv, KEY, |f: &mut Failures| {
        f.names
            .retain(|_, e| e.locked_until > now_ms || now_ms < e.last_ms + IDLE_MS);
        let e = f.names.entry(name.clone()).or_default();
        if refuse_locked && e.locked_until > now_ms {
            decision = Reservation::Locked {
                until_ms: e.locked_until,
            };
            return;
        }
        decision = Reservation::Granted;
        e.count += 1;
        e.last_ms = now_ms;
        if e.count >= FREE_FAILURES {
            let lock = (30_000u64 << (e.count - FREE_FAILURES).min(10)).min(MAX_LOCK_MS);
            e.locked_until = now_ms + lock;
        }
        while f.names.len() > MAX_TRACKED {
            let victim = f
                .names
                .iter()
                .filter(|(k, _)| **k != name)
                .min_by_key(|(_, e)| (e.locked_until > now_ms, e.last_ms))
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => f.names.remove(&k),
                None => break,
            };
        }
    })?;
    Ok(decision)
}

/// Sign-ins hashing at once, across all instances, beyond which a sign-in is
/// answered 503 unhashed (each argon2id verification holds ~19 MiB).
pub const MAX_CONCURRENT_ARGON2: i64 = 8;
/// The width of one in-flight counter's slot.
const SLOT_MS: u64 = 10_000;
/// Counters in rotation: the one of the slot after next is emptied as each
/// slot starts using its own, so a count left by an instance that died while
/// hashing is gone within [`SLOTS`] slots.
const SLOTS: u64 = 3;

fn slot_key(slot: u64) -> String {
    format!("loginhash:{}", slot % SLOTS)
}

/// A place among the argon2 verifications in flight, held while hashing
/// and given back when dropped.
pub struct Argon2Slot<'a> {
    kv: &'a dyn KvStore,
    key: String,
}

impl<'a> Argon2Slot<'a> {
    /// Takes a place, or `Ok(None)` when [`MAX_CONCURRENT_ARGON2`]
    /// verifications (this slot's and the one before's) are already running.
    pub fn acquire(kv: &'a dyn KvStore, now_ms: u64) -> Result<Option<Self>, KvError> {
        let slot = now_ms / SLOT_MS;
        // The counter this slot's successor will use held the slot before
        // last's: nothing of it is in flight any more.
        kv.delete(&slot_key(slot + 1))?;
        let key = slot_key(slot);
        let mine = kv.increment(&key, 1)?;
        let before = kv.increment(&slot_key(slot + SLOTS - 1), 0)?;
        let held = Argon2Slot { kv, key };
        if mine + before.max(0) > MAX_CONCURRENT_ARGON2 {
            return Ok(None); // dropped: the place is given back
        }
        Ok(Some(held))
    }
}

impl Drop for Argon2Slot<'_> {
    fn drop(&mut self) {
        let _ = self.kv.increment(&self.key, -1);
    }
}

/// A successful sign-in forgets the name's failures (no write when there are none).
pub fn clear(kv: &dyn KvStore, username: &str) -> Result<(), KvError> {
    let name = name_key(username);
    let f: Option<Failures> = get_json(kv, KEY)?;
    if f.is_some_and(|f| f.names.contains_key(&name)) {
        kv::edit_json(kv, KEY, |f: &mut Failures| {
            f.names.remove(&name);
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn locks_after_the_free_failures_and_doubles() {
        let kv = MemoryKv::default();
        for _ in 0..FREE_FAILURES - 1 {
            record_failure(&kv, "Alice", 0).unwrap();
        }
        assert_eq!(locked_until(&kv, "alice", 0).unwrap(), None);
        record_failure(&kv, "alice", 0).unwrap();
        assert_eq!(locked_until(&kv, "ALICE", 0).unwrap(), Some(30_000));
        record_failure(&kv, "alice", 1).unwrap();
        assert_eq!(locked_until(&kv, "alice", 1).unwrap(), Some(60_001));
        assert_eq!(locked_until(&kv, "alice", 60_001).unwrap(), None);
        clear(&kv, "alice").unwrap();
        record_failure(&kv, "alice", 70_000).unwrap();
        assert_eq!(locked_until(&kv, "alice", 70_000).unwrap(), None);
    }

    #[test]
    fn a_flood_of_made_up_names_stays_one_bounded_key_and_keeps_locks() {
        let kv = MemoryKv::default();
        for _ in 0..FREE_FAILURES {
            record_failure(&kv, "admin", 0).unwrap();
        }
        for i in 0..3 * MAX_TRACKED {
            record_failure(&kv, &format!("made-up-{i}"), 1).unwrap();
        }
        let mut keys = kv.keys();
        keys.sort();
        assert_eq!(keys, [format!("claim:{KEY}"), KEY.to_string()]);
        let f: Failures = get_json(&kv, KEY).unwrap().unwrap();
        assert_eq!(f.names.len(), MAX_TRACKED);
        assert!(kv.get(KEY).unwrap().unwrap().len() < 64 * 1024);
        // The locked name survived the flood.
        assert!(locked_until(&kv, "admin", 1).unwrap().is_some());
        // Names are stored hashed.
        assert!(
            !String::from_utf8(kv.get(KEY).unwrap().unwrap())
                .unwrap()
                .contains("made-up")
        );
    }

    #[test]
    fn reservations_lock_before_any_password_is_checked() {
        let kv = MemoryKv::default();
        let granted = (0..48)
            .filter(|_| reserve(&kv, "alice", 0).unwrap() == Reservation::Granted)
            .count();
        assert_eq!(granted as u64, FREE_FAILURES);
        assert_eq!(
            reserve(&kv, "alice", 1).unwrap(),
            Reservation::Locked { until_ms: 30_000 }
        );
        clear(&kv, "alice").unwrap();
        assert_eq!(reserve(&kv, "alice", 2).unwrap(), Reservation::Granted);
    }

    #[test]
    fn argon2_work_in_flight_is_bounded_and_given_back() {
        let kv = MemoryKv::default();
        let held: Vec<_> = (0..MAX_CONCURRENT_ARGON2)
            .map(|_| Argon2Slot::acquire(&kv, 0).unwrap().expect("a place"))
            .collect();
        assert!(Argon2Slot::acquire(&kv, 0).unwrap().is_none());
        // The previous slot's verifications still count in the next one.
        assert!(Argon2Slot::acquire(&kv, SLOT_MS).unwrap().is_none());
        drop(held);
        assert!(Argon2Slot::acquire(&kv, SLOT_MS).unwrap().is_some());
        // A count left behind (an instance that died hashing) is gone two slots on.
        std::mem::forget(Argon2Slot::acquire(&kv, 3 * SLOT_MS).unwrap());
        for _ in 1..MAX_CONCURRENT_ARGON2 {
            std::mem::forget(Argon2Slot::acquire(&kv, 3 * SLOT_MS).unwrap());
        }
        assert!(Argon2Slot::acquire(&kv, 3 * SLOT_MS).unwrap().is_none());
        assert!(Argon2Slot::acquire(&kv, 5 * SLOT_MS).unwrap().is_some());
        assert!(
            kv.keys()
                .iter()
                .filter(|k| k.starts_with("loginhash:"))
                .count()
                <= 3
        );
    }

    #[test]
    fn idle_entries_are_dropped_after_a_day() {
        let kv = MemoryKv::default();
        record_failure(&kv, "alice", 0).unwrap();
        record_failure(&kv, "bob", IDLE_MS + 1).unwrap();
        let f: Failures = get_json(&kv, KEY).unwrap().unwrap();
        assert_eq!(f.names.len(), 1);
    }
}
