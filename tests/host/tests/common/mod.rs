//! Shared helpers for the host's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use cloudtuner_testhost::{App, HostConfig, server, workspace_root};
use fake_replicate::FakeReplicate;

pub fn spin_toml() -> PathBuf {
    workspace_root().join("spin.toml")
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The `admin_token` tests configure; requests made through [`as_admin`] use it.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub fn as_admin(app: &App) -> App {
    app.with_header("authorization", &format!("Bearer {ADMIN_TOKEN}"))
}

/// An app from `manifest` with its own state directory (KV file, logs),
/// acting as the admin token (see [`App::anonymous`] for no credentials).
pub fn load(manifest: PathBuf, vars: &[(&str, &str)]) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = HostConfig::new(manifest, dir.path())
        .variable("admin_token", ADMIN_TOKEN)
        .variable("notification_hosts", "http://127.0.0.1:*");
    for (k, v) in vars {
        config = config.variable(k, *v);
    }
    let app = App::load(&config).unwrap_or_else(|e| panic!("load app: {e}"));
    (dir, as_admin(&app))
}

/// The real app, pointed at `fake` with the fake's token.
pub fn cloudtuner(fake: &FakeReplicate) -> (tempfile::TempDir, App) {
    let url = fake.url();
    load(
        spin_toml(),
        &[
            ("replicate_api_base", url.as_str()),
            ("replicate_api_token", fake_replicate::DEFAULT_TOKEN),
        ],
    )
}

/// The real app with a datasets folder of the test's own, fast refreshes, and
/// the fake's token.
pub fn cloudtuner_with(
    fake: &FakeReplicate,
    datasets: &std::path::Path,
    extra: &[(&str, &str)],
) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = HostConfig::new(spin_toml(), dir.path())
        .variable("replicate_api_base", fake.url())
        .variable("replicate_api_token", fake_replicate::DEFAULT_TOKEN)
        .variable("refresh_after_ms", "0")
        .variable("admin_token", ADMIN_TOKEN)
        // Tests must never reach beyond loopback: user notification URLs
        // elsewhere are refused by the allow-list instead of being tried.
        .variable("notification_hosts", "http://127.0.0.1:*")
        .mount("/datasets", datasets);
    for (k, v) in extra {
        config = config.variable(k, *v);
    }
    let app = App::load(&config).unwrap_or_else(|e| panic!("load app: {e}"));
    (dir, as_admin(&app))
}

/// A fresh fake Replicate with the trainer models, and the app against it
/// (see [`cloudtuner_with`]): (fake, datasets dir, state dir, app).
pub async fn fake_and_app(
    extra: &[(&str, &str)],
) -> (FakeReplicate, tempfile::TempDir, tempfile::TempDir, App) {
    let fake = FakeReplicate::start().await;
    add_trainers(&fake);
    let datasets = tempfile::tempdir().unwrap();
    let (state, app) = cloudtuner_with(&fake, datasets.path(), extra);
    (fake, datasets, state, app)
}

/// Registers SimpleTuner's trainer models (one per hardware profile) on the fake.
pub fn add_trainers(fake: &FakeReplicate) {
    for p in [
        "h100", "h100-x2", "h100-x4", "h100-x8", "l40s", "l40s-x2", "l40s-x4", "l40s-x8",
    ] {
        fake.add_model("simpletuner", &format!("advanced-trainer-{p}"));
    }
}

pub async fn post_json(
    app: &App,
    path: &str,
    body: &serde_json::Value,
) -> cloudtuner_testhost::TestResponse {
    app.request(
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// The app served on a real loopback port that is also its `public_url`, so
/// the fake's webhooks, boto3 and browsers reach it. `app` sends no
/// credentials; wrap it with [`as_admin`] to act as the admin token.
pub struct ServedApp {
    pub app: App,
    pub url: String,
    pub state: tempfile::TempDir,
    pub datasets: tempfile::TempDir,
    _served: server::Served,
}

/// Serves the real app against `fake` (base URL only: pass
/// `replicate_api_token`, `refresh_after_ms`, ... in `extra`).
pub async fn serve(fake: &FakeReplicate, extra: &[(&str, &str)]) -> ServedApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = tempfile::tempdir().unwrap();
    let datasets = tempfile::tempdir().unwrap();
    let config = extra.iter().fold(
        HostConfig::new(spin_toml(), state.path())
            .variable("replicate_api_base", fake.url())
            .variable("public_url", url.clone())
            .variable("admin_token", ADMIN_TOKEN)
            .variable("notification_hosts", "http://127.0.0.1:*")
            .mount("/datasets", datasets.path()),
        |c, (name, value)| c.variable(name, *value),
    );
    let app = App::load(&config).unwrap_or_else(|e| panic!("load app: {e}"));
    let served = server::Served::from_listener(app.clone(), listener);
    ServedApp {
        app,
        url,
        state,
        datasets,
        _served: served,
    }
}
