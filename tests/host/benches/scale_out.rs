//! Benchmark (not a test): what the shared store costs. Submits/s and
//! `GET /api/cloud/jobs?limit=50` req/s on one instance with the embedded
//! store, against two instances ("replicas") sharing one real redis-server,
//! in the same run on the same machine, against the same fake Replicate.
//!
//! Run: `cargo bench -p cloudtuner-testhost --bench scale_out` (components
//! built first; needs Debian's redis-server). Figures are this machine's, for
//! the ratio between the two rows, not absolutes.

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudtuner_testhost::{App, HostConfig, workspace_root};
use fake_replicate::FakeReplicate;
use redis_server::RedisServer;
use serde_json::json;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
const CONCURRENCY: usize = 16;
const SUBMITS: usize = 300;
const LISTS: usize = 1_000;

fn app(fake: &FakeReplicate, state: &std::path::Path, redis: Option<&RedisServer>) -> App {
    let mut config = HostConfig::new(workspace_root().join("spin.toml"), state)
        .variable("admin_token", ADMIN_TOKEN)
        .variable("replicate_api_base", fake.url())
        .variable("replicate_api_token", fake_replicate::DEFAULT_TOKEN);
    if let Some(r) = redis {
        config = config
            .variable("redis_url", r.url())
            .variable("redis_host", r.host());
    }
    App::load(&config)
        .expect("load app")
        .with_header("authorization", &format!("Bearer {ADMIN_TOKEN}"))
}

/// `n` requests, `CONCURRENCY` at a time, request `i` on replica `i % len`:
/// (requests per second, p50, p99).
async fn drive(
    replicas: &[App],
    n: usize,
    request: impl Fn(usize) -> (&'static str, String, String) + Send + Sync + 'static,
) -> (f64, Duration, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let start = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, request, replicas) = (next.clone(), request.clone(), replicas.to_vec());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return lat;
                    }
                    let (method, path, body) = request(i);
                    let t = Instant::now();
                    let r = replicas[i % replicas.len()]
                        .request(method, &path, &[], body)
                        .await;
                    lat.push(t.elapsed());
                    assert!(r.status < 300, "{method} {path}: {}", r.text());
                }
            })
        })
        .collect();
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await.unwrap());
    }
    let elapsed = start.elapsed();
    lat.sort();
    (
        n as f64 / elapsed.as_secs_f64(),
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
    )
}

async fn measure(name: &str, replicas: &[App]) -> (f64, f64) {
    let (submits, s50, s99) = drive(replicas, SUBMITS, |i| {
        (
            "POST",
            "/api/cloud/jobs/submit?provider=replicate".to_string(),
            json!({"config": {"--max_train_steps": 100, "run": i}}).to_string(),
        )
    })
    .await;
    let (lists, l50, l99) = drive(replicas, LISTS, |_| {
        ("GET", "/api/cloud/jobs?limit=50".to_string(), String::new())
    })
    .await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {name:<28} submit {submits:>7.1}/s (p50 {:>6.1} ms, p99 {:>6.1} ms)   \
         list-50 {lists:>7.1}/s (p50 {:>6.1} ms, p99 {:>6.1} ms)",
        ms(s50),
        ms(s99),
        ms(l50),
        ms(l99),
    );
    (submits, lists)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let fake = FakeReplicate::start().await;
    for p in ["h100", "l40s"] {
        fake.add_model("simpletuner", &format!("advanced-trainer-{p}"));
    }
    println!(
        "{SUBMITS} submits then {LISTS} list-50 requests, {CONCURRENCY} at a time \
         (in-process host, fake Replicate; same machine, same run)"
    );
    let state = tempfile::tempdir().unwrap();
    let one = [app(&fake, state.path(), None)];
    let (es, el) = measure("1 instance, embedded store", &one).await;

    let redis = RedisServer::start();
    let (s1, s2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let two = [
        app(&fake, s1.path(), Some(&redis)),
        app(&fake, s2.path(), Some(&redis)),
    ];
    let (rs, rl) = measure("2 instances, one Redis", &two).await;
    println!(
        "  ratio (Redis / embedded): submit {:.2}x, list-50 {:.2}x",
        rs / es,
        rl / el
    );
}
