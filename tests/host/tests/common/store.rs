//! What an app stored, whichever store it uses: the host's embedded store, the
//! Redis its `redis_url` names (keys under its `redis_key_prefix`), or (the
//! Fermyon Cloud build) the `cloudtuner_kv` table of its SQLite database. Tests
//! that look at or edit stored records go through this, so they hold on all.

use cloudtuner_testhost::App;

pub(crate) enum Stored<'a> {
    Embedded(&'a cloudtuner_testhost::kv::KvBackend),
    Redis {
        conn: std::cell::RefCell<redis::Connection>,
        prefix: String,
    },
    /// One row per key: `value` for plain values, `n` for counters.
    Sqlite(rusqlite::Connection),
}

/// The store `app` keeps its data in.
pub(crate) fn stored(app: &App) -> Stored<'_> {
    match app.variable("redis_url").filter(|u| !u.is_empty()) {
        None if app
            .manifest()
            .component
            .values()
            .any(|c| !c.sqlite_databases.is_empty()) =>
        {
            Stored::Sqlite(
                rusqlite::Connection::open(app.sqlite_path()).expect("open the app's SQLite"),
            )
        }
        None => Stored::Embedded(app.kv()),
        Some(url) => Stored::Redis {
            conn: std::cell::RefCell::new(
                redis::Client::open(url)
                    .and_then(|c| c.get_connection())
                    .expect("connect to the app's redis"),
            ),
            prefix: app.variable("redis_key_prefix").unwrap_or("").to_string(),
        },
    }
}

impl Stored<'_> {
    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            Stored::Embedded(kv) => kv.get("default", key).unwrap(),
            Stored::Redis { conn, prefix } => redis::cmd("GET")
                .arg(format!("{prefix}{key}"))
                .query(&mut *conn.borrow_mut())
                .unwrap(),
            Stored::Sqlite(db) => db
                .query_row(
                    "SELECT value, n FROM cloudtuner_kv WHERE key = ?1",
                    [key],
                    |r| {
                        let value: Option<Vec<u8>> = r.get(0)?;
                        let n: Option<i64> = r.get(1)?;
                        Ok(value.or_else(|| n.map(|n| n.to_string().into_bytes())))
                    },
                )
                .ok()
                .flatten(),
        }
    }

    pub(crate) fn set(&self, key: &str, value: &[u8]) {
        match self {
            Stored::Embedded(kv) => kv.set("default", key, value).unwrap(),
            Stored::Redis { conn, prefix } => redis::cmd("SET")
                .arg(format!("{prefix}{key}"))
                .arg(value)
                .query::<()>(&mut *conn.borrow_mut())
                .unwrap(),
            Stored::Sqlite(db) => {
                db.execute(
                    "INSERT INTO cloudtuner_kv (key, value) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, n = NULL",
                    rusqlite::params![key, value],
                )
                .unwrap();
            }
        }
    }

    /// Every key the app stored (without the Redis prefix).
    pub(crate) fn keys(&self) -> Vec<String> {
        match self {
            Stored::Embedded(kv) => kv.keys("default").unwrap(),
            Stored::Redis { conn, prefix } => {
                let mut conn = conn.borrow_mut();
                let mut keys = Vec::new();
                let mut cursor = 0u64;
                loop {
                    let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{prefix}*"))
                        .arg("COUNT")
                        .arg(1000)
                        .query(&mut *conn)
                        .unwrap();
                    keys.extend(page.into_iter().map(|k| k[prefix.len()..].to_string()));
                    if next == 0 {
                        return keys;
                    }
                    cursor = next;
                }
            }
            Stored::Sqlite(db) => {
                let mut q = db.prepare("SELECT key FROM cloudtuner_kv").unwrap();
                q.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.keys().len()
    }
}
