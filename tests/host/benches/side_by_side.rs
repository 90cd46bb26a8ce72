//! Benchmark (not a test): cloudtuner against SimpleTuner's own cloud routes,
//! side by side in one run, with `wrk` (keep-alive, `-t2 -c16`), rounds
//! alternating between the two servers.
//!
//! - cloudtuner: the served test host (or a real `spin up` when `SPIN_BIN`
//!   names Spin's binary), against the in-process fake Replicate; 1,000 jobs
//!   submitted through its API in SimpleTuner's mix (~60 % completed, 15 %
//!   failed, 10 % cancelled, 10 % running, the rest queued), finished through
//!   signed webhooks, and the app left idle before measuring.
//! - SimpleTuner 4.10.1: `../shared/bench/simpletuner-reference/start.sh`
//!   seeded with the same 1,000-job mix (install it once with `install.sh`).
//!
//! Prints GET one job, list-50 and the floor (`GET /api/cloud/providers`, a
//! trivial authenticated route) for both, the ratios, and list-50 at 100,
//! 1,000 and 10,000 jobs (cloudtuner) to show how it grows.
//!
//! Run: `cargo bench -p cloudtuner-testhost --bench side_by_side` (components
//! built first; needs `wrk`). `ROUNDS=n` (default 2) and `SECS=n` (default
//! 10) per measurement; `ST_REFERENCE=dir` if the reference is elsewhere; `ONLY=growth` for
//! the growth figures alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cloudtuner_testhost::{App, HostConfig, server, workspace_root};
use fake_replicate::{FakeReplicate, Outcome, Script};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

const TOKEN: &str = "bench-admin-token-0123456789abcdef";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request over a fresh connection: (status, JSON body or null).
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(Value::to_string).unwrap_or_default(),
        )))
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The server under test: the in-process served host, or `spin up`.
enum Cloudtuner {
    Host(#[allow(dead_code)] server::Served, SocketAddr),
    Spin(Child, SocketAddr),
}

impl Cloudtuner {
    fn addr(&self) -> SocketAddr {
        match self {
            Cloudtuner::Host(_, a) | Cloudtuner::Spin(_, a) => *a,
        }
    }
}

impl Drop for Cloudtuner {
    fn drop(&mut self) {
        if let Cloudtuner::Spin(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

async fn start_cloudtuner(fake: &FakeReplicate, state: &Path) -> Cloudtuner {
    let addr = free_addr();
    let vars = [
        ("admin_token", TOKEN.to_string()),
        ("replicate_api_base", fake.url()),
        (
            "replicate_api_token",
            fake_replicate::DEFAULT_TOKEN.to_string(),
        ),
        ("public_url", format!("http://{addr}")),
    ];
    if let Some(spin) = std::env::var_os("SPIN_BIN") {
        let mut cmd = Command::new(spin);
        cmd.current_dir(workspace_root())
            .args(["up", "--listen", &addr.to_string(), "--state-dir"])
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &vars {
            cmd.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
        }
        let child = cmd.spawn().expect("start spin up");
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "spin up did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return Cloudtuner::Spin(child, addr);
    }
    let config = vars.iter().fold(
        HostConfig::new(workspace_root().join("spin.toml"), state),
        |c, (k, v)| c.variable(k, v.as_str()),
    );
    let app = App::load(&config).expect("load app");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    Cloudtuner::Host(server::Served::from_listener(app, listener), addr)
}

/// What job `i` of the mix does, SimpleTuner's seed mix.
fn script(i: usize) -> (Script, bool) {
    let done = |outcome| Script::training(5, 10, 2, outcome);
    match i % 100 {
        0..60 => (
            done(Outcome::Succeeded {
                output: json!("https://example.com/lora.safetensors"),
            }),
            false,
        ),
        60..75 => (
            done(Outcome::Failed {
                error: "CUDA out of memory".into(),
            }),
            false,
        ),
        75..85 => (
            Script::training(5, 1000, 3600, Outcome::Failed { error: "x".into() }),
            true,
        ),
        85..95 => (
            Script::training(5, 1000, 3600, Outcome::Failed { error: "x".into() }),
            false,
        ),
        _ => (
            Script::training(100_000, 1, 1, Outcome::Failed { error: "x".into() }),
            false,
        ),
    }
}

/// Submits `n` jobs in the mix, cancels the tenth that should end cancelled,
/// and waits until every job that should finish has.
async fn seed_through_api(fake: &FakeReplicate, addr: SocketAddr, n: usize) -> String {
    let mut cancel = Vec::new();
    let mut first = String::new();
    for i in 0..n {
        let (s, cancelled) = script(i);
        fake.push_script(s);
        let body = json!({"config": {"--model_family": "flux", "--max_train_steps": 10, "--lora_rank": 16},
            "dataloader_config": [], "tracker_run_name": format!("bench-{i}")});
        let (status, r) = call(
            addr,
            "POST",
            "/api/cloud/jobs/submit?provider=replicate",
            Some(&body),
        )
        .await;
        assert_eq!(status, 201, "submit {i}: {r}");
        let id = r["job_id"].as_str().unwrap().to_string();
        if i == 0 {
            first = id.clone(); // completes: the GET job measured
        }
        if cancelled {
            cancel.push(id);
        }
    }
    for id in &cancel {
        let (status, r) = call(addr, "POST", &format!("/api/cloud/jobs/{id}/cancel"), None).await;
        assert_eq!(status, 200, "cancel: {r}");
    }
    let finishing = (0..n).filter(|i| (i % 100) < 85).count() as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut ended = 0;
        for s in ["completed", "failed", "cancelled"] {
            let (_, r) = call(
                addr,
                "GET",
                &format!("/api/cloud/jobs?limit=1&status={s}"),
                None,
            )
            .await;
            ended += r["total"].as_u64().unwrap_or(0);
        }
        if ended >= finishing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs did not finish: {ended}/{finishing}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Idle: let the last webhooks and refreshes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first
}

struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "s" => n * 1000.0,
        _ => n,
    }
}

fn wrk(url: &str, auth: bool) -> Wrk {
    wrk_for(url, auth, env_num("SECS", 10))
}

fn wrk_for(url: &str, auth: bool, secs: u64) -> Wrk {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c16", "-d", &format!("{secs}s"), "--latency"]);
    if auth {
        cmd.args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
            .unwrap_or_default()
    };
    assert!(!text.contains("Non-2xx"), "{url} answered errors:\n{text}");
    Wrk {
        rps: field("Requests/sec:").parse().unwrap_or(f64::NAN),
        p50_ms: ms(&field("50%")),
        p99_ms: ms(&field("99%")),
    }
}

fn show(name: &str, w: &Wrk) -> String {
    format!(
        "{name:<12} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        w.rps, w.p50_ms, w.p99_ms
    )
}

fn reference_dir() -> PathBuf {
    std::env::var_os("ST_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/bench/simpletuner-reference"))
}

struct Reference(u32);

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

/// SimpleTuner's server, seeded with `n` jobs: (its PID, one job id).
fn start_reference(port: u16, state: &Path, n: usize) -> Option<(u32, String)> {
    let dir = reference_dir();
    if !dir.join("start.sh").exists() {
        eprintln!(
            "SimpleTuner reference not found at {}; set ST_REFERENCE",
            dir.display()
        );
        return None;
    }
    let out = Command::new(dir.join("start.sh"))
        .args([
            &port.to_string(),
            state.to_str().unwrap(),
            "--seed",
            &n.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("start.sh");
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let list = Command::new("curl")
        .args([
            "-s",
            &format!("http://127.0.0.1:{port}/api/cloud/jobs?limit=1"),
        ])
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&list.stdout).ok()?;
    Some((pid, v["jobs"][0]["job_id"].as_str()?.to_string()))
}

/// A fake Replicate with the trainer models; its clock stands still unless
/// told otherwise.
async fn trainer_fake() -> FakeReplicate {
    let fake = FakeReplicate::start().await;
    for p in ["h100", "l40s"] {
        fake.add_model("simpletuner", &format!("advanced-trainer-{p}"));
    }
    fake
}

/// Growth: list-50 at `n` jobs (submitted through the API, left queued). A
/// fake of its own whose clock stands still, so no job moves and no webhook
/// arrives while it is measured (a ticking fake with 10,000 predictions
/// would both compete for the CPU and start jobs mid-measurement).
async fn list_at(n: usize) -> Wrk {
    let fake = &trainer_fake().await;
    let state = tempfile::tempdir().unwrap();
    let app = start_cloudtuner(fake, state.path()).await;
    let addr = app.addr();
    for i in 0..n {
        fake.push_script(Script::training(
            100_000,
            1,
            1,
            Outcome::Failed { error: "x".into() },
        ));
        let body =
            json!({"config": {"--max_train_steps": 10}, "tracker_run_name": format!("g{i}")});
        let (status, r) = call(
            addr,
            "POST",
            "/api/cloud/jobs/submit?provider=replicate",
            Some(&body),
        )
        .await;
        assert_eq!(status, 201, "{r}");
    }
    // Seeding 10,000 jobs leaves megabytes of freshly written store behind:
    // let the machine write them out and warm up, as the 1,000-job rounds are.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let url = format!("http://{addr}/api/cloud/jobs?limit=50");
    let _ = wrk_for(&url, true, 2);
    wrk(&url, true)
}

/// The side-by-side rounds at 1,000 jobs: GET job, list-50 and the floor on
/// both servers, alternating.
async fn side_by_side() {
    let mut fake = trainer_fake().await;
    fake.auto_advance(Duration::from_millis(50), 20);
    fake.auto_tick(Duration::from_millis(50));
    let n = 1_000;
    let state = tempfile::tempdir().unwrap();
    let ct = start_cloudtuner(&fake, state.path()).await;
    let addr = ct.addr();
    eprintln!("seeding {n} jobs into cloudtuner through its API ...");
    let started = Instant::now();
    let job = seed_through_api(&fake, addr, n).await;
    eprintln!("  done in {:.0} s", started.elapsed().as_secs_f64());
    // Idle from here: the fake's clock and webhooks stop, so nothing but the
    // measured requests runs in the app's process (a list or a read of a
    // job calls no provider).
    fake.stop_background();

    let st_state = tempfile::tempdir().unwrap();
    let st_port = free_addr().port();
    let reference = start_reference(st_port, st_state.path(), n);
    // start.sh leaves the server running in the background: stopped on drop.
    let _guard = reference.as_ref().map(|(pid, _)| Reference(*pid));

    let server = if std::env::var_os("SPIN_BIN").is_some() {
        "spin up"
    } else {
        "test host"
    };
    println!(
        "cloudtuner ({server}, 1,000 jobs) vs SimpleTuner 4.10.1 (uvicorn, 1,000 jobs); wrk -t2 -c16 -d{}s, keep-alive",
        env_num("SECS", 10)
    );
    let ours = |path: &str| format!("http://{addr}{path}");
    let theirs = |path: &str| wrk(&format!("http://127.0.0.1:{st_port}{path}"), false);
    let rounds = env_num("ROUNDS", 2);
    for round in 1..=rounds {
        println!("round {round}");
        let get = wrk(&ours(&format!("/api/cloud/jobs/{job}")), true);
        println!("  cloudtuner  {}", show("GET job", &get));
        let st_get = reference
            .as_ref()
            .map(|(_, id)| theirs(&format!("/api/cloud/jobs/{id}")));
        if let Some(w) = &st_get {
            println!("  SimpleTuner {}", show("GET job", w));
        }
        let list = wrk(&ours("/api/cloud/jobs?limit=50"), true);
        println!("  cloudtuner  {}", show("list-50", &list));
        let st_list = reference
            .as_ref()
            .map(|_| theirs("/api/cloud/jobs?limit=50"));
        if let Some(w) = &st_list {
            println!("  SimpleTuner {}", show("list-50", w));
        }
        let floor = wrk(&ours("/api/cloud/providers"), true);
        println!("  cloudtuner  {}", show("floor", &floor));
        if let (Some(g), Some(l)) = (&st_get, &st_list) {
            println!(
                "  ratios: GET job {:.1}x SimpleTuner, {:.0} % of the floor; list-50 {:.1}x SimpleTuner; \
                 our p99 vs their p50: GET {:.1} / {:.1} ms, list {:.1} / {:.1} ms",
                get.rps / g.rps,
                100.0 * get.rps / floor.rps,
                list.rps / l.rps,
                get.p99_ms,
                g.p50_ms,
                list.p99_ms,
                l.p50_ms
            );
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `ONLY=growth` skips the side-by-side rounds (and SimpleTuner).
    if std::env::var("ONLY").as_deref() != Ok("growth") {
        side_by_side().await;
    }
    println!("list-50 as the number of jobs grows (cloudtuner, jobs submitted through the API)");
    let mut base = None;
    for n in [100, 1_000, 10_000] {
        let w = list_at(n).await;
        let b = *base.get_or_insert(w.rps);
        println!(
            "  {n:>6} jobs: {}  ({:.2}x the 100-job rate)",
            show("list-50", &w),
            w.rps / b
        );
    }
}
