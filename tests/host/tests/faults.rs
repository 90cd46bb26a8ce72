//! Issue 26, item 6: a store outage under load, on every backend — a shared
//! Redis killed and restarted (`appendonly yes`), Spin's embedded store and
//! the Fermyon Cloud build's SQLite made unavailable by the host's fault
//! switch (every call fails as Spin reports a locked database).
//!
//! Several submitters run for a few seconds around the outage, half of them
//! with an idempotency key, retrying a 409 or 503 with the same request as a
//! careful client does. What must hold on each backend:
//! - no 500 (nor anything but 200, 201, 409 and 503) while the store is out,
//!   and every 503 is `storage_unavailable` with `Retry-After` and a message
//!   in words (no `{`, `Kind`, `KvError`: no Rust debug text);
//! - every acknowledged (200/201) submit is listed afterwards;
//! - after ONE sync pass, every training at the fake Replicate has a listed
//!   job, and no request trained twice.
//!
//! The Fermyon test needs the Fermyon Cloud build (`target/fermyon-cloud`,
//! see tests/host/tests/platforms.rs's header); it says so and passes
//! without it when `CLOUDTUNER_SKIP_MISSING_BUILDS=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cloudtuner_testhost::{App, Platform, TestResponse, workspace_root};
use common::{RedisServer, SUBMIT, TestApp, add_trainers, post_json};
use fake_replicate::FakeReplicate;
use serde_json::{Value, json};

const SUBMITTERS: usize = 6;
/// Load before the outage, the outage, and load after it.
const BEFORE: Duration = Duration::from_millis(700);
const OUTAGE: Duration = Duration::from_millis(2500);
const AFTER: Duration = Duration::from_millis(1000);

/// One answer a submitter got.
struct Answer {
    status: u16,
    retry_after: bool,
    body: Value,
    text: String,
}

impl Answer {
    fn of(r: &TestResponse) -> Self {
        Answer {
            status: r.status,
            retry_after: r.header("retry-after").is_some(),
            body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            text: r.text(),
        }
    }
}

/// What the submitters saw: every answer, and the keyed requests still not
/// answered with a job when the load stopped.
#[derive(Default)]
struct Load {
    answers: Vec<Answer>,
    unanswered: Vec<Value>,
}

/// Submitter `n`: new requests until `stop`; an even one sends an
/// idempotency key and retries a 409 or 503 with the same request (a few
/// times more after `stop`, then leaves it for after the sync).
async fn submitter(app: App, n: usize, stop: Arc<AtomicBool>) -> Load {
    let mut load = Load::default();
    let mut retry: Option<(Value, usize)> = None;
    let mut seq = 0;
    loop {
        let stopped = stop.load(Ordering::SeqCst);
        let (body, tries) = match retry.take() {
            Some((_, tries)) if stopped && tries >= 20 => break,
            Some(r) => r,
            None if stopped => break,
            None => {
                seq += 1;
                let mut b = json!({"config": {"run": format!("s{n}-{seq}")}});
                if n.is_multiple_of(2) {
                    b["idempotency_key"] = json!(format!("key-{n}-{seq}"));
                }
                (b, 0)
            }
        };
        let r = post_json(&app, SUBMIT, &body).await;
        if body.get("idempotency_key").is_some() && matches!(r.status, 409 | 503) {
            retry = Some((body.clone(), tries + 1));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        load.answers.push(Answer::of(&r));
    }
    if let Some((body, _)) = retry {
        load.unanswered.push(body);
    }
    load
}

/// Runs the submitters around an outage: `down` starts it, `up` ends it
/// (both may block, as a Redis restart does).
async fn under_load(app: &App, down: impl FnOnce(), up: impl FnOnce()) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..SUBMITTERS)
        .map(|n| tokio::spawn(submitter(app.clone(), n, stop.clone())))
        .collect();
    tokio::time::sleep(BEFORE).await;
    // A Redis restart blocks until the server answers: off the runtime's
    // threads, so the submitters keep going meanwhile.
    tokio::task::block_in_place(down);
    tokio::time::sleep(OUTAGE).await;
    tokio::task::block_in_place(up);
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::SeqCst);
    let mut load = Load::default();
    for t in tasks {
        let l = t.await.unwrap();
        load.answers.extend(l.answers);
        load.unanswered.extend(l.unanswered);
    }
    load
}

/// Every listed job: (job id, its prediction id if any).
async fn listed(app: &App) -> BTreeMap<String, Option<String>> {
    let mut jobs = BTreeMap::new();
    loop {
        let path = format!("/api/cloud/jobs?limit=100&offset={}", jobs.len());
        let r = app.request("GET", &path, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json()["jobs"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return jobs;
        }
        for j in page {
            let pid = j["metadata"]["prediction_id"].as_str().map(str::to_string);
            jobs.insert(j["job_id"].as_str().unwrap().to_string(), pid);
        }
    }
}

/// The request a prediction was created for (its `config.run`).
fn run_of(fake: &FakeReplicate, pid: &str) -> String {
    let p = fake.prediction(pid).expect("the fake has it");
    let config: Value = p["input"]["config_json"]
        .as_str()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null);
    config["run"].as_str().unwrap_or_default().to_string()
}

/// The three conditions, checked after the outage.
async fn assert_nothing_lost(app: &App, fake: &FakeReplicate, load: Load, backend: &str) {
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for a in &load.answers {
        *by_status.entry(a.status).or_default() += 1;
        assert!(
            matches!(a.status, 200 | 201 | 409 | 503),
            "{backend}: {} {}",
            a.status,
            a.text
        );
        if a.status == 503 {
            assert_eq!(
                a.body["error"], "storage_unavailable",
                "{backend}: {}",
                a.text
            );
            assert!(
                a.retry_after,
                "{backend}: a 503 without Retry-After: {}",
                a.text
            );
            let message = a.body["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "{backend}: {}", a.text);
            for debug in ["{", "Kind", "KvError", "Store("] {
                assert!(!message.contains(debug), "{backend}: debug text: {message}");
            }
        }
    }
    eprintln!("{backend}: answers by status {by_status:?}");
    assert!(
        by_status.get(&503).copied().unwrap_or(0) > 0,
        "{backend}: the outage was felt"
    );
    assert!(
        by_status.get(&201).copied().unwrap_or(0) > 0,
        "{backend}: submits succeeded around it"
    );

    // ONE sync pass adopts every training whose record the outage cut short.
    let sync = app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(sync.status, 200, "{backend}: {}", sync.text());
    let jobs = listed(app).await;
    let acknowledged: Vec<&str> = load
        .answers
        .iter()
        .filter(|a| matches!(a.status, 200 | 201))
        .filter_map(|a| a.body["job_id"].as_str())
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !jobs.contains_key(**id))
        .collect();
    assert!(
        lost.is_empty(),
        "{backend}: acknowledged, not listed: {lost:?}"
    );
    // A listed job's summary may lag its record (an outage between the two);
    // the job itself, as its page shows it, names its prediction.
    let mut listed_predictions = BTreeSet::new();
    for (id, pid) in &jobs {
        match pid {
            Some(pid) => listed_predictions.insert(pid.clone()),
            None => listed_predictions.insert(
                common::job(app, id).await["metadata"]["prediction_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
        };
    }
    let orphans: Vec<String> = fake
        .prediction_ids()
        .into_iter()
        .filter(|p| !listed_predictions.contains(p.as_str()))
        .collect();
    assert!(
        orphans.is_empty(),
        "{backend}: trainings without a listed job after one sync: {orphans:?} ({})",
        sync.text()
    );
    let mut runs = BTreeMap::new();
    for pid in fake.prediction_ids() {
        *runs.entry(run_of(fake, &pid)).or_insert(0) += 1;
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{backend}: trained twice: {twice:?}");

    // A keyed request the outage left unanswered now answers its one job
    // (or is still settling: 409); it never trains a second time.
    for body in &load.unanswered {
        let r = post_json(app, SUBMIT, body).await;
        assert!(
            matches!(r.status, 200 | 201 | 409),
            "{backend}: {} {}",
            r.status,
            r.text()
        );
    }
    let mut runs = BTreeMap::new();
    for pid in fake.prediction_ids() {
        *runs.entry(run_of(fake, &pid)).or_insert(0) += 1;
    }
    assert!(
        runs.values().all(|n| *n == 1),
        "{backend}: a retried key trained twice"
    );
}

/// The threat: a shared Redis crashing under load answered 500 with Rust
/// debug text, and a submit cut after Replicate created its prediction
/// answered 500 with a job id the list did not show — a client retrying it
/// trained twice, and one training stayed unlisted after a sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_killed_and_restarted_under_load_loses_no_submit_and_leaves_no_orphan() {
    let mut redis = RedisServer::start_persistent();
    let t = TestApp::builder().redis(&redis, "faults:").start().await;
    let redis_cell = std::sync::Mutex::new(&mut redis);
    let load = under_load(
        &t.app,
        || redis_cell.lock().unwrap().kill(),
        || redis_cell.lock().unwrap().restart(),
    )
    .await;
    assert_nothing_lost(&t.app, &t.fake, load, "redis").await;
}

/// The threat: Spin's embedded store (a SQLite file) locked by another
/// writer, read-only or on a failing disk answered 500 with Rust debug text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_outage_under_load_answers_503_and_loses_no_submit() {
    if common::store_under_test() != "embedded" {
        return; // this pass runs every app on another store
    }
    let t = TestApp::builder().start().await;
    let kv = t.app.clone();
    let load = under_load(
        &t.app,
        || kv.kv().set_unavailable(true),
        || kv.kv().set_unavailable(false),
    )
    .await;
    assert_nothing_lost(&t.app, &t.fake, load, "embedded").await;
}

/// The threat: the Fermyon Cloud build's SQLite database failing (locked,
/// read-only, I/O) answered 500 with debug text; its health said `embedded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fermyon_sqlite_outage_under_load_answers_503_and_loses_no_submit() {
    let manifest = workspace_root().join("spin.fermyon-cloud.toml");
    let built =
        workspace_root().join("target/fermyon-cloud/wasm32-wasip2/release/jobs_submit.wasm");
    if !built.exists() {
        assert!(
            std::env::var("CLOUDTUNER_SKIP_MISSING_BUILDS").is_ok(),
            "build the Fermyon Cloud components first (tests/host/tests/platforms.rs's header)"
        );
        return;
    }
    let fake = FakeReplicate::start().await;
    add_trainers(&fake);
    let url = fake.url();
    let (_dir, app) = common::load_for(
        manifest,
        Platform::FermyonCloud,
        None,
        &[
            ("replicate_api_base", url.as_str()),
            ("replicate_status_base", url.as_str()),
            ("replicate_api_token", fake_replicate::DEFAULT_TOKEN),
            ("refresh_after_ms", "0"),
        ],
    );
    let db = app.clone();
    db.sqlite().set_unavailable(true);
    let health = app.request("GET", "/api/cloud/health", &[], "").await;
    assert_eq!(health.status, 503, "{}", health.text());
    assert_eq!(health.json()["store"], "sqlite", "{}", health.text());
    assert!(
        health.text().contains("database is locked"),
        "says what failed: {}",
        health.text()
    );
    db.sqlite().set_unavailable(false);
    let load = under_load(
        &app,
        || db.sqlite().set_unavailable(true),
        || db.sqlite().set_unavailable(false),
    )
    .await;
    assert_nothing_lost(&app, &fake, load, "fermyon-cloud sqlite").await;
}

/// The claim counter an outage leaves behind on Spin's embedded store when
/// it strikes between a creator's `increment` of `claim:<key>` and its write
/// of `<key>`: one claimer, and (when `seen_s` is set) the time a waiter first
/// saw it without its key, in the bits above the count (kernel/kv.rs).
fn stuck_claim(seen_s: u64) -> [u8; 8] {
    ((seen_s << 20) | 1).to_le_bytes()
}

/// The threat: on Spin's embedded store (no create-if-absent), an outage
/// between claiming a new key and writing it left the claim behind, and every
/// later request for that key waited for a write that would never come and
/// answered 503 forever — an idempotency key (a CI run's) could never be used
/// again. Now a claim seen stuck answers 503 for a minute, then the next
/// request takes it over, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_an_outage_blocks_its_key_for_a_minute_not_forever() {
    use sha2::{Digest, Sha256};
    if common::store_under_test() != "embedded" {
        return; // Redis and SQLite create keys atomically: no claims
    }
    let t = TestApp::builder().start().await;
    // A first keyed submit shows whose records idempotency keys are.
    let first = post_json(
        &t.app,
        SUBMIT,
        &json!({"config": {"run": "first"}, "idempotency_key": "ci-1"}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text());
    let kv = t.app.kv();
    let record = |key: &str| {
        let prefix = kv
            .keys("default")
            .unwrap()
            .into_iter()
            .find(|k| k.starts_with("idem:"))
            .expect("the first submit's idempotency record");
        let owner = prefix.rsplit_once(':').unwrap().0.to_string();
        let h = hex::encode(Sha256::digest(key.as_bytes()));
        format!("{owner}:{}", &h[..40])
    };
    let submit = |key: &'static str| {
        let app = t.app.clone();
        async move {
            post_json(
                &app,
                SUBMIT,
                &json!({"config": {"run": key}, "idempotency_key": key}),
            )
            .await
        }
    };

    // Just left by an outage: "try again" in words, with Retry-After — and
    // still so a moment later (a live creator may yet write).
    let fresh = record("ci-2");
    kv.set("default", &format!("claim:{fresh}"), &stuck_claim(0))
        .unwrap();
    for _ in 0..2 {
        let r = submit("ci-2").await;
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error"], "storage_unavailable");
        assert!(r.header("retry-after").is_some());
        assert!(r.json()["message"].as_str().unwrap().contains("try again"));
    }
    assert!(!kv.exists("default", &fresh).unwrap());

    // Seen stuck over a minute ago: the next request takes the key over and
    // submits once; its replay answers the same job.
    let old = record("ci-3");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let long_ago = now_s - 3600;
    kv.set("default", &format!("claim:{old}"), &stuck_claim(long_ago))
        .unwrap();
    let taken = submit("ci-3").await;
    assert_eq!(taken.status, 201, "{}", taken.text());
    let replay = submit("ci-3").await;
    assert_eq!(replay.status, 200, "{}", replay.text());
    assert_eq!(replay.json()["job_id"], taken.json()["job_id"]);
    assert_eq!(
        t.fake.prediction_ids().len(),
        2,
        "ci-1 and ci-3 trained once each"
    );
}
