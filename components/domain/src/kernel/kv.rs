//! Key-value storage as the domain sees it. Spin's `default` store implements it
//! in components; [`MemoryKv`] implements it for native tests with Spin's own
//! semantics.
//!
//! Atomicity on Spin (measured under Spin 4.1): `increment` is atomic; compare-and-swap is atomic only when updating a key that exists and
//! whose value `current()` returned. CAS on a missing key is an upsert, so keys
//! are *created* race-free with an `increment` claim ([`create_once`]) and
//! *updated* with CAS ([`update`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

/// Why a store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvErrorKind {
    /// The store refused or failed the operation.
    Failed,
    /// The store works but cannot give the guarantees cloudtuner needs (its
    /// compare-and-swap does not hold): a deployment problem, not a bug.
    Unsupported,
    /// The store cannot be reached right now (a shared Redis that is down or
    /// restarting): nothing was written by the failed call; try again later.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvError {
    pub kind: KvErrorKind,
    pub message: String,
}

impl KvError {
    pub fn new(message: impl Into<String>) -> Self {
        KvError {
            kind: KvErrorKind::Failed,
            message: message.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        KvError {
            kind: KvErrorKind::Unsupported,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        KvError {
            kind: KvErrorKind::Unavailable,
            message: message.into(),
        }
    }
}

/// Words by which stores say "not now" rather than "never": Redis refusing or
/// dropping connections, timing out or loading its data after a restart
/// (`LOADING`, redis-rs' `BusyLoadingError`), SQLite's busy, locked,
/// read-only, I/O and cannot-open errors (a database file another process
/// holds, a full or unmounted disk, a file made read-only). Such a failure
/// wrote nothing the caller relies on and is worth retrying: 503.
const UNAVAILABLE_WORDS: &[&str] = &[
    "refused",
    "reset",
    "broken pipe",
    "closed",
    "timed out",
    "timeout",
    "os error",
    "unreachable",
    "terminated",
    "loading",
    "io error",
    "i/o error",
    "connection",
    "max number of clients",
    "tryagain",
    "masterdown",
    "busy",
    "locked",
    "readonly",
    "read-only",
    "unable to open",
];

/// Whether a store's error message means it is unavailable right now (see
/// [`UNAVAILABLE_WORDS`]), for backends whose errors are only text.
pub fn is_unavailable_text(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    UNAVAILABLE_WORDS.iter().any(|w| m.contains(w))
}

impl KvError {
    /// A backend's error text as the kind it means: [`KvErrorKind::Unavailable`]
    /// when [`is_unavailable_text`] says so, else a failure.
    pub fn from_text(message: impl Into<String>) -> Self {
        let message = message.into();
        if is_unavailable_text(&message) {
            KvError::unavailable(message)
        } else {
            KvError::new(message)
        }
    }
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key-value store: {}", self.message)
    }
}

impl std::error::Error for KvError {}

pub trait KvStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, key: &str) -> Result<(), KvError>;
    fn exists(&self, key: &str) -> Result<bool, KvError>;
    /// Atomic add on an 8-byte little-endian counter (created at 0).
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Compare-and-swap, one rule for every store: `seen` is the value the
    /// immediately preceding [`KvStore::read_for_swap`] of `key` returned, and
    /// `new` is written only if the store still holds exactly `seen` (atomically).
    /// `seen == None` is an unconditional upsert (as on Spin, whose CAS on a
    /// missing key is one), so keys are created with [`create_once`] instead.
    /// Returns whether the swap happened; a `seen` that does not match the
    /// preceding read is an error, not a silent upsert.
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError>;
    /// The current value, read so that a following [`KvStore::swap`] is guarded.
    fn read_for_swap(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.get(key)
    }
    /// Several values at once, in the order of `keys` (one round trip where
    /// the store has a batch read, e.g. Redis' `MGET`).
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Writes `value` only if `key` does not exist, atomically; true for the
    /// one caller that created it. Stores with a real create-if-absent (Redis'
    /// `SET NX`) override this; the default claims the key with `increment`
    /// (see [`claim_create`]), since a CAS on a missing key is an upsert on Spin.
    fn create(&self, key: &str, value: &[u8]) -> Result<bool, KvError> {
        claim_create(self, key, value)
    }
    /// Deletes a key made by [`KvStore::create`], with whatever claim made it.
    fn delete_created(&self, key: &str) -> Result<(), KvError> {
        // Value first, counter second: a creator racing in between sees a
        // count above 1, waits, and claims afresh once the counter is gone;
        // the reverse order could let two creators in.
        self.delete(key)?;
        self.delete(&claim_key(key))
    }
}

mod claims;
use claims::claim_key;
#[cfg(test)]
use claims::{CLAIM_COUNT_BITS, claim_create_at, take_over_stuck_claim};
pub use claims::{STUCK_CLAIM_TAKEOVER_S, claim_create};

/// How often a CAS update retries under contention before giving up.
pub const MAX_CAS_ATTEMPTS: usize = 200;

#[derive(Debug, PartialEq)]
pub enum UpdateError<E> {
    Missing,
    Contended,
    Store(KvError),
    /// The closure refused the change.
    Rejected(E),
}

impl<E> From<KvError> for UpdateError<E> {
    fn from(e: KvError) -> Self {
        UpdateError::Store(e)
    }
}

impl<E> UpdateError<E> {
    /// The failure as a store error about `what`, in words and keeping its
    /// kind: a store that could not be reached stays `Unavailable` (a 503 the
    /// caller may retry), never a server error carrying Rust debug text.
    /// Hundreds of lost races are reported the same way: try again shortly.
    pub fn into_kv(self, what: &str) -> KvError {
        match self {
            UpdateError::Store(e) => e,
            UpdateError::Missing => KvError::new(format!("{what} does not exist")),
            UpdateError::Contended => KvError::unavailable(format!(
                "{what} is being changed by too many requests at once; try again shortly"
            )),
            UpdateError::Rejected(_) => KvError::new(format!("the change to {what} was refused")),
        }
    }
}

impl<E> std::fmt::Display for UpdateError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateError::Missing => f.write_str("the value does not exist"),
            UpdateError::Contended => f.write_str("too many concurrent changes; try again shortly"),
            UpdateError::Store(e) => write!(f, "{e}"),
            UpdateError::Rejected(_) => f.write_str("the change was refused"),
        }
    }
}

/// Read-modify-write of an existing key without losing concurrent writes:
/// `f` maps the current value to the new one (or refuses); retried on conflict.
/// Returns the value written.
pub fn update<E>(
    kv: &dyn KvStore,
    key: &str,
    mut f: impl FnMut(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, UpdateError<E>> {
    for attempt in 0..MAX_CAS_ATTEMPTS {
        let Some(current) = kv.read_for_swap(key)? else {
            return Err(UpdateError::Missing);
        };
        let new = f(&current).map_err(UpdateError::Rejected)?;
        if new == current || kv.swap(key, Some(&current), &new)? {
            return Ok(new);
        }
        backoff(attempt);
    }
    // Hundreds of lost races in a row are more likely a store whose CAS never
    // succeeds than real contention: say which, once, off the hot path.
    check_cas(kv)?;
    Err(UpdateError::Contended)
}

/// What an operator reads when the store's compare-and-swap does not hold.
pub const CAS_BROKEN: &str = "the key-value store's compare-and-swap does not hold, so concurrent \
    updates could be lost. Spin's `type = \"redis\"` key-value backend does this (its swap reports \
    failure after writing, and its WATCH is shared by every request). Remove the \
    `[key_value_store.default]` entry from the runtime config: one instance runs on Spin's embedded \
    store, and several instances share a Redis by setting the variables `redis_url` and \
    `redis_host` instead (cloudtuner then swaps atomically on the Redis server).";

/// Checks, on a key of its own, that compare-and-swap holds: a swap of the
/// value just read succeeds, and a swap of a value someone else has replaced
/// since does not. An `Unsupported` error names the cause and the fix.
pub fn check_cas(kv: &dyn KvStore) -> Result<(), KvError> {
    let key = format!(
        "sys:cas-probe:{}",
        crate::kernel::secrets::random_base62(16)
    );
    let result = (|| {
        kv.set(&key, b"a")?;
        let seen = kv.read_for_swap(&key)?;
        if seen.as_deref() != Some(b"a".as_slice()) || !kv.swap(&key, seen.as_deref(), b"b")? {
            return Err(KvError::unsupported(format!(
                "{CAS_BROKEN} (a swap of the value just read failed)"
            )));
        }
        let seen = kv.read_for_swap(&key)?;
        kv.set(&key, b"c")?; // another writer, in between
        if kv.swap(&key, seen.as_deref(), b"d")?
            || kv.get(&key)?.as_deref() != Some(b"c".as_slice())
        {
            return Err(KvError::unsupported(format!(
                "{CAS_BROKEN} (a swap of a value replaced since it was read succeeded)"
            )));
        }
        Ok(())
    })();
    let _ = kv.delete(&key);
    result
}

/// Creates `key` with `initial` unless it exists, race-free on every store
/// ([`KvStore::create`]). Returns true for the creator.
pub fn create_once(kv: &dyn KvStore, key: &str, initial: &[u8]) -> Result<bool, KvError> {
    kv.create(key, initial)
}

/// Deletes a key made by [`create_once`] (or claimed the same way) together
/// with whatever claim made it.
pub fn delete_created(kv: &dyn KvStore, key: &str) -> Result<(), KvError> {
    kv.delete_created(key)
}

/// Takes a named slot (a unique username, say) race-free on Spin: a missing
/// key is claimed with `increment`; a released one (empty value, see
/// [`release_slot`]) is taken over by compare-and-swap. Returns whether this
/// caller got it.
pub fn claim_slot(kv: &dyn KvStore, key: &str, value: &[u8]) -> Result<bool, KvError> {
    for attempt in 0..MAX_CAS_ATTEMPTS {
        match kv.read_for_swap(key)? {
            None => {
                if kv.create(key, value)? {
                    return Ok(true);
                }
                // Created by someone else meanwhile: look again.
                backoff(attempt);
            }
            Some(current) if current.is_empty() => {
                if kv.swap(key, Some(&current), value)? {
                    return Ok(true);
                }
            }
            Some(_) => return Ok(false),
        }
    }
    Err(KvError::unavailable(format!(
        "{key} is being claimed by too many requests at once; try again shortly"
    )))
}

/// Frees a slot taken with [`claim_slot`] (the key stays, empty, so the claim
/// counter and the slot stay in step).
pub fn release_slot(kv: &dyn KvStore, key: &str) -> Result<(), KvError> {
    kv.set(key, b"")
}

/// Read-modify-write of a JSON value that may not exist yet: creates it as
/// `T::default()` race-free ([`create_once`]), then changes it by CAS
/// ([`update`]). The one helper behind every index, list and aggregate.
pub fn edit_json<T: serde::Serialize + serde::de::DeserializeOwned + Default>(
    kv: &dyn KvStore,
    key: &str,
    mut f: impl FnMut(&mut T),
) -> Result<(), KvError> {
    let initial = serde_json::to_vec(&T::default()).map_err(|e| KvError::new(e.to_string()))?;
    edit_bytes(kv, key, &initial, |cur| {
        let mut v: T = serde_json::from_slice(cur).unwrap_or_default();
        f(&mut v);
        serde_json::to_vec(&v).expect("value serialises")
    })
}

/// [`edit_json`] for values read in place: `f` gets the current bytes (so it
/// may parse them borrowing) and returns the new ones.
pub fn edit_bytes(
    kv: &dyn KvStore,
    key: &str,
    initial: &[u8],
    mut f: impl FnMut(&[u8]) -> Vec<u8>,
) -> Result<(), KvError> {
    // Most edits find the value there: create it only when it is missing
    // (one store operation fewer per edit than checking first).
    let edited = match update::<()>(kv, key, |cur| Ok(f(cur))) {
        Err(UpdateError::Missing) => {
            create_once(kv, key, initial)?;
            update::<()>(kv, key, |cur| Ok(f(cur)))
        }
        edited => edited,
    };
    edited.map(|_| ()).map_err(|e| e.into_kv(key))
}

/// A short sleep that grows with the attempt number (WASI supports sleeping).
pub(crate) fn backoff(attempt: usize) {
    if attempt > 2 {
        std::thread::sleep(std::time::Duration::from_micros(
            50 * (attempt as u64).min(100),
        ));
    }
}

/// An in-memory store for tests of domain logic, with Spin's CAS semantics.
#[derive(Default)]
pub struct MemoryKv {
    map: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl MemoryKv {
    pub fn keys(&self) -> Vec<String> {
        self.map.borrow().keys().cloned().collect()
    }
}

impl KvStore for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map.borrow().get(key).cloned())
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.map
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.map.borrow_mut().remove(key);
        Ok(())
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.map.borrow().contains_key(key))
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut map = self.map.borrow_mut();
        let current = match map.get(key) {
            None => 0,
            Some(v) => i64::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| KvError::new(format!("{key} is not a counter")))?,
            ),
        };
        map.insert(key.to_string(), (current + delta).to_le_bytes().to_vec());
        Ok(current + delta)
    }
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        let mut map = self.map.borrow_mut();
        if let Some(seen) = seen
            && map.get(key).map(Vec::as_slice) != Some(seen)
        {
            return Ok(false);
        }
        map.insert(key.to_string(), new.to_vec());
        Ok(true)
    }
}

/// JSON helpers over any store.
/// A counter's value (0 when it was never counted), without creating it.
/// Counters are read by adding nothing: SQLite and Redis store them differently.
pub fn read_counter(kv: &dyn KvStore, key: &str) -> Result<i64, KvError> {
    if kv.exists(key)? {
        kv.increment(key, 0)
    } else {
        Ok(0)
    }
}

pub fn get_json<T: serde::de::DeserializeOwned>(
    kv: &dyn KvStore,
    key: &str,
) -> Result<Option<T>, KvError> {
    match kv.get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KvError::new(format!("{key} holds invalid JSON: {e}"))),
    }
}

pub fn set_json<T: serde::Serialize>(
    kv: &dyn KvStore,
    key: &str,
    value: &T,
) -> Result<(), KvError> {
    let bytes = serde_json::to_vec(value).map_err(|e| KvError::new(e.to_string()))?;
    kv.set(key, &bytes)
}

#[cfg(test)]
#[path = "kv_tests.rs"]
mod tests;
