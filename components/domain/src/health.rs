//! `GET /api/cloud/health`: is the app up, and does its key-value store answer?

use serde_json::{Value, json};

use std::time::Instant;

use crate::kernel::kv::{KvError, KvStore, check_cas};

/// The key the health check writes and reads back (one key, overwritten).
pub const PROBE_KEY: &str = "sys:health";
/// When the installation first answered a health check (written once).
pub const FIRST_SEEN_KEY: &str = "sys:first-seen";

pub struct Health {
    pub healthy: bool,
    pub body: Value,
}

/// `deployed` lists the app's components (from the manifest at build time)
/// so an operator sees what is deployed; `store` says which store serves them
/// (`embedded` or `redis`). `kv` is checked with a write + read, and its
/// compare-and-swap with [`check_cas`] (a store whose CAS does not hold would
/// lose updates: unhealthy, with the cause and the fix).
pub fn check(kv: &dyn KvStore, store: &str, deployed: &[&str], now_unix_ms: u64) -> Health {
    let started = Instant::now();
    let stamp = now_unix_ms.to_string();
    let kv_result = kv
        .set(PROBE_KEY, stamp.as_bytes())
        .and_then(|()| kv.get(PROBE_KEY));
    // Concurrent checks overwrite each other's stamp, so any stamp read back
    // proves the store works; nothing read back, or garbage, does not.
    let is_stamp = |v: &[u8]| std::str::from_utf8(v).is_ok_and(|s| s.parse::<u64>().is_ok());
    let (kv_ok, kv_message) = match kv_result {
        Ok(Some(v)) if is_stamp(&v) => (true, "wrote and read back a probe".to_string()),
        Ok(_) => (
            false,
            "wrote a probe but could not read it back".to_string(),
        ),
        Err(e) => (false, e.to_string()),
    };
    let kv_ms = elapsed_ms(started);
    // Only worth asking once the store answers at all.
    let started = Instant::now();
    let (cas_ok, cas_message) = match kv_ok.then(|| check_cas(kv)) {
        None => (false, NOT_CHECKED.to_string()),
        Some(Ok(())) => (true, "compare-and-swap holds".to_string()),
        Some(Err(e)) => (false, e.message),
    };
    let cas_ms = kv_ok.then(|| elapsed_ms(started));
    let mut health = report(
        [
            Probe::new("key_value_store", kv_ok, kv_message, Some(kv_ms)),
            Probe::new("key_value_atomics", cas_ok, cas_message, cas_ms),
        ],
        store,
        deployed,
        now_unix_ms,
    );
    if kv_ok && let Ok(since) = first_seen(kv, now_unix_ms) {
        health.body["uptime_seconds"] = json!(now_unix_ms.saturating_sub(since) / 1000);
    }
    health
}

/// When this installation first answered a health check (kept once in the
/// store). Spin instances live for one request, so there is no process
/// uptime to report; this is the installation's.
fn first_seen(kv: &dyn KvStore, now_unix_ms: u64) -> Result<u64, KvError> {
    let parse = |v: Option<Vec<u8>>| v.and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok());
    if let Some(t) = parse(kv.get(FIRST_SEEN_KEY)?) {
        return Ok(t);
    }
    kv.create(FIRST_SEEN_KEY, now_unix_ms.to_string().as_bytes())?;
    Ok(parse(kv.get(FIRST_SEEN_KEY)?).unwrap_or(now_unix_ms))
}

fn elapsed_ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e5).round() / 100.0
}

/// The report when the store could not even be opened (a shared Redis that
/// is down): unhealthy, saying why.
pub fn store_unreachable(error: &str, store: &str, deployed: &[&str], now_unix_ms: u64) -> Health {
    report(
        [
            Probe::new("key_value_store", false, error.to_string(), None),
            Probe::new("key_value_atomics", false, NOT_CHECKED.to_string(), None),
        ],
        store,
        deployed,
        now_unix_ms,
    )
}

const NOT_CHECKED: &str = "not checked: the store does not answer";

/// One thing the health check tried: SimpleTuner's component shape.
struct Probe {
    name: &'static str,
    ok: bool,
    message: String,
    latency_ms: Option<f64>,
}

impl Probe {
    fn new(name: &'static str, ok: bool, message: String, latency_ms: Option<f64>) -> Self {
        Probe {
            name,
            ok,
            message,
            latency_ms,
        }
    }

    fn status(&self) -> &'static str {
        if self.ok { "healthy" } else { "unhealthy" }
    }
}

/// `components` is SimpleTuner's list of checks (`{name, status, message,
/// latency_ms}`, what its CLI's `cloud status` prints); `checks` is the same
/// without timings, as the first version answered; `deployed_components`
/// names the app's components.
fn report(probes: [Probe; 2], store: &str, deployed: &[&str], now_unix_ms: u64) -> Health {
    let healthy = probes.iter().all(|p| p.ok);
    let status = if healthy { "healthy" } else { "unhealthy" };
    Health {
        healthy,
        body: json!({
            "status": status,
            "version": crate::VERSION,
            "store": store,
            "components": probes.iter().map(|p| json!({
                "name": p.name,
                "status": p.status(),
                "message": p.message,
                "latency_ms": p.latency_ms,
            })).collect::<Vec<_>>(),
            "checks": probes.iter().map(|p| json!({
                "name": p.name,
                "status": p.status(),
                "message": p.message,
            })).collect::<Vec<_>>(),
            "deployed_components": deployed,
            "timestamp_ms": now_unix_ms,
        }),
    }
}

/// `GET /api/cloud/health/live`: the process answers. No store access, so a
/// liveness probe never restarts an instance because a shared store is down.
pub fn liveness() -> Value {
    json!({"status": "ok"})
}

/// `GET /api/cloud/health/ready`: can this instance do its work? The store
/// answers a read, and a provider token is configured. Not ready (503) says
/// why, so a load balancer's log tells an operator what to fix.
pub fn readiness(store: Result<&dyn KvStore, String>, token_configured: bool) -> Health {
    let store_check = match store.and_then(|kv| kv.get(PROBE_KEY).map_err(|e| e.to_string())) {
        Ok(_) => (true, "answers".to_string()),
        Err(e) => (false, e),
    };
    let token_check = if token_configured {
        (true, "configured".to_string())
    } else {
        (
            false,
            "no Replicate token: set the variable replicate_api_token or save one in the \
             provider settings"
                .to_string(),
        )
    };
    let ready = store_check.0 && token_check.0;
    let reasons: Vec<&str> = [&store_check, &token_check]
        .iter()
        .filter(|c| !c.0)
        .map(|c| c.1.as_str())
        .collect();
    let check = |name: &str, (ok, message): &(bool, String)| json!({"name": name, "status": if *ok { "ready" } else { "not_ready" }, "message": message});
    Health {
        healthy: ready,
        body: json!({
            "status": if ready { "ready" } else { "not_ready" },
            "reason": (!ready).then(|| reasons.join("; ")),
            "checks": [check("key_value_store", &store_check), check("provider_token", &token_check)],
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
    use crate::kernel::kv::{KvError, MemoryKv};

    #[test]
    fn component_ids_reads_top_level_component_tables() {
        let m = "[application]\n[component.health]\nsource = 'x'\n[component.health.build]\n[component.api-docs]\n";
        assert_eq!(component_ids(m), vec!["health", "api-docs"]);
    }

    struct Broken;
    impl KvStore for Broken {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, KvError> {
            Err(KvError::new("store is gone"))
        }
        fn set(&self, _: &str, _: &[u8]) -> Result<(), KvError> {
            Err(KvError::new("store is gone"))
        }
        fn delete(&self, _: &str) -> Result<(), KvError> {
            Ok(())
        }
        fn exists(&self, _: &str) -> Result<bool, KvError> {
            Ok(false)
        }
        fn increment(&self, _: &str, _: i64) -> Result<i64, KvError> {
            Err(KvError::new("store is gone"))
        }
        fn swap(&self, _: &str, _: Option<&[u8]>, _: &[u8]) -> Result<bool, KvError> {
            Err(KvError::new("store is gone"))
        }
    }

    #[test]
    fn ready_needs_a_store_that_answers_and_a_token() {
        let kv = MemoryKv::default();
        assert!(readiness(Ok(&kv), true).healthy);
        let no_token = readiness(Ok(&kv), false);
        assert!(!no_token.healthy);
        assert!(
            no_token.body["reason"]
                .as_str()
                .unwrap()
                .contains("replicate_api_token")
        );
        let down = readiness(Err("the shared Redis cannot be reached".into()), true);
        assert_eq!(down.body["status"], "not_ready");
        assert!(
            down.body["reason"]
                .as_str()
                .unwrap()
                .contains("cannot be reached")
        );
        assert_eq!(
            readiness(Ok(&Broken), true).body["checks"][0]["status"],
            "not_ready"
        );
        assert_eq!(liveness(), json!({"status": "ok"}));
    }

    #[test]
    fn healthy_when_store_round_trips() {
        let kv = MemoryKv::default();
        let h = check(&kv, "embedded", &["health"], 42_000);
        assert!(h.healthy);
        assert_eq!(h.body["status"], "healthy");
        assert_eq!(h.body["deployed_components"][0], "health");
        assert_eq!(h.body["uptime_seconds"], 0);
        // SimpleTuner's shape: every check with its status and latency.
        let first = &h.body["components"][0];
        assert_eq!(
            (first["name"].as_str(), first["status"].as_str()),
            (Some("key_value_store"), Some("healthy"))
        );
        assert!(
            first["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{first}"
        );
        assert_eq!(h.body["components"][1]["name"], "key_value_atomics");
        // Uptime counts from the installation's first check, not the instance's.
        let later = check(&kv, "embedded", &["health"], 102_000);
        assert_eq!(later.body["uptime_seconds"], 60);
    }

    /// A store that misbehaves as told: `stale_probe` answers the health probe
    /// with another check's stamp (a concurrent overwrite); `swap_lies` makes
    /// every swap write and then report failure, as Spin's `type = "redis"`
    /// key-value backend was measured to.
    #[derive(Default)]
    struct Odd {
        kv: MemoryKv,
        stale_probe: bool,
        swap_lies: bool,
    }

    impl KvStore for Odd {
        fn get(&self, k: &str) -> Result<Option<Vec<u8>>, KvError> {
            if self.stale_probe && k == PROBE_KEY {
                return Ok(Some(b"1795880879999".to_vec()));
            }
            self.kv.get(k)
        }
        fn set(&self, k: &str, v: &[u8]) -> Result<(), KvError> {
            self.kv.set(k, v)
        }
        fn delete(&self, k: &str) -> Result<(), KvError> {
            self.kv.delete(k)
        }
        fn exists(&self, k: &str) -> Result<bool, KvError> {
            self.kv.exists(k)
        }
        fn increment(&self, k: &str, d: i64) -> Result<i64, KvError> {
            self.kv.increment(k, d)
        }
        fn swap(&self, k: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
            if self.swap_lies {
                self.kv.set(k, new)?;
                return Ok(false);
            }
            self.kv.swap(k, seen, new)
        }
    }

    fn spin_redis_like() -> Odd {
        Odd {
            swap_lies: true,
            ..Odd::default()
        }
    }

    #[test]
    fn healthy_when_a_concurrent_check_overwrote_the_probe() {
        let racing = Odd {
            stale_probe: true,
            ..Odd::default()
        };
        assert!(check(&racing, "embedded", &[], 42).healthy);
    }

    #[test]
    fn unhealthy_when_store_fails() {
        let h = check(&Broken, "embedded", &["health"], 42);
        assert!(!h.healthy);
        assert_eq!(h.body["checks"][0]["status"], "unhealthy");
        assert!(
            h.body["checks"][0]["message"]
                .as_str()
                .unwrap()
                .contains("gone")
        );
    }

    #[test]
    fn unhealthy_with_the_cause_when_compare_and_swap_does_not_hold() {
        let h = check(&spin_redis_like(), "embedded", &["health"], 42);
        assert!(!h.healthy);
        assert_eq!(h.body["status"], "unhealthy");
        assert_eq!(
            h.body["checks"][0]["status"], "healthy",
            "the store answers"
        );
        assert_eq!(h.body["checks"][1]["name"], "key_value_atomics");
        let message = h.body["checks"][1]["message"].as_str().unwrap();
        assert!(message.contains("type = \"redis\""), "{message}");
        assert!(message.contains("redis_url"), "says the fix: {message}");
        let good = check(&MemoryKv::default(), "embedded", &["health"], 42);
        assert!(good.healthy);
        assert_eq!(good.body["checks"][1]["status"], "healthy");
    }

    #[test]
    fn a_write_on_such_a_store_fails_with_the_cause_instead_of_contended() {
        let kv = spin_redis_like();
        let e = crate::kernel::kv::edit_json::<Vec<u32>>(&kv, "idx", |v| v.push(1)).unwrap_err();
        assert_eq!(e.kind, crate::kernel::kv::KvErrorKind::Unsupported);
        let api = crate::kernel::error::ApiError::from(e);
        assert_eq!((api.status, api.code), (503, "storage_unsupported"));
        assert!(!api.message.contains("Contended"));
    }
}
