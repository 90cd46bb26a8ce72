//! The key-value store on SQLite, with Spin's schema and Spin's semantics,
//! including its non-atomic compare-and-swap for keys that do not exist yet
//! (Spin's `swap` after a `current()` that saw nothing is an upsert: 20 racing
//! creators gave 2-4 winners in 3 of 20 rounds): code that relies on CAS to
//! create a key races on Spin, so
//! it must race here too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, params};

/// Statements are prepared once per connection and reused, as Spin's SQLite
/// store does (`prepare_cached`), so a host call costs what it costs there.
const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";

/// A key and its value, as `wasi:keyvalue/batch` answers them.
pub type KeyValue = (String, Option<Vec<u8>>);

#[derive(Debug)]
pub struct KvBackend {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The fault switch ([`KvBackend::set_unavailable`]).
    unavailable: AtomicBool,
}

/// What Spin's SQLite-backed store answers when its file is held by another
/// writer, read-only or on a failing disk: rusqlite's text in
/// `error::other` (key-value-spin maps every SQLite error so).
pub const UNAVAILABLE_MESSAGE: &str = "database is locked";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvFault {
    Other(String),
}

impl From<rusqlite::Error> for KvFault {
    fn from(e: rusqlite::Error) -> Self {
        KvFault::Other(e.to_string())
    }
}

/// What a CAS handle saw when the guest called `current()`.
#[derive(Debug, Clone)]
pub enum CasSnapshot {
    /// `current()` was never called.
    Unread,
    Read(Option<Vec<u8>>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SwapOutcome {
    Swapped,
    /// The value changed since `current()`; the guest gets a fresh handle.
    Conflict,
}

impl KvBackend {
    pub fn open(path: &Path) -> Result<Self, KvFault> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                 store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                 PRIMARY KEY (store, key));",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            unavailable: AtomicBool::new(false),
        })
    }

    /// The fault switch for tests of store outages: while on, every call a
    /// guest makes fails as Spin reports a locked or unwritable database
    /// ([`UNAVAILABLE_MESSAGE`]); the test's own reads (`keys`, `count`) work.
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }

    fn up(&self) -> Result<(), KvFault> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(KvFault::Other(UNAVAILABLE_MESSAGE.into()));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvFault> {
        self.up()?;
        Ok(self
            .conn()
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .query_row(params![store, key], |r| r.get(0))
            .optional()?)
    }

    /// Spin's batch read (`SELECT ... WHERE key IN (...)`): the pairs that
    /// exist, in key order; a key that does not exist is left out, not
    /// answered with `none`, so a guest must match pairs by key.
    pub fn get_many(&self, store: &str, keys: &[String]) -> Result<Vec<KeyValue>, KvFault> {
        self.up()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One statement (one read transaction), as Spin's `key IN rarray(...)`.
        let marks = vec!["?"; keys.len()].join(", ");
        let sql = format!(
            "SELECT key, value FROM spin_key_value WHERE store = ? AND key IN ({marks}) ORDER BY key"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let args = std::iter::once(store).chain(keys.iter().map(String::as_str));
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok((r.get::<_, String>(0)?, Some(r.get::<_, Vec<u8>>(1)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvFault> {
        self.up()?;
        self.conn()
            .prepare_cached(UPSERT)?
            .execute(params![store, key, value])?;
        Ok(())
    }

    pub fn delete(&self, store: &str, key: &str) -> Result<(), KvFault> {
        self.up()?;
        self.conn()
            .prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .execute(params![store, key])?;
        Ok(())
    }

    pub fn exists(&self, store: &str, key: &str) -> Result<bool, KvFault> {
        Ok(self.get(store, key)?.is_some())
    }

    pub fn keys(&self, store: &str) -> Result<Vec<String>, KvFault> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT key FROM spin_key_value WHERE store = ?1")?;
        let keys = stmt
            .query_map(params![store], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(keys)
    }

    pub fn count(&self, store: &str) -> Result<usize, KvFault> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM spin_key_value WHERE store = ?1",
            params![store],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Spin's increment: one transaction, values are 8-byte little-endian i64.
    /// Spin panics on a value of another length; the host reports an error.
    pub fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvFault> {
        self.up()?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<Vec<u8>> = tx
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .query_row(params![store, key], |r| r.get(0))
            .optional()?;
        let current = match current {
            None => 0,
            Some(bytes) => i64::from_le_bytes(bytes.as_slice().try_into().map_err(|_| {
                KvFault::Other(format!(
                    "increment on {key:?}: value is {} bytes, not an 8-byte counter \
                     (Spin panics here)",
                    bytes.len()
                ))
            })?),
        };
        let new = current.wrapping_add(delta);
        tx.prepare_cached(UPSERT)?
            .execute(params![store, key, new.to_le_bytes().to_vec()])?;
        tx.commit()?;
        Ok(new)
    }

    /// Spin's swap (key-value-spin/src/store.rs): after `current()` saw a value,
    /// an UPDATE guarded by that value; otherwise an unconditional upsert.
    pub fn swap(
        &self,
        store: &str,
        key: &str,
        seen: &CasSnapshot,
        value: &[u8],
    ) -> Result<SwapOutcome, KvFault> {
        self.up()?;
        match seen {
            CasSnapshot::Read(Some(old)) => {
                let n = self
                    .conn()
                    .prepare_cached(
                        "UPDATE spin_key_value SET value = ?3
                         WHERE store = ?1 AND key = ?2 AND value = ?4",
                    )?
                    .execute(params![store, key, value, old])?;
                Ok(if n == 1 {
                    SwapOutcome::Swapped
                } else {
                    SwapOutcome::Conflict
                })
            }
            CasSnapshot::Read(None) | CasSnapshot::Unread => {
                self.set(store, key, value)?;
                Ok(SwapOutcome::Swapped)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> (tempfile::TempDir, KvBackend) {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvBackend::open(&dir.path().join("kv.db")).unwrap();
        (dir, kv)
    }

    #[test]
    fn stores_are_separate_and_values_round_trip() {
        let (_d, kv) = backend();
        kv.set("default", "a", b"1").unwrap();
        kv.set("other", "a", b"2").unwrap();
        assert_eq!(kv.get("default", "a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.keys("other").unwrap(), vec!["a".to_string()]);
        kv.delete("default", "a").unwrap();
        assert!(!kv.exists("default", "a").unwrap());
    }

    #[test]
    fn a_batch_read_answers_only_the_keys_that_exist_as_spin_does() {
        let (_d, kv) = backend();
        kv.set("default", "b", b"2").unwrap();
        kv.set("default", "a", b"1").unwrap();
        kv.set("other", "c", b"3").unwrap();
        let keys = ["c", "b", "missing", "a"].map(String::from);
        assert_eq!(
            kv.get_many("default", &keys).unwrap(),
            vec![
                ("a".to_string(), Some(b"1".to_vec())),
                ("b".to_string(), Some(b"2".to_vec()))
            ],
            "no `none` for a missing key, nothing from another store, not in the order asked"
        );
        assert!(kv.get_many("default", &[]).unwrap().is_empty());
    }

    #[test]
    fn increment_is_le_i64_and_refuses_other_values() {
        let (_d, kv) = backend();
        assert_eq!(kv.increment("s", "n", 1).unwrap(), 1);
        assert_eq!(kv.increment("s", "n", 41).unwrap(), 42);
        assert_eq!(
            kv.get("s", "n").unwrap(),
            Some(42i64.to_le_bytes().to_vec())
        );
        kv.set("s", "text", b"abc").unwrap();
        assert!(kv.increment("s", "text", 1).is_err());
    }

    #[test]
    fn the_fault_switch_fails_every_guest_call_as_spin_reports_a_locked_database() {
        let (_d, kv) = backend();
        kv.set("s", "k", b"1").unwrap();
        kv.set_unavailable(true);
        let down = KvFault::Other(UNAVAILABLE_MESSAGE.into());
        assert_eq!(kv.get("s", "k"), Err(down.clone()));
        assert_eq!(kv.set("s", "k", b"2"), Err(down.clone()));
        assert_eq!(kv.increment("s", "n", 1), Err(down.clone()));
        assert_eq!(
            kv.keys("s").unwrap(),
            vec!["k".to_string()],
            "the test still looks"
        );
        kv.set_unavailable(false);
        assert_eq!(kv.get("s", "k").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn swap_is_guarded_after_a_read_value_and_an_upsert_otherwise() {
        let (_d, kv) = backend();
        // Create-if-absent via CAS is an upsert, as on Spin: both "win".
        let seen = CasSnapshot::Read(None);
        assert_eq!(
            kv.swap("s", "k", &seen, b"first").unwrap(),
            SwapOutcome::Swapped
        );
        assert_eq!(
            kv.swap("s", "k", &seen, b"second").unwrap(),
            SwapOutcome::Swapped
        );
        // Updating an existing value is guarded.
        let seen = CasSnapshot::Read(Some(b"second".to_vec()));
        assert_eq!(
            kv.swap("s", "k", &seen, b"third").unwrap(),
            SwapOutcome::Swapped
        );
        assert_eq!(
            kv.swap("s", "k", &seen, b"fourth").unwrap(),
            SwapOutcome::Conflict
        );
        assert_eq!(kv.get("s", "k").unwrap(), Some(b"third".to_vec()));
    }
}
