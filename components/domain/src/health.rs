//! `GET /api/cloud/health`: is the app up, and does its key-value store answer?

use serde_json::{Value, json};

use crate::kv::KvStore;

/// The key the health check writes and reads back (one key, overwritten).
pub const PROBE_KEY: &str = "sys:health";

pub struct Health {
    pub healthy: bool,
    pub body: Value,
}

/// `components` lists the app's components (from the manifest at build time)
/// so an operator sees what is deployed; `kv` is checked with a write + read.
pub fn check(kv: &dyn KvStore, components: &[&str], now_unix_ms: u64) -> Health {
    let stamp = now_unix_ms.to_string();
    let kv_result = kv
        .set(PROBE_KEY, stamp.as_bytes())
        .and_then(|()| kv.get(PROBE_KEY));
    let (kv_ok, kv_message) = match kv_result {
        Ok(Some(v)) if v == stamp.as_bytes() => (true, "read back what it wrote".to_string()),
        Ok(_) => (
            false,
            "wrote a probe but read back something else".to_string(),
        ),
        Err(e) => (false, e.to_string()),
    };
    let status = if kv_ok { "healthy" } else { "unhealthy" };
    Health {
        healthy: kv_ok,
        body: json!({
            "status": status,
            "version": crate::VERSION,
            "components": components,
            "checks": [{
                "name": "key_value_store",
                "status": if kv_ok { "healthy" } else { "unhealthy" },
                "message": kv_message,
            }],
            "timestamp_ms": now_unix_ms,
        }),
    }
}

/// The ids of `[component.<id>]` tables in a Spin manifest, in order. Sub-tables
/// (`[component.<id>.build]`) are skipped. Enough for reporting; the test host
/// parses the manifest properly.
pub fn component_ids(manifest: &str) -> Vec<&str> {
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[component.")?.strip_suffix(']'))
        .filter(|id| !id.contains('.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvError, MemoryKv};

    #[test]
    fn component_ids_reads_top_level_component_tables() {
        let m = "[application]\n[component.health]\nsource = 'x'\n[component.health.build]\n[component.api-docs]\n";
        assert_eq!(component_ids(m), vec!["health", "api-docs"]);
    }

    struct Broken;
    impl KvStore for Broken {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, KvError> {
            Err(KvError("store is gone".into()))
        }
        fn set(&self, _: &str, _: &[u8]) -> Result<(), KvError> {
            Err(KvError("store is gone".into()))
        }
        fn delete(&self, _: &str) -> Result<(), KvError> {
            Ok(())
        }
        fn exists(&self, _: &str) -> Result<bool, KvError> {
            Ok(false)
        }
        fn increment(&self, _: &str, _: i64) -> Result<i64, KvError> {
            Err(KvError("store is gone".into()))
        }
        fn swap(&self, _: &str, _: Option<&[u8]>, _: &[u8]) -> Result<bool, KvError> {
            Err(KvError("store is gone".into()))
        }
    }

    #[test]
    fn healthy_when_store_round_trips() {
        let h = check(&MemoryKv::default(), &["health"], 42);
        assert!(h.healthy);
        assert_eq!(h.body["status"], "healthy");
        assert_eq!(h.body["components"][0], "health");
    }

    #[test]
    fn unhealthy_when_store_fails() {
        let h = check(&Broken, &["health"], 42);
        assert!(!h.healthy);
        assert_eq!(h.body["checks"][0]["status"], "unhealthy");
        assert!(
            h.body["checks"][0]["message"]
                .as_str()
                .unwrap()
                .contains("gone")
        );
    }
}
