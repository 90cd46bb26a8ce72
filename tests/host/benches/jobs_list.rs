//! Benchmark (not a test): `GET /api/cloud/jobs?limit=50` through the host with
//! 10, 1,000 and 10,000 stored jobs, to show that a list page costs the same
//! whatever the total (it reads the list's head and one or two pages). Also
//! a status-filtered page.
//!
//! Run: `cargo bench -p cloudtuner-testhost --bench jobs_list` (components built first).

use std::time::{Duration, Instant};

use cloudtuner_domain::jobs::record::{Job, JobStatus};
use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_domain::kernel::kv::{KvError, KvStore};
use cloudtuner_testhost::kv::{CasSnapshot, KvBackend, SwapOutcome};
use cloudtuner_testhost::{App, HostConfig, workspace_root};
use serde_json::json;

fn job(i: usize) -> Job {
    let status = if i.is_multiple_of(10) {
        JobStatus::Running
    } else {
        JobStatus::Completed
    };
    serde_json::from_value(json!({
        "job_id": format!("00000000-0000-4000-8000-{i:012}"), "owner": "local", "provider": "replicate",
        "status": status, "config_name": "flux-lora", "created_ms": 1_700_000_000_000u64 + i as u64,
        "started_ms": null, "completed_ms": null, "updated_ms": 0, "refreshed_ms": 1_700_000_000_000u64 + i as u64,
        "cost_usd": 1.5, "cost_estimated": false, "hardware_profile": "h100", "hardware_type": "H100",
        "error_message": null, "output_url": null, "prediction_id": null, "provider_status": "succeeded",
        "model": "simpletuner/advanced-trainer-h100", "version": "v", "tracker_run_name": "bench",
        "webhook_url": null, "input_sha256": null, "dataset_file_url": null,
        "config": {"--model_family": "flux", "--max_train_steps": 1000, "--lora_rank": 16},
        "dataloader_config": [{"id": "d", "instance_data_dir": "/datasets/cats"}]
    }))
    .expect("job")
}

/// The host's `default` store as the domain sees it, so seeding writes
/// exactly what the app would (records, list pages, heads).
struct Host<'a>(&'a KvBackend);

fn err(e: impl std::fmt::Debug) -> KvError {
    KvError::new(format!("{e:?}"))
}

impl KvStore for Host<'_> {
    fn get(&self, k: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get("default", k).map_err(err)
    }
    fn set(&self, k: &str, v: &[u8]) -> Result<(), KvError> {
        self.0.set("default", k, v).map_err(err)
    }
    fn delete(&self, k: &str) -> Result<(), KvError> {
        self.0.delete("default", k).map_err(err)
    }
    fn exists(&self, k: &str) -> Result<bool, KvError> {
        self.0.exists("default", k).map_err(err)
    }
    fn increment(&self, k: &str, d: i64) -> Result<i64, KvError> {
        self.0.increment("default", k, d).map_err(err)
    }
    fn swap(&self, k: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        let snapshot = CasSnapshot::Read(seen.map(<[u8]>::to_vec));
        match self.0.swap("default", k, &snapshot, new).map_err(err)? {
            SwapOutcome::Swapped => Ok(true),
            SwapOutcome::Conflict => Ok(false),
        }
    }
}

/// Stores `n` jobs as the app does.
fn seed(app: &App, n: usize) {
    let kv = Host(app.kv());
    let store = JobStore::new(&kv);
    for i in 0..n {
        store.create(&mut job(i)).expect("seed a job");
    }
}

const TOKEN: &str = "bench-admin-token-0123456789abcdef";

async fn measure(app: &App, path: &str, rounds: usize) -> (Duration, Duration, Duration) {
    for _ in 0..5 {
        app.request("GET", path, &[], "").await;
    }
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let r = app.request("GET", path, &[], "").await;
        lat.push(start.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    lat.sort();
    let mean = lat.iter().sum::<Duration>() / rounds as u32;
    (mean, lat[rounds / 2], lat[rounds * 99 / 100])
}

#[tokio::main]
async fn main() {
    let root = workspace_root();
    let mut base = None;
    println!("GET /api/cloud/jobs?limit=50 (in-process host, concurrency 1, 200 requests each)");
    for n in [10, 1_000, 10_000] {
        let state = tempfile::tempdir().unwrap();
        let app = App::load(
            &HostConfig::new(root.join("spin.toml"), state.path()).variable("admin_token", TOKEN),
        )
        .unwrap()
        .with_header("authorization", &format!("Bearer {TOKEN}"));
        seed(&app, n);
        let page_bytes = app
            .kv()
            .get("default", "jobpg:all:0")
            .unwrap()
            .map_or(0, |v| v.len());
        let (mean, p50, p99) = measure(&app, "/api/cloud/jobs?limit=50", 200).await;
        let (fmean, ..) = measure(&app, "/api/cloud/jobs?limit=50&status=running", 200).await;
        let (floor, ..) = measure(&app, "/api/cloud/providers", 200).await;
        let ratio = base.get_or_insert(mean.as_secs_f64()).to_owned();
        println!(
            "  {n:>6} jobs: mean {:>6.2} ms  p50 {:>6.2} ms  p99 {:>6.2} ms  ({:.2}x the 10-job mean; \
             status-filtered mean {:>6.2} ms; a list page {} KiB; floor route mean {:>6.2} ms)",
            mean.as_secs_f64() * 1e3,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            mean.as_secs_f64() / ratio,
            fmean.as_secs_f64() * 1e3,
            page_bytes / 1024,
            floor.as_secs_f64() * 1e3,
        );
    }
}
