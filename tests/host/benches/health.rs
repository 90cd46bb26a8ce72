//! Benchmark (not a test): `GET /api/cloud/health` through the served test host,
//! at concurrency 1 and 16 over keep-alive connections, plus component sizes.
//!
//! Run: `cargo bench -p cloudtuner-testhost --bench health` (components built first).
//! Each request instantiates the health component afresh and does one KV write
//! and one read, exactly as in production.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cloudtuner_testhost::{App, HostConfig, server, workspace_root};
use http_body_util::{BodyExt, Empty};

async fn client_loop(addr: std::net::SocketAddr, until: Instant) -> Vec<Duration> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let req = http::Request::get("/api/cloud/health")
            .header("host", addr.to_string())
            .body(Empty::<Bytes>::new())
            .expect("request");
        send.ready().await.expect("connection ready");
        let start = Instant::now();
        let resp = send.send_request(req).await.expect("response");
        if resp.status() != 200 {
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            panic!(
                "health answered an error: {}",
                String::from_utf8_lossy(&body)
            );
        }
        resp.into_body().collect().await.expect("body");
        latencies.push(start.elapsed());
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn run(addr: std::net::SocketAddr, connections: usize, secs: u64) {
    // Warm up (JIT caches, SQLite pages).
    client_loop(addr, Instant::now() + Duration::from_millis(300)).await;
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(client_loop(addr, until)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "health c={connections:<2} keep-alive: {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests)",
        all.len() as f64 / wall,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.len()
    );
}

#[tokio::main]
async fn main() {
    let root = workspace_root();
    let state = std::env::temp_dir().join(format!("cloudtuner-bench-{}", std::process::id()));
    let app = App::load(&HostConfig::new(root.join("spin.toml"), &state)).expect("load app");
    println!("component sizes (release, wasm32-wasip2):");
    for (id, c) in &app.manifest().component {
        let size = std::fs::metadata(root.join(&c.source))
            .map(|m| m.len())
            .unwrap_or(0);
        println!("  {id:<20} {:>8.1} KiB", size as f64 / 1024.0);
    }
    let served = server::spawn(app, "127.0.0.1:0").await.expect("serve");
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("client and server share this machine's cores; {secs} s per run");
    for c in [1, 16] {
        run(served.addr, c, secs).await;
    }
    let _ = std::fs::remove_dir_all(&state);
}
