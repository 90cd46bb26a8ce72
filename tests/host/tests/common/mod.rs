//! Shared helpers for the host's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) mod redis_server;
pub(crate) use redis_server::RedisServer;
pub(crate) mod store;
#[allow(unused_imports)]
pub(crate) use store::stored;

use cloudtuner_testhost::{App, HostConfig, Platform, server, workspace_root};
use fake_replicate::FakeReplicate;

/// The manifest of the platform under test: `spin.toml`, or with
/// `CLOUDTUNER_TEST_PLATFORM=fermyon-cloud|akamai` (set by `tests/run-all.sh` for
/// the suite's platform passes) that platform's build, which the host then runs
/// under that platform's profile (what it links, its limits).
pub(crate) fn spin_toml() -> PathBuf {
    workspace_root().join(match platform() {
        Platform::Spin => "spin.toml",
        Platform::FermyonCloud => "spin.fermyon-cloud.toml",
        Platform::Akamai => "spin.akamai.toml",
    })
}

/// The platform this run's apps are loaded for (`CLOUDTUNER_TEST_PLATFORM`).
pub(crate) fn platform() -> Platform {
    match std::env::var("CLOUDTUNER_TEST_PLATFORM") {
        Ok(p) if !p.is_empty() => Platform::parse(&p).unwrap_or_else(|e| panic!("{e}")),
        _ => Platform::Spin,
    }
}

/// Whether the platform under test runs a scheduler (the cron plugin); tests of
/// the scheduled trigger skip where it does not.
pub(crate) fn platform_has_scheduler() -> bool {
    platform() == Platform::Spin
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The `admin_token` tests configure; requests made through [`as_admin`] use it.
pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub(crate) fn as_admin(app: &App) -> App {
    app.with_header("authorization", &format!("Bearer {ADMIN_TOKEN}"))
}

/// The password tests give the users they create.
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// The submit route as SimpleTuner's CLI calls it.
pub(crate) const SUBMIT: &str = "/api/cloud/jobs/submit?provider=replicate";

/// The host configuration every test app starts from: its own state
/// directory, the admin token, and notifications only to loopback (tests
/// never reach beyond it).
///
/// With `CLOUDTUNER_TEST_REDIS=host:port` (set by `tests/run-all.sh` for the
/// suite's second pass) every app keeps its data in that Redis instead of the
/// embedded store, each under a key prefix of its own.
fn base_config(manifest: PathBuf, state: &std::path::Path) -> HostConfig {
    let config = HostConfig::new(manifest, state)
        .platform(platform())
        .variable("admin_token", ADMIN_TOKEN)
        .variable("notification_hosts", "http://127.0.0.1:*");
    match std::env::var("CLOUDTUNER_TEST_REDIS") {
        Ok(host) if !host.is_empty() => with_redis(config, &host, &fresh_prefix()),
        _ if platform() == Platform::Akamai => panic!(
            "the Akamai build keeps its data only in Redis: set CLOUDTUNER_TEST_REDIS=host:port \
             (tests/run-all.sh starts a redis-server for it)"
        ),
        _ => config,
    }
}

/// The app's store is the Redis at `host` (`host:port`), keys under `prefix`.
fn with_redis(config: HostConfig, host: &str, prefix: &str) -> HostConfig {
    config
        .variable("redis_url", format!("redis://{host}"))
        .variable("redis_host", host)
        .variable("redis_key_prefix", prefix)
}

/// `config` on the same store as `app` (a second manifest of one
/// installation, such as the cron app): the same Redis and prefix, if any.
pub(crate) fn same_store(config: HostConfig, app: &App) -> HostConfig {
    ["redis_url", "redis_host", "redis_key_prefix"]
        .into_iter()
        .fold(config, |c, name| match app.variable(name) {
            Some(v) => c.variable(name, v),
            None => c,
        })
}

/// A key prefix no other app of this test run uses.
fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Which store the apps of this run use: `redis` in the suite's Redis passes,
/// `sqlite` in the Fermyon Cloud pass, else `embedded`.
pub(crate) fn store_under_test() -> &'static str {
    match std::env::var("CLOUDTUNER_TEST_REDIS") {
        Ok(h) if !h.is_empty() => "redis",
        _ if platform() == Platform::FermyonCloud => "sqlite",
        _ => "embedded",
    }
}

/// An app from `manifest` with its own state directory (KV file, logs),
/// acting as the admin token (see [`App::anonymous`] for no credentials).
pub(crate) fn load(manifest: PathBuf, vars: &[(&str, &str)]) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = vars
        .iter()
        .fold(base_config(manifest, dir.path()), |c, (k, v)| {
            c.variable(k, *v)
        });
    let app = App::load(&config).unwrap_or_else(|e| panic!("load app: {e}"));
    (dir, as_admin(&app))
}

/// As [`load`], for a platform's build under that platform's profile.
/// `limits` replaces the platform's when given.
pub(crate) fn load_for(
    manifest: PathBuf,
    platform: Platform,
    limits: Option<cloudtuner_testhost::Limits>,
    vars: &[(&str, &str)],
) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = base_config(manifest, dir.path()).platform(platform);
    let config = match limits {
        Some(l) => config.limits(l),
        None => config,
    };
    let config = vars.iter().fold(config, |c, (k, v)| c.variable(k, *v));
    let app = App::load(&config).unwrap_or_else(|e| panic!("load app: {e}"));
    (dir, as_admin(&app))
}

/// The real app, pointed at `fake` with the fake's token.
pub(crate) fn cloudtuner(fake: &FakeReplicate) -> (tempfile::TempDir, App) {
    let url = fake.url();
    load(
        spin_toml(),
        &[
            ("replicate_api_base", url.as_str()),
            ("replicate_status_base", url.as_str()),
            ("replicate_api_token", fake_replicate::DEFAULT_TOKEN),
        ],
    )
}

/// The real app under test against a fake Replicate of its own: built with
/// [`TestApp::builder`], acting as the admin token (`app.anonymous()` sends
/// nothing), with a datasets folder mounted at `/datasets`.
pub(crate) struct TestApp {
    pub fake: FakeReplicate,
    pub app: App,
    /// The origin it is served at (also its `public_url`); empty unless served.
    pub url: String,
    pub datasets: tempfile::TempDir,
    pub state: tempfile::TempDir,
    _served: Option<server::Served>,
}

pub(crate) struct TestAppBuilder {
    vars: Vec<(String, String)>,
    served: bool,
}

impl TestAppBuilder {
    /// Keeps the app's data in `redis` under `prefix`: apps built with the
    /// same server and prefix are replicas of one installation.
    pub(crate) fn redis(self, redis: &RedisServer, prefix: &str) -> Self {
        self.var("redis_url", &redis.url())
            .var("redis_host", &redis.host())
            .var("redis_key_prefix", prefix)
    }
}

impl TestApp {
    /// Defaults: the fake's token, refreshes on every read, not served.
    pub(crate) fn builder() -> TestAppBuilder {
        TestAppBuilder {
            vars: vec![
                (
                    "replicate_api_token".into(),
                    fake_replicate::DEFAULT_TOKEN.into(),
                ),
                ("refresh_after_ms".into(), "0".into()),
            ],
            served: false,
        }
    }

    /// A job as `GET /api/cloud/jobs/{id}` shows it (asserting 200).
    pub(crate) async fn job(&self, id: &str) -> serde_json::Value {
        job(&self.app, id).await
    }

    /// Submits `body`, asserting 201; returns the job id.
    pub(crate) async fn submit(&self, body: &serde_json::Value) -> String {
        submit(&self.app, body).await
    }
}

impl TestAppBuilder {
    /// Sets an application variable (later settings win).
    pub(crate) fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    pub(crate) fn vars(self, vars: &[(&str, &str)]) -> Self {
        vars.iter().fold(self, |b, (k, v)| b.var(k, v))
    }

    /// No Replicate token (the UI's guided token setup starts from this).
    pub(crate) fn without_token(mut self) -> Self {
        self.vars.retain(|(k, _)| k != "replicate_api_token");
        self
    }

    /// Serves the app on a real loopback port that is also its `public_url`,
    /// so the fake's webhooks, boto3 and browsers reach it.
    pub(crate) fn served(mut self) -> Self {
        self.served = true;
        self
    }

    /// Starts a fake Replicate (with the trainer models) and the app against it.
    pub(crate) async fn start(self) -> TestApp {
        let fake = FakeReplicate::start().await;
        add_trainers(&fake);
        let a = self.start_against(&fake).await;
        TestApp {
            fake,
            app: a.app,
            url: a.url,
            datasets: a.datasets,
            state: a.state,
            _served: a._served,
        }
    }

    /// The app against a fake the test already has (several apps on one fake).
    pub(crate) async fn start_against(self, fake: &FakeReplicate) -> AppAgainst {
        let state = tempfile::tempdir().unwrap();
        let datasets = tempfile::tempdir().unwrap();
        let listener = if self.served {
            Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        } else {
            None
        };
        let url = listener
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().unwrap()))
            .unwrap_or_default();
        let mut config = base_config(spin_toml(), state.path())
            .variable("replicate_api_base", fake.url())
            .variable("replicate_status_base", fake.url())
            .mount("/datasets", datasets.path());
        if !url.is_empty() {
            config = config.variable("public_url", url.clone());
        }
        let config = self
            .vars
            .iter()
            .fold(config, |c, (k, v)| c.variable(k, v.as_str()));
        let app = App::load(&config).unwrap_or_else(|e| panic!("load app: {e}"));
        let served = listener.map(|l| server::Served::from_listener(app.clone(), l));
        AppAgainst {
            app: as_admin(&app),
            url,
            datasets,
            state,
            _served: served,
        }
    }
}

/// [`TestApp`] without a fake of its own ([`TestAppBuilder::start_against`]).
pub(crate) struct AppAgainst {
    pub app: App,
    pub url: String,
    pub datasets: tempfile::TempDir,
    pub state: tempfile::TempDir,
    _served: Option<server::Served>,
}

/// A job as `GET /api/cloud/jobs/{id}` shows it (asserting 200).
pub(crate) async fn job(app: &App, id: &str) -> serde_json::Value {
    let r = app
        .request("GET", &format!("/api/cloud/jobs/{id}"), &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["job"].clone()
}

/// Submits `body`, asserting 201; returns the job id.
pub(crate) async fn submit(app: &App, body: &serde_json::Value) -> String {
    let r = post_json(app, SUBMIT, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["job_id"].as_str().unwrap().to_string()
}

/// `GET path`: (status, JSON body).
pub(crate) async fn get(app: &App, path: &str) -> (u16, serde_json::Value) {
    let r = app.request("GET", path, &[], "").await;
    (r.status, r.json())
}

/// Registers SimpleTuner's trainer models (one per hardware profile) on the fake.
pub(crate) fn add_trainers(fake: &FakeReplicate) {
    for p in [
        "h100", "h100-x2", "h100-x4", "h100-x8", "l40s", "l40s-x2", "l40s-x4", "l40s-x8",
    ] {
        fake.add_model("simpletuner", &format!("advanced-trainer-{p}"));
    }
}

pub(crate) async fn post_json(
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

/// A researcher other than the admin: (bearer header value).
pub(crate) async fn researcher(app: &App, name: &str) -> String {
    format!("Bearer {}", new_user(app, name, "researcher").await.1)
}

/// A user `name` with `role`, made by the admin and signed in: (user id,
/// session token).
pub(crate) async fn new_user(app: &App, name: &str, role: &str) -> (String, String) {
    let r = post_json(
        app,
        "/api/cloud/auth/users",
        &serde_json::json!({"username": name, "password": PASSWORD, "role": role}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["user"]["id"].as_str().unwrap().to_string();
    let r = post_json(
        &app.anonymous(),
        "/api/cloud/auth/login",
        &serde_json::json!({"username": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    (id, r.json()["token"].as_str().unwrap().to_string())
}

/// Runs a plan through `tests/s3/boto3_client.py` (unmodified boto3):
/// `{"endpoint", "access_key", "secret_key", "bucket", "ops"}`, one result per op.
pub(crate) async fn run_boto3(plan: serde_json::Value) -> Vec<serde_json::Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/boto3_client.py");
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(plan.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "boto3 client failed (is boto3 installed? .ci/run installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `n` bytes that do not compress (a stand-in for images and weights); each
/// `seed` gives other bytes.
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Runs the AWS CLI (PyPI `awscli`, unmodified) against `endpoint` with an S3
/// key pair and nothing from this machine's `~/.aws`: (success, stdout, stderr).
pub(crate) async fn aws_cli(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    args: &[&str],
) -> (bool, String, String) {
    let mut cmd = std::process::Command::new("aws");
    cmd.arg("--endpoint-url")
        .arg(endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("the aws CLI runs (pip install -r tests/requirements.txt)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A zip's files (what Replicate received): {name: bytes}, in name order.
pub(crate) fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        out.insert(f.name().unwrap().to_string(), b);
    }
    out
}

/// Reads server-sent events from a streamed body until `until` holds for the
/// text so far (or the body ends); fails after `within_secs`.
pub(crate) async fn read_events(
    body: &mut cloudtuner_testhost::Body,
    text: &mut String,
    within_secs: u64,
    until: impl Fn(&str) -> bool,
) {
    use http_body_util::BodyExt;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(within_secs);
    while !until(text) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no such event within {within_secs} s; got:\n{text}"));
        match frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    text.push_str(std::str::from_utf8(data).unwrap());
                }
            }
            _ => return,
        }
    }
}

/// The `data:` lines of server-sent events.
pub(crate) fn data_lines(events: &str) -> Vec<&str> {
    events
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}
