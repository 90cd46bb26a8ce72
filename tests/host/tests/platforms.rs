//! Issue 26: each platform's build imports only what that platform provides,
//! and the Fermyon Cloud build (Spin's SQLite instead of `wasi:keyvalue`)
//! keeps the app's guarantees.
//!
//! `spin.fermyon-cloud.toml` is `spin.toml` with the store lines, sources and
//! build commands changed; [`fermyon_cloud_manifest`] makes it, and
//! `CLOUDTUNER_WRITE_MANIFESTS=1 cargo test -p cloudtuner-testhost --test platforms manifest`
//! rewrites it after spin.toml changes.
//!
//! Build the Fermyon Cloud components first (their own target dir, so the
//! default build stays as it is):
//! `cargo build --target wasm32-wasip2 --release --target-dir target/fermyon-cloud --no-default-features --features fermyon-cloud -p health -p ...`
//! (every crate spin.toml builds; `cloudtuner-host --build -f spin.fermyon-cloud.toml` runs exactly that).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cloudtuner_testhost::app::{compile, interface_names};
use cloudtuner_testhost::manifest::Manifest;
use cloudtuner_testhost::{App, Platform, TestResponse, workspace_root};
use common::{RedisServer, SUBMIT, add_trainers, post_json};
use fake_replicate::{FakeReplicate, Fault, FaultKind};
use serde_json::json;

/// How a platform's manifest differs from `spin.toml`.
struct Variant {
    platform: &'static str,
    /// The manifest file, beside spin.toml.
    file: &'static str,
    /// Where its components are built (`build.build-dir` in .cargo/config.toml
    /// keeps the dependencies shared with the default build).
    target_dir: &'static str,
    feature: &'static str,
    /// What replaces `key_value_stores = ["default"]` (None: the line goes).
    store_line: Option<&'static str>,
    /// Variable declarations replaced whole: (name, new declaration).
    variables: &'static [(&'static str, &'static str)],
    about: &'static str,
}

const FERMYON: Variant = Variant {
    platform: "fermyon-cloud",
    file: "spin.fermyon-cloud.toml",
    target_dir: "target/fermyon-cloud",
    feature: "fermyon-cloud",
    store_line: Some(r#"sqlite_databases = ["default"]"#),
    variables: &[(
        "outbound_requests_per_hour",
        r#"{ default = "450" }  # Fermyon Cloud allows 500 per app per hour"#,
    )],
    about: "# The app for Fermyon Cloud: no wasi:keyvalue atomics or batch there, so every\n\
        # component keeps its data in Spin's SQLite database `default`\n\
        # (`spin cloud deploy -f spin.fermyon-cloud.toml` links a NoOps SQL database as `default`),\n\
        # and background work stays under Fermyon's 500 outbound requests per hour.\n",
};

const AKAMAI: Variant = Variant {
    platform: "akamai",
    file: "spin.akamai.toml",
    target_dir: "target/akamai",
    feature: "akamai",
    store_line: None,
    variables: &[
        ("redis_url", r#"{ required = true, secret = true }"#),
        ("redis_host", r#"{ required = true }"#),
    ],
    about: "# The app for Akamai Functions: no wasi:keyvalue atomics and no SQLite there, so\n\
        # every component keeps its data in the Redis `redis_url` names, through outbound\n\
        # Redis (`spin aka deploy -f spin.akamai.toml --variable redis_url=... --variable redis_host=...`).\n",
};

fn manifest_path(v: &Variant) -> PathBuf {
    workspace_root().join(v.file)
}

fn fermyon_toml() -> PathBuf {
    manifest_path(&FERMYON)
}

/// `spin.toml` as the platform needs it: its store, its variables, components
/// from its own build.
fn platform_manifest(spin_toml: &str, v: &Variant) -> String {
    let flags = format!(
        "--target-dir {} --no-default-features --features {}",
        v.target_dir, v.feature
    );
    let header = format!(
        "# GENERATED from spin.toml by tests/host/tests/platforms.rs (do not edit; run\n\
         #   CLOUDTUNER_WRITE_MANIFESTS=1 cargo test -p cloudtuner-testhost --test platforms manifest\n\
         # after changing spin.toml).\n{}\
         # Components come from their own build (feature {}): spin build -f {}\n",
        v.about, v.feature, v.file
    );
    let mut replaced = BTreeSet::new();
    let body: Vec<String> = spin_toml
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .filter_map(|line| {
            if line.trim() == r#"key_value_stores = ["default"]"# {
                return v.store_line.map(str::to_string);
            }
            if let Some((name, decl)) = v
                .variables
                .iter()
                .find(|(name, _)| line.starts_with(&format!("{name} = {{")))
            {
                replaced.insert(*name);
                return Some(format!("{name} = {decl}"));
            }
            Some(if line.starts_with("source = \"target/wasm32-wasip2/") {
                line.replacen("target/", &format!("{}/", v.target_dir), 1)
            } else if line.starts_with("command = \"cargo build ") && line.contains(" -p ") {
                line.replacen(" -p ", &format!(" {flags} -p "), 1)
            } else {
                line.to_string()
            })
        })
        .collect();
    for (name, _) in v.variables {
        assert!(
            replaced.contains(name),
            "spin.toml declares no variable {name}, which {} sets",
            v.file
        );
    }
    format!("{header}{}\n", body.join("\n"))
}

/// The manifest is spin.toml's variant (rewritten with CLOUDTUNER_WRITE_MANIFESTS=1).
fn check_manifest(v: &Variant) -> (Manifest, Manifest) {
    let spin = std::fs::read_to_string(workspace_root().join("spin.toml")).unwrap();
    let want = platform_manifest(&spin, v);
    if std::env::var("CLOUDTUNER_WRITE_MANIFESTS").is_ok_and(|x| x == "1") {
        std::fs::write(manifest_path(v), &want).unwrap();
    }
    let have = std::fs::read_to_string(manifest_path(v)).unwrap_or_default();
    assert!(
        have == want,
        "{} is not spin.toml's {} variant: run \
         CLOUDTUNER_WRITE_MANIFESTS=1 cargo test -p cloudtuner-testhost --test platforms manifest",
        v.file,
        v.platform
    );
    let m = Manifest::parse(&want).unwrap();
    let base = Manifest::parse(&spin).unwrap();
    assert!(
        m.trigger.cron.is_empty(),
        "{} runs no cron trigger",
        v.platform
    );
    assert_eq!(m.trigger.http.len(), base.trigger.http.len());
    assert_eq!(
        m.component.keys().collect::<Vec<_>>(),
        base.component.keys().collect::<Vec<_>>()
    );
    for (id, c) in &m.component {
        assert!(
            c.key_value_stores.is_empty(),
            "{id} still opens a key-value store"
        );
        assert!(c.source.starts_with(v.target_dir), "{id}: {}", c.source);
    }
    (m, base)
}

#[test]
fn the_fermyon_cloud_manifest_is_spin_toml_on_sqlite() {
    let (m, base) = check_manifest(&FERMYON);
    for (id, c) in &m.component {
        assert_eq!(
            c.sqlite_databases.is_empty(),
            base.component[id].key_value_stores.is_empty(),
            "{id}: SQLite exactly where spin.toml has the store"
        );
    }
}

#[test]
fn the_akamai_manifest_is_spin_toml_on_redis_alone() {
    let (m, _) = check_manifest(&AKAMAI);
    for (id, c) in &m.component {
        assert!(c.sqlite_databases.is_empty(), "{id}: Akamai has no SQLite");
    }
    for name in ["redis_url", "redis_host"] {
        assert!(m.variables[name].required, "{name} must be set on Akamai");
    }
}

/// What a platform refuses to provide, as import-name prefixes (a host
/// refuses a component that imports an interface it lacks).
fn refused(platform: &str) -> &'static [&'static str] {
    match platform {
        // Spin 3.x / 4.x and SpinKube provide every interface the app uses.
        "spin" => &[],
        // Fermyon Cloud: `wasi:keyvalue` store only (no atomics, no batch); the
        // app's Fermyon build imports no `wasi:keyvalue` at all.
        "fermyon-cloud" => &["wasi:keyvalue/"],
        // Akamai Functions: store and batch, no atomics; no SQLite.
        "akamai" => &[
            "wasi:keyvalue/atomics",
            "fermyon:spin/sqlite",
            "spin:sqlite/",
        ],
        _ => unreachable!("unknown platform {platform}"),
    }
}

/// Everything Spin 3.x provides to a WASIp2 component, by prefix.
const SPIN_PROVIDES: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:random/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/",
    "wasi:keyvalue/",
    "fermyon:spin/",
    // jobs-sync's types-only import (no functions); measured to load under Spin 4.1.
    "fermyon:spin-cron/cron-types@2.0.0",
];

/// Each built component of `manifest`: (id, its imports).
fn imports_of(manifest: &Path) -> Vec<(String, Vec<String>)> {
    let m = Manifest::load(manifest).unwrap();
    let base = manifest.parent().unwrap();
    m.component
        .iter()
        .map(|(id, c)| {
            let component = compile(&base.join(&c.source)).unwrap_or_else(|e| {
                panic!(
                    "{id} of {}: {e} (see this file's header)",
                    manifest.display()
                )
            });
            (id.clone(), interface_names(&component).0)
        })
        .collect()
}

fn violations(platform: &str, imports: &[(String, Vec<String>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (id, names) in imports {
        for name in names {
            if !SPIN_PROVIDES.iter().any(|p| name.starts_with(p)) {
                out.push(format!("{id} imports {name}, which Spin does not provide"));
            }
            if let Some(p) = refused(platform).iter().find(|p| name.starts_with(*p)) {
                out.push(format!(
                    "{id} imports {name}, which {platform} does not provide ({p}*)"
                ));
            }
        }
    }
    out
}

#[test]
fn every_component_imports_only_what_its_platform_provides() {
    let mut problems = Vec::new();
    for (platform, manifest) in [
        ("spin", workspace_root().join("spin.toml")),
        ("fermyon-cloud", fermyon_toml()),
        ("akamai", manifest_path(&AKAMAI)),
    ] {
        problems.extend(violations(platform, &imports_of(&manifest)));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_import_check_names_the_component_and_the_import() {
    let imports = vec![(
        "jobs-submit".to_string(),
        vec![
            "wasi:keyvalue/atomics@0.2.0-draft2".to_string(),
            "wasi:io/streams@0.2.6".to_string(),
        ],
    )];
    assert!(violations("spin", &imports).is_empty());
    assert_eq!(
        violations("akamai", &imports),
        vec![
            "jobs-submit imports wasi:keyvalue/atomics@0.2.0-draft2, which akamai does not \
             provide (wasi:keyvalue/atomics*)"
        ]
    );
    assert_eq!(violations("fermyon-cloud", &imports).len(), 1);
}

/// A platform's app against a fake Replicate, loaded under that platform's
/// profile: the Fermyon Cloud build's data in the state directory's SQLite
/// database, the Akamai build's in `redis` (under a key prefix of its own).
async fn platform_app(
    v: &Variant,
    redis: Option<&RedisServer>,
) -> (FakeReplicate, tempfile::TempDir, App) {
    platform_app_within(v, redis, None).await
}

/// A platform's app for racing its store: hundreds of submits at once on this
/// 2-core machine queue for longer than the platform's 30 s per request (a
/// platform spreads them over instances), and make more provider calls than
/// Fermyon's 500 an hour. The races test the store; the limits are tested in
/// tests/host/tests/platform_profile.rs and sync_trigger.rs.
async fn racing_app(
    v: &Variant,
    redis: Option<&RedisServer>,
) -> (FakeReplicate, tempfile::TempDir, App) {
    platform_app_within(v, redis, Some(cloudtuner_testhost::Limits::default())).await
}

async fn platform_app_within(
    v: &Variant,
    redis: Option<&RedisServer>,
    limits: Option<cloudtuner_testhost::Limits>,
) -> (FakeReplicate, tempfile::TempDir, App) {
    let fake = FakeReplicate::start().await;
    add_trainers(&fake);
    let url = fake.url();
    let mut vars = vec![
        ("replicate_api_base", url.clone()),
        ("replicate_status_base", url.clone()),
        (
            "replicate_api_token",
            fake_replicate::DEFAULT_TOKEN.to_string(),
        ),
        ("refresh_after_ms", "0".to_string()),
    ];
    if limits.is_some() {
        vars.push(("outbound_requests_per_hour", String::new()));
    }
    if let Some(redis) = redis {
        vars.push(("redis_url", redis.url()));
        vars.push(("redis_host", redis.host()));
        vars.push(("redis_key_prefix", format!("{}:", v.platform)));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (dir, app) = common::load_for(
        manifest_path(v),
        Platform::parse(v.platform).unwrap(),
        limits,
        &vars,
    );
    (fake, dir, app)
}

async fn fermyon_app() -> (FakeReplicate, tempfile::TempDir, App) {
    platform_app(&FERMYON, None).await
}

fn statuses(rs: &[TestResponse]) -> BTreeMap<u16, usize> {
    rs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.status).or_insert(0) += 1;
        m
    })
}

async fn race(app: &App, n: usize, body: impl Fn(usize) -> serde_json::Value) -> Vec<TestResponse> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = app.clone();
            let body = body(i);
            tokio::spawn(async move { post_json(&app, SUBMIT, &body).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Every job id the list shows, paging through it, and its `total`.
async fn all_listed(app: &App) -> (Vec<String>, u64) {
    let mut ids = Vec::new();
    let mut total = 0;
    loop {
        let path = format!("/api/cloud/jobs?limit=100&offset={}", ids.len());
        let r = app.request("GET", &path, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        total = body["total"].as_u64().unwrap_or(total);
        let page: Vec<String> = body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap().to_string())
            .collect();
        if page.is_empty() {
            return (ids, total);
        }
        ids.extend(page);
    }
}

fn sqlite_rows(state: &Path) -> i64 {
    let db = rusqlite::Connection::open(state.join("sqlite_db.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM cloudtuner_kv", [], |r| r.get(0))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fermyon_cloud_build_submits_and_keeps_its_data_in_sqlite() {
    let (fake, state, app) = fermyon_app().await;
    let r = app.request("GET", "/api/cloud/health", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(&app, SUBMIT, &json!({"config": {"--max_train_steps": 10}})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    let r = app
        .request("GET", &format!("/api/cloud/jobs/{id}"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(fake.prediction_ids().len(), 1);
    if common::store_under_test() == "embedded" {
        assert!(sqlite_rows(state.path()) > 0, "the data is in SQLite");
        assert_eq!(
            app.kv().count("default").unwrap(),
            0,
            "none in the key-value store"
        );
    }
}

/// 100 submits with one idempotency key, racing while the provider answers
/// slowly: one job, one prediction, every other answer a replay or "in progress".
async fn one_key_makes_one_prediction(fake: &FakeReplicate, app: &App) {
    fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::Latency(std::time::Duration::from_millis(300)),
        1,
    ));
    let rs = race(
        app,
        100,
        |_| json!({"config": {"--max_train_steps": 10}, "idempotency_key": "ci-build-42"}),
    )
    .await;
    let codes = statuses(&rs);
    assert_eq!(codes.get(&201), Some(&1), "{codes:?}");
    assert!(
        codes.keys().all(|s| [200, 201, 409].contains(s)),
        "only replays and in-progress answers besides the one job: {codes:?}"
    );
    let ids: BTreeSet<_> = rs
        .iter()
        .filter_map(|r| r.json()["job_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(fake.prediction_ids().len(), 1, "exactly one prediction");
    assert_eq!(all_listed(app).await.1, 1);
}

/// 200 concurrent submits: every one a job, each listed exactly once.
async fn concurrent_submits_are_all_listed_once(fake: &FakeReplicate, app: &App) {
    let rs = race(
        app,
        200,
        |i| json!({"config": {"--max_train_steps": 10, "run": i}}),
    )
    .await;
    assert_eq!(statuses(&rs), BTreeMap::from([(201, 200)]));
    let submitted: BTreeSet<String> = rs
        .iter()
        .map(|r| r.json()["job_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(submitted.len(), 200);
    let (listed, total) = all_listed(app).await;
    assert_eq!((listed.len(), total), (200, 200), "every job listed once");
    let unique: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(unique, submitted, "no duplicates, none missing");
    assert_eq!(fake.prediction_ids().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_submits_with_one_key_on_fermyon_cloud_make_one_prediction() {
    let (fake, _state, app) = racing_app(&FERMYON, None).await;
    one_key_makes_one_prediction(&fake, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_submits_on_fermyon_cloud_are_all_listed_once() {
    let (fake, _state, app) = racing_app(&FERMYON, None).await;
    concurrent_submits_are_all_listed_once(&fake, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_akamai_build_submits_and_keeps_its_data_in_redis_alone() {
    let redis = RedisServer::start();
    let (fake, state, app) = platform_app(&AKAMAI, Some(&redis)).await;
    let r = app.request("GET", "/api/cloud/health", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["store"], "redis", "{}", r.text());
    let r = post_json(&app, SUBMIT, &json!({"config": {"--max_train_steps": 10}})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(fake.prediction_ids().len(), 1);
    assert!(!redis.keys("akamai:").is_empty(), "the data is in Redis");
    assert_eq!(
        app.kv().count("default").unwrap(),
        0,
        "none in a key-value store"
    );
    assert_eq!(sqlite_rows(state.path()), 0, "none in SQLite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_akamai_build_without_a_redis_says_which_variables_to_set() {
    let fake = FakeReplicate::start().await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let config = cloudtuner_testhost::HostConfig::new(manifest_path(&AKAMAI), dir.path())
        .platform(Platform::Akamai)
        .variable("replicate_api_base", url);
    let err = App::load(&config).err().expect("refused without redis_url");
    // Spin refuses an app whose required variable has no value (redis_host, redis_url).
    assert!(
        err.to_string().contains("required variable redis_"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_submits_with_one_key_on_akamai_make_one_prediction() {
    let redis = RedisServer::start();
    let (fake, _state, app) = racing_app(&AKAMAI, Some(&redis)).await;
    one_key_makes_one_prediction(&fake, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_submits_on_akamai_are_all_listed_once() {
    let redis = RedisServer::start();
    let (fake, _state, app) = racing_app(&AKAMAI, Some(&redis)).await;
    concurrent_submits_are_all_listed_once(&fake, &app).await;
}

/// The host serves `fermyon:spin/sqlite` only to components that list the
/// database, as Spin does: a manifest without `sqlite_databases` gets
/// `access-denied`, which the app reports as a storage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_without_sqlite_databases_is_denied_the_database() {
    let root = workspace_root();
    let text = std::fs::read_to_string(fermyon_toml())
        .unwrap()
        .replace(r#"sqlite_databases = ["default"]"#, "")
        .replace(
            "source = \"target/",
            &format!("source = \"{}/target/", root.display()),
        );
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, text).unwrap();
    let app = App::load(&cloudtuner_testhost::HostConfig::new(
        &manifest,
        &dir.path().join("state"),
    ))
    .unwrap();
    let r = app.request("GET", "/api/cloud/health", &[], "").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("sqlite_databases"), "{}", r.text());
}
