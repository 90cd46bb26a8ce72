//! What an app stored, whichever store it uses: the host's embedded store, or
//! the Redis its `redis_url` names (keys under its `redis_key_prefix`). Tests
//! that look at or edit stored records go through this, so they hold on both.

use cloudtuner_testhost::App;

pub(crate) enum Stored<'a> {
    Embedded(&'a cloudtuner_testhost::kv::KvBackend),
    Redis {
        conn: std::cell::RefCell<redis::Connection>,
        prefix: String,
    },
}

/// The store `app` keeps its data in.
pub(crate) fn stored(app: &App) -> Stored<'_> {
    match app.variable("redis_url").filter(|u| !u.is_empty()) {
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
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.keys().len()
    }
}
