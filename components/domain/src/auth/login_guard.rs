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
    let name = name_key(username);
    kv::edit_json(kv, KEY, |f: &mut Failures| {
        f.names
            .retain(|_, e| e.locked_until > now_ms || now_ms < e.last_ms + IDLE_MS);
        let e = f.names.entry(name.clone()).or_default();
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
    })
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
    fn idle_entries_are_dropped_after_a_day() {
        let kv = MemoryKv::default();
        record_failure(&kv, "alice", 0).unwrap();
        record_failure(&kv, "bob", IDLE_MS + 1).unwrap();
        let f: Failures = get_json(&kv, KEY).unwrap().unwrap();
        assert_eq!(f.names.len(), 1);
    }
}
