//! A fake Replicate HTTP API on 127.0.0.1, speaking the shapes of
//! Replicate's HTTP API: account, models and versions, files
//! (multipart `content`, real checksums), predictions (create with
//! `version: "owner/model:id"`, get, list with cursor, cancel) and the webhook
//! signing secret. Predictions follow scripted timelines on a controllable
//! clock; fault knobs inject 429/5xx, latency and dropped responses; webhooks are
//! delivered signed with Standard Webhooks. It knows nothing about its clients.

mod delivery;
mod handlers;
mod model;
pub mod receiver;
pub mod script;
pub mod signing;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use serde_json::Value;
use tokio::net::TcpListener;

pub use model::{Fault, FaultKind, RecordedRequest, WebhookDelivery};
pub use script::{Outcome, Script, Step};

use model::State;

/// A running fake. Dropping it stops the server.
pub struct FakeReplicate {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeReplicate {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub const DEFAULT_TOKEN: &str = "r8_fake_token_0123456789abcdef";

impl FakeReplicate {
    /// Starts on a random loopback port, accepting [`DEFAULT_TOKEN`].
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind fake replicate");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::new(format!("http://{addr}"))));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let state = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handlers::handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            tasks: vec![server],
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// `http://127.0.0.1:<port>` (the API lives under `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn add_token(&self, token: &str) {
        self.with(|s| s.tokens.push(token.to_string()));
    }

    /// What the status page summary (`GET /api/v1/summary`) answers.
    pub fn set_status_summary(&self, summary: Value) {
        self.with(|s| s.status_summary = summary);
    }

    pub fn set_account(&self, account: Value) {
        self.with(|s| s.account = account);
    }

    /// Registers `owner/name` with a fresh 64-hex version; returns the version id.
    pub fn add_model(&self, owner: &str, name: &str) -> String {
        self.with(|s| s.add_version(owner, name))
    }

    /// The timeline of predictions created from now on (unless one is queued).
    pub fn set_default_script(&self, script: Script) {
        self.with(|s| s.default_script = script);
    }

    /// The timeline of the next prediction created (queue; first in, first used).
    pub fn push_script(&self, script: Script) {
        self.with(|s| s.queued_scripts.push_back(script));
    }

    /// Moves the fake clock forward (scripts progress; webhooks need [`tick`]).
    pub fn advance(&self, secs: u64) {
        self.with(|s| s.clock_offset += secs);
    }

    pub fn fault(&self, fault: Fault) {
        self.with(|s| s.faults.push(fault));
    }

    pub fn clear_faults(&self) {
        self.with(|s| s.faults.clear());
    }

    /// Page size of `GET /v1/predictions` (Replicate uses 100).
    pub fn set_page_size(&self, n: usize) {
        self.with(|s| s.page_size = n.max(1));
    }

    /// When true, webhooks are computed but never sent (a lost webhook).
    pub fn drop_webhooks(&self, drop: bool) {
        self.with(|s| s.drop_webhooks = drop);
    }

    /// Shifts `webhook-timestamp` by `secs` (stale or future timestamps).
    pub fn webhook_timestamp_skew(&self, secs: i64) {
        self.with(|s| s.webhook_skew = secs);
    }

    /// Signs webhooks with this secret instead of the account's (a bad signature).
    pub fn sign_webhooks_with(&self, secret: Option<String>) {
        self.with(|s| s.signing_override = secret);
    }

    pub fn webhook_secret(&self) -> String {
        self.with(|s| s.webhook_secret.clone())
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.with(|s| s.requests.clone())
    }

    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.with(|s| s.deliveries.clone())
    }

    /// The prediction as `GET /v1/predictions/{id}` would show it now.
    pub fn prediction(&self, id: &str) -> Option<Value> {
        self.with(|s| s.prediction_json(id, true))
    }

    pub fn prediction_ids(&self) -> Vec<String> {
        self.with(|s| s.predictions.iter().map(|p| p.id.clone()).collect())
    }

    /// Bytes of an uploaded file.
    pub fn file_bytes(&self, id: &str) -> Option<Vec<u8>> {
        self.with(|s| s.files.get(id).map(|f| f.bytes.clone()))
    }

    pub fn file_ids(&self) -> Vec<String> {
        self.with(|s| s.files.keys().cloned().collect())
    }

    /// Sends the webhooks that the time passed since the last tick calls for,
    /// and retries failed terminal deliveries. Returns how many were attempted.
    pub async fn tick(&self) -> usize {
        delivery::tick(&self.state).await
    }

    /// Ticks in the background every `every` (for tests that run in real time).
    pub fn auto_tick(&mut self, every: Duration) {
        let state = self.state.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                delivery::tick(&state).await;
            }
        }));
    }

    /// Stops what [`FakeReplicate::auto_tick`] and [`FakeReplicate::auto_advance`]
    /// started: the clock stands still and no webhook is sent from then on.
    pub fn stop_background(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// Runs the fake clock faster than real time: `secs` more every `every`
    /// (for browser tests that watch jobs move).
    pub fn auto_advance(&mut self, every: Duration, secs: u64) {
        let state = self.state.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                state.lock().unwrap_or_else(|p| p.into_inner()).clock_offset += secs;
            }
        }));
    }
}
