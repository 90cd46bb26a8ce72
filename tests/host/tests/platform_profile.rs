//! Issue 26, item 2: the test host acts as the platform the app is deployed to
//! (`HostConfig::platform`): it refuses components that import what the
//! platform lacks, refuses cron triggers where nothing runs them, and enforces
//! the platform's request time, body size and outbound request limits.
//!
//! The Fermyon Cloud tests run `spin.fermyon-cloud.toml`, whose components are
//! built into `target/fermyon-cloud` (see tests/host/tests/platforms.rs's
//! header for the command; tests/run-all.sh builds them).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cloudtuner_testhost::{App, HostConfig, Limits, Platform, workspace_root};
use common::{ADMIN_TOKEN, SUBMIT, add_trainers, as_admin, post_json};
use fake_replicate::{FakeReplicate, Fault, FaultKind};
use serde_json::json;

fn spin_toml() -> PathBuf {
    workspace_root().join("spin.toml")
}

fn fermyon_toml() -> PathBuf {
    workspace_root().join("spin.fermyon-cloud.toml")
}

fn cron_toml() -> PathBuf {
    workspace_root().join("spin-cron.toml")
}

/// `manifest` under `platform`, in a fresh state directory.
fn config(manifest: PathBuf, platform: Platform) -> (tempfile::TempDir, HostConfig) {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig::new(manifest, dir.path())
        .platform(platform)
        .variable("admin_token", ADMIN_TOKEN);
    (dir, config)
}

fn load_error(manifest: PathBuf, platform: Platform) -> String {
    let (_dir, config) = config(manifest, platform);
    match App::load(&config) {
        Ok(_) => panic!("loaded under {}", platform.name()),
        Err(e) => e.to_string(),
    }
}

/// The Fermyon Cloud app under the Fermyon Cloud profile with `limits`,
/// against a fake Replicate, acting as the admin.
async fn fermyon_app(limits: Limits) -> (FakeReplicate, tempfile::TempDir, App) {
    let fake = FakeReplicate::start().await;
    add_trainers(&fake);
    let url = fake.url();
    let (dir, config) = config(fermyon_toml(), Platform::FermyonCloud);
    let config = config
        .limits(limits)
        .variable("replicate_api_base", &url)
        .variable("replicate_status_base", &url)
        .variable("replicate_api_token", fake_replicate::DEFAULT_TOKEN);
    let app = App::load(&config).unwrap_or_else(|e| panic!("load app: {e}"));
    assert_eq!(app.platform(), Platform::FermyonCloud);
    (fake, dir, as_admin(&app))
}

/// The number of jobs the list shows.
async fn listed(app: &App) -> u64 {
    let r = app.request("GET", "/api/cloud/jobs", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["total"].as_u64().unwrap()
}

/// Rust debug text a user must never see.
fn assert_no_debug_text(text: &str) {
    for tell in [
        "ErrorCode",
        "Some(",
        "{ kind:",
        "ConnectionRefused",
        "panicked",
    ] {
        assert!(!text.contains(tell), "debug text {tell:?} in: {text}");
    }
}

/// The default build imports `wasi:keyvalue/atomics` and `batch`, which
/// Fermyon Cloud lacks: it must not start there, and the error names the
/// platform, the components and the import, as the platform would refuse it.
#[test]
fn the_default_build_does_not_start_on_fermyon_cloud() {
    let e = load_error(spin_toml(), Platform::FermyonCloud);
    assert!(
        e.contains("Fermyon Cloud fails to prepare the application"),
        "{e}"
    );
    assert!(e.contains("unavailable Wasm import"), "{e}");
    assert!(e.contains("component jobs-submit imports"), "{e}");
    assert!(e.contains("wasi:keyvalue/atomics@"), "{e}");
    assert!(e.contains("wasi:keyvalue/batch@"), "{e}");
}

/// Akamai Functions lacks `wasi:keyvalue/atomics` (it has `batch`).
#[test]
fn the_default_build_does_not_start_on_akamai() {
    let e = load_error(spin_toml(), Platform::Akamai);
    assert!(
        e.contains("Akamai Functions fails to prepare the application"),
        "{e}"
    );
    assert!(e.contains("component jobs-submit imports"), "{e}");
    assert!(e.contains("wasi:keyvalue/atomics@"), "{e}");
    assert!(!e.contains("wasi:keyvalue/batch@"), "{e}");
}

/// The Fermyon Cloud build (Spin's SQLite, no `wasi:keyvalue`) starts on
/// Fermyon Cloud, but not on Akamai Functions, which has no SQLite.
#[test]
fn the_fermyon_cloud_build_starts_on_fermyon_cloud_but_not_on_akamai() {
    let (_dir, cfg) = config(fermyon_toml(), Platform::FermyonCloud);
    if let Err(e) = App::load(&cfg) {
        panic!("{e}");
    }
    let e = load_error(fermyon_toml(), Platform::Akamai);
    assert!(
        e.contains("Akamai Functions fails to prepare the application"),
        "{e}"
    );
    assert!(e.contains("component jobs-submit imports"), "{e}");
    assert!(e.contains("fermyon:spin/sqlite@"), "{e}");
    assert!(e.contains("provides no SQLite"), "{e}");
}

/// The Akamai build (outbound Redis only) starts on Akamai Functions.
#[test]
fn the_akamai_build_starts_on_akamai() {
    let (_dir, cfg) = config(workspace_root().join("spin.akamai.toml"), Platform::Akamai);
    // Its store's address is required; nothing connects at load.
    let cfg = cfg
        .variable("redis_url", "redis://127.0.0.1:1")
        .variable("redis_host", "127.0.0.1:1");
    let app = App::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(app.platform(), Platform::Akamai);
    assert_eq!(app.limits().request_body_bytes, Some(10 * 1024 * 1024));
}

/// Spin runs both builds and the cron manifest, and keeps no limits.
#[test]
fn the_spin_profile_starts_every_manifest_and_has_no_limits() {
    for manifest in [spin_toml(), fermyon_toml(), cron_toml()] {
        let (_dir, cfg) = config(manifest, Platform::Spin);
        assert!(cfg.limits.request_time.is_none());
        assert!(cfg.limits.request_body_bytes.is_none());
        assert!(cfg.limits.outbound_requests_per_hour.is_none());
        let app = App::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(app.platform(), Platform::Spin);
    }
    let (_dir, cfg) = config(spin_toml(), Platform::Spin);
    let plain = HostConfig::new(spin_toml(), _dir.path());
    assert_eq!(plain.platform, cfg.platform, "Spin is the default");
}

/// Neither Fermyon Cloud nor Akamai runs a cron trigger: a manifest that
/// relies on one is refused at load, rather than silently never syncing.
#[test]
fn a_cron_trigger_is_refused_where_no_scheduler_runs() {
    let e = load_error(cron_toml(), Platform::FermyonCloud);
    assert!(e.contains("Fermyon Cloud runs no cron trigger"), "{e}");
    assert!(e.contains("jobs-sync"), "{e}");
    let e = load_error(cron_toml(), Platform::Akamai);
    assert!(e.contains("Akamai Functions runs no cron trigger"), "{e}");
    assert!(e.contains("spin aka cron"), "{e}");
}

/// Firing a cron export by hand fails too where no scheduler would fire it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_cron_on_fermyon_cloud_is_an_error() {
    let (_fake, _dir, app) = fermyon_app(Platform::FermyonCloud.limits()).await;
    let e = app.fire_cron("jobs-sync", 0).await.unwrap_err().to_string();
    assert!(e.contains("Fermyon Cloud runs no cron trigger"), "{e}");
}

/// A request that runs past the platform's time limit (here a provider that
/// answers after 6 s, the limit shrunk to 2 s) is cut: the caller gets a 500
/// saying so at the limit, and the guest is aborted (its provider call is
/// dropped, so no prediction is made and none recorded on the job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_time_limit_is_cut_and_its_guest_aborted() {
    let limits = Limits {
        request_time: Some(Duration::from_secs(2)),
        ..Platform::FermyonCloud.limits()
    };
    let (fake, _dir, app) = fermyon_app(limits).await;
    fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::Latency(Duration::from_secs(6)),
        1,
    ));
    let started = Instant::now();
    let r = post_json(&app, SUBMIT, &json!({"config": {"--max_train_steps": 10}})).await;
    let took = started.elapsed();
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains("Fermyon Cloud's time limit"),
        "{}",
        r.text()
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "cut at the limit, not when the guest finished: {took:?}"
    );
    // Past the provider's answer: a guest still running would have created the
    // prediction and recorded its id on the job (which the app writes, pending,
    // before it calls the provider).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        fake.prediction_ids().is_empty(),
        "the guest's call was dropped"
    );
    let r = app.request("GET", "/api/cloud/jobs", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    for job in r.json()["jobs"].as_array().unwrap() {
        assert!(job["metadata"]["prediction_id"].is_null(), "{job}");
    }
    // The next request runs normally.
    let r = post_json(&app, SUBMIT, &json!({"config": {"--max_train_steps": 10}})).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

/// A submit padded with spaces past the body limit: valid JSON the app would
/// accept, so only the platform's limit stops it.
fn padded_submit(size: usize) -> Vec<u8> {
    let mut body = json!({"config": {"--max_train_steps": 10}})
        .to_string()
        .into_bytes();
    body.resize(size, b' ');
    body
}

/// A body over the platform's limit with `Content-Length` is answered 413
/// before the guest runs: no provider call, no job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_413_before_the_guest_runs() {
    let limits = Limits {
        request_body_bytes: Some(4096),
        ..Platform::FermyonCloud.limits()
    };
    let (fake, _dir, app) = fermyon_app(limits).await;
    let ok = padded_submit(4096);
    let r = app
        .request(
            "POST",
            SUBMIT,
            &[
                ("content-type", "application/json"),
                ("content-length", &ok.len().to_string()),
            ],
            ok,
        )
        .await;
    assert_eq!(r.status, 201, "at the limit is fine: {}", r.text());
    let big = padded_submit(4097);
    let r = app
        .request(
            "POST",
            SUBMIT,
            &[
                ("content-type", "application/json"),
                ("content-length", &big.len().to_string()),
            ],
            big,
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("at most 4096 bytes"), "{}", r.text());
    assert_eq!(fake.prediction_ids().len(), 1, "only the first submit");
    assert_eq!(listed(&app).await, 1);
}

/// A body over the limit without `Content-Length` (streamed) is cut as it
/// passes the limit, and the request answered 413, whatever the guest made
/// of the cut body: no provider call, no job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_over_the_limit_is_cut_and_answered_413() {
    let limits = Limits {
        request_body_bytes: Some(4096),
        ..Platform::FermyonCloud.limits()
    };
    let (fake, _dir, app) = fermyon_app(limits).await;
    let r = app
        .request(
            "POST",
            SUBMIT,
            &[("content-type", "application/json")],
            padded_submit(100_000),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(fake.prediction_ids().is_empty());
    assert_eq!(listed(&app).await, 0);
}

/// Past the platform's outbound requests per hour (shrunk to 3), the app's
/// next provider call is refused by the platform; the app answers a JSON
/// error a user can read (no 500, no debug text) and sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_past_the_hourly_limit_are_refused_and_answered_cleanly() {
    let limits = Limits {
        outbound_requests_per_hour: Some(3),
        ..Platform::FermyonCloud.limits()
    };
    let (fake, _dir, app) = fermyon_app(limits).await;
    let mut answers = Vec::new();
    for i in 0..4 {
        let r = post_json(
            &app,
            SUBMIT,
            &json!({"config": {"--max_train_steps": 10, "run": i}}),
        )
        .await;
        answers.push((r.status, r.text()));
    }
    let sent = fake.requests().len();
    assert_eq!(sent, 3, "the fake saw exactly the budget: {answers:?}");
    assert_eq!(app.outbound_requests_this_hour(), 3);
    let (status, text) = answers.last().unwrap();
    assert_ne!(
        *status, 201,
        "the 4th submit cannot reach the provider: {text}"
    );
    assert_ne!(*status, 500, "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert!(body["error"].is_string(), "{text}");
    assert!(body["message"].is_string(), "{text}");
    assert_no_debug_text(text);
}
