//! Spin's SQLite (`fermyon:spin/sqlite@2.0.0`, database `default`) as the
//! domain's [`KvStore`]: the store for hosts without `wasi:keyvalue` atomics
//! (Fermyon Cloud's NoOps SQL).
//!
//! Every guarantee is one SQL statement, since a transaction cannot span
//! calls there: compare-and-swap is a guarded `UPDATE ... RETURNING`,
//! create-if-absent is `INSERT ... ON CONFLICT DO NOTHING RETURNING`, a counter
//! is an `INSERT ... ON CONFLICT DO UPDATE SET n = n + ...` on an integer
//! column. The table is created on first use.

use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::kv::{KvError, KvStore};
use spin_sdk::sqlite::{Connection, Error, QueryResult, Value};

/// One row per key: `value` for plain values, `n` for counters (NULL value).
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS cloudtuner_kv (\
    key TEXT PRIMARY KEY NOT NULL, value BLOB, n INTEGER)";

/// SQLite's smallest limit on bound parameters (999 before 3.32).
const MAX_KEYS_PER_SELECT: usize = 500;

pub struct SqliteKv {
    conn: Connection,
}

impl SqliteKv {
    pub fn open_default() -> Result<Self, ApiError> {
        Connection::open_default()
            .map(|conn| SqliteKv { conn })
            .map_err(|e| ApiError::from(open_failed(&e)))
    }

    /// Runs one statement; on a fresh database creates the table and retries
    /// once (cheaper than a `CREATE TABLE` on every request).
    fn run(&self, sql: &str, params: &[Value]) -> Result<QueryResult, KvError> {
        match self.conn.execute(sql, params) {
            Err(Error::Io(m)) if m.contains("no such table") => {
                self.conn.execute(CREATE_TABLE, &[]).map_err(fail)?;
                self.conn.execute(sql, params).map_err(fail)
            }
            other => other.map_err(fail),
        }
    }

    fn one_row(&self, sql: &str, params: &[Value]) -> Result<bool, KvError> {
        Ok(!self.run(sql, params)?.rows.is_empty())
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn blob(b: &[u8]) -> Value {
    Value::Blob(b.to_vec())
}

/// A row's `(value, n)` as the bytes the embedded store would hold: the
/// value, or a counter as 8-byte little-endian (how the domain's other
/// stores keep them).
fn stored(value: Option<&Value>, n: Option<&Value>) -> Result<Option<Vec<u8>>, KvError> {
    match (value, n) {
        (Some(Value::Blob(b)), _) => Ok(Some(b.clone())),
        (Some(Value::Text(t)), _) => Ok(Some(t.clone().into_bytes())),
        (_, Some(Value::Integer(n))) => Ok(Some(n.to_le_bytes().to_vec())),
        (_, Some(Value::Null) | None) => Ok(None),
        _ => Err(KvError::new(
            "the SQLite table holds a value of an unexpected type",
        )),
    }
}

impl KvStore for SqliteKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let result = self.run(
            "SELECT value, n FROM cloudtuner_kv WHERE key = ?1",
            &[text(key)],
        )?;
        match result.rows.first() {
            None => Ok(None),
            Some(row) => stored(row.values.first(), row.values.get(1)),
        }
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.run(
            "INSERT INTO cloudtuner_kv (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, n = NULL",
            &[text(key), blob(value)],
        )
        .map(drop)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.run("DELETE FROM cloudtuner_kv WHERE key = ?1", &[text(key)])
            .map(drop)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.one_row("SELECT 1 FROM cloudtuner_kv WHERE key = ?1", &[text(key)])
    }
    /// One statement: the counter is created at `delta` or added to; a key
    /// holding a plain value is left alone and refused (no row returned).
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let result = self.run(
            "INSERT INTO cloudtuner_kv (key, n) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET n = n + excluded.n \
             WHERE cloudtuner_kv.value IS NULL RETURNING n",
            &[text(key), Value::Integer(delta)],
        )?;
        match result.rows.first().and_then(|r| r.values.first()) {
            Some(Value::Integer(n)) => Ok(*n),
            None => Err(KvError::new(format!("{key} is not a counter"))),
            // SQLite turns an overflowing integer into a real.
            Some(_) => Err(KvError::new(format!("the counter {key} overflowed"))),
        }
    }
    /// The guard is the statement itself: the row changes only if it still
    /// holds `seen`.
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        let Some(seen) = seen else {
            // The trait's rule for every store: no expected value is an upsert.
            return self.set(key, new).map(|()| true);
        };
        self.one_row(
            "UPDATE cloudtuner_kv SET value = ?3 WHERE key = ?1 AND value = ?2 RETURNING 1",
            &[text(key), blob(seen), blob(new)],
        )
    }
    /// One `SELECT ... IN` per 500 keys; rows come back in no set order, so
    /// values are matched back to the keys asked for.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let mut found = std::collections::HashMap::new();
        for chunk in keys.chunks(MAX_KEYS_PER_SELECT) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!("SELECT key, value, n FROM cloudtuner_kv WHERE key IN ({marks})");
            let params: Vec<Value> = chunk.iter().map(|k| text(k)).collect();
            for row in self.run(&sql, &params)?.rows {
                if let (Some(Value::Text(k)), Some(v)) = (
                    row.values.first(),
                    stored(row.values.get(1), row.values.get(2))?,
                ) {
                    found.insert(k.clone(), v);
                }
            }
        }
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }
    /// `INSERT ... ON CONFLICT DO NOTHING`: the database creates the key for
    /// exactly one caller, so no claim key is needed.
    fn create(&self, key: &str, value: &[u8]) -> Result<bool, KvError> {
        self.one_row(
            "INSERT INTO cloudtuner_kv (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO NOTHING RETURNING 1",
            &[text(key), blob(value)],
        )
    }
    fn delete_created(&self, key: &str) -> Result<(), KvError> {
        self.delete(key)
    }
}

/// A SQLite error as an operator reads it.
fn words(e: &Error) -> String {
    match e {
        Error::NoSuchDatabase => "the SQLite database `default` does not exist".into(),
        Error::AccessDenied => "this component may not use the SQLite database `default` \
             (sqlite_databases in the manifest)"
            .into(),
        Error::InvalidConnection => "the SQLite connection is not valid".into(),
        Error::DatabaseFull => "the SQLite database is full".into(),
        Error::Io(m) => m.clone(),
    }
}

/// A busy, locked, read-only or unreadable database is an outage worth
/// retrying (503, [`KvError::from_text`]); anything else is the server's error.
fn fail(e: Error) -> KvError {
    match e {
        Error::Io(m) => KvError::from_text(format!("the SQLite database: {m}")),
        e => KvError::new(format!("the SQLite database: {}", words(&e))),
    }
}

/// Why the database could not be opened, as the health report and every
/// route say it: an I/O failure is an outage, a missing grant a setup error.
pub(super) fn open_failed(e: &Error) -> KvError {
    let message = format!("cannot open the SQLite database: {}", words(e));
    match e {
        Error::Io(_) | Error::InvalidConnection => KvError::unavailable(message),
        _ => KvError::new(message),
    }
}
