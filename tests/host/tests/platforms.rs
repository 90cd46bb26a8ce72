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
use cloudtuner_testhost::{App, TestResponse, workspace_root};
use common::{SUBMIT, add_trainers, post_json};
use fake_replicate::{FakeReplicate, Fault, FaultKind};
use serde_json::json;

const FERMYON_TARGET_DIR: &str = "target/fermyon-cloud";
const FERMYON_FLAGS: &str =
    "--target-dir target/fermyon-cloud --no-default-features --features fermyon-cloud";

fn fermyon_toml() -> PathBuf {
    workspace_root().join("spin.fermyon-cloud.toml")
}

/// `spin.toml` as Fermyon Cloud needs it: Spin's SQLite instead of the
/// key-value store, components from the Fermyon Cloud build.
fn fermyon_cloud_manifest(spin_toml: &str) -> String {
    let header = "# GENERATED from spin.toml by tests/host/tests/platforms.rs (do not edit; run\n\
        #   CLOUDTUNER_WRITE_MANIFESTS=1 cargo test -p cloudtuner-testhost --test platforms manifest\n\
        # after changing spin.toml). The app for Fermyon Cloud: no wasi:keyvalue there, so\n\
        # every component keeps its data in Spin's SQLite database `default`\n\
        # (`spin cloud deploy -f spin.fermyon-cloud.toml` links a NoOps SQL database as `default`).\n\
        # Components come from their own build (feature fermyon-cloud):\n\
        #   spin build -f spin.fermyon-cloud.toml\n";
    let body: Vec<String> = spin_toml
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|line| {
            if line.trim() == r#"key_value_stores = ["default"]"# {
                r#"sqlite_databases = ["default"]"#.to_string()
            } else if line.starts_with("source = \"target/wasm32-wasip2/") {
                line.replacen("target/", &format!("{FERMYON_TARGET_DIR}/"), 1)
            } else if line.starts_with("command = \"cargo build ") && line.contains(" -p ") {
                line.replacen(" -p ", &format!(" {FERMYON_FLAGS} -p "), 1)
            } else {
                line.to_string()
            }
        })
        .collect();
    format!("{header}{}\n", body.join("\n"))
}

#[test]
fn the_fermyon_cloud_manifest_is_spin_toml_on_sqlite() {
    let spin = std::fs::read_to_string(workspace_root().join("spin.toml")).unwrap();
    let want = fermyon_cloud_manifest(&spin);
    if std::env::var("CLOUDTUNER_WRITE_MANIFESTS").is_ok_and(|v| v == "1") {
        std::fs::write(fermyon_toml(), &want).unwrap();
    }
    let have = std::fs::read_to_string(fermyon_toml()).unwrap_or_default();
    assert!(
        have == want,
        "spin.fermyon-cloud.toml is not spin.toml's Fermyon Cloud variant: run \
         CLOUDTUNER_WRITE_MANIFESTS=1 cargo test -p cloudtuner-testhost --test platforms manifest"
    );
    let m = Manifest::parse(&want).unwrap();
    let base = Manifest::parse(&spin).unwrap();
    assert!(
        m.trigger.cron.is_empty(),
        "Fermyon Cloud runs no cron trigger"
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
        assert_eq!(
            c.sqlite_databases.is_empty(),
            base.component[id].key_value_stores.is_empty(),
            "{id}: SQLite exactly where spin.toml has the store"
        );
        assert!(
            c.source.starts_with(FERMYON_TARGET_DIR),
            "{id}: {}",
            c.source
        );
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
        // Akamai Functions: store and batch, no atomics.
        "akamai" => &["wasi:keyvalue/atomics"],
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

/// The Fermyon Cloud app against a fake Replicate: its data in the state
/// directory's SQLite database, none in the key-value store.
async fn fermyon_app() -> (FakeReplicate, tempfile::TempDir, App) {
    let fake = FakeReplicate::start().await;
    add_trainers(&fake);
    let url = fake.url();
    let (dir, app) = common::load(
        fermyon_toml(),
        &[
            ("replicate_api_base", url.as_str()),
            ("replicate_status_base", url.as_str()),
            ("replicate_api_token", fake_replicate::DEFAULT_TOKEN),
            ("refresh_after_ms", "0"),
        ],
    );
    (fake, dir, app)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_racing_submits_with_one_key_on_fermyon_cloud_make_one_prediction() {
    let (fake, _state, app) = fermyon_app().await;
    // The provider answers slowly, so the racers overlap while the first runs.
    fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::Latency(std::time::Duration::from_millis(300)),
        1,
    ));
    let rs = race(
        &app,
        50,
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
    assert_eq!(all_listed(&app).await.1, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_submits_on_fermyon_cloud_are_all_listed_once() {
    let (fake, _state, app) = fermyon_app().await;
    let rs = race(
        &app,
        50,
        |i| json!({"config": {"--max_train_steps": 10, "run": i}}),
    )
    .await;
    assert_eq!(statuses(&rs), BTreeMap::from([(201, 50)]));
    let submitted: BTreeSet<String> = rs
        .iter()
        .map(|r| r.json()["job_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(submitted.len(), 50);
    let (listed, total) = all_listed(&app).await;
    assert_eq!((listed.len(), total), (50, 50), "every job listed once");
    let unique: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(unique, submitted, "no duplicates, none missing");
    assert_eq!(fake.prediction_ids().len(), 50);
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
