//! The fake's state: accounts, models, files, predictions and knobs.

use std::collections::{BTreeMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::script::{Script, is_terminal};

/// A recorded request, for assertions.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answer with this status (429 gets `retry-after` and rate-limit headers).
    Status { status: u16, retry_after: u64 },
    /// Wait before handling the request.
    Latency(std::time::Duration),
    /// Perform the request's side effect, then close the connection unanswered.
    DropResponse,
}

/// A fault injected into requests whose method and path prefix match.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<String>,
    pub path_prefix: String,
    pub kind: FaultKind,
    /// How many matching requests it affects.
    pub times: u32,
}

impl Fault {
    pub fn new(method: Option<&str>, path_prefix: &str, kind: FaultKind, times: u32) -> Self {
        Self {
            method: method.map(str::to_string),
            path_prefix: path_prefix.to_string(),
            kind,
            times,
        }
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

/// One webhook POST the fake attempted.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub url: String,
    pub webhook_id: String,
    pub prediction_id: String,
    pub status: String,
    /// HTTP status of the receiver, or `None` when the connection failed.
    pub response_status: Option<u16>,
    pub attempt: u32,
}

pub(crate) struct Version {
    pub id: String,
    pub created_at: String,
}

pub(crate) struct FileObj {
    pub json: Value,
    pub bytes: Vec<u8>,
}

pub(crate) struct Prediction {
    pub id: String,
    pub model: String,
    pub version: String,
    pub input: Value,
    pub created: u64,
    pub script: Script,
    pub canceled_at: Option<u64>,
    pub webhook: Option<String>,
    pub events_filter: Option<Vec<String>>,
    /// Steps whose webhooks have been sent.
    pub delivered_steps: usize,
    pub cancel_delivered: bool,
    /// A terminal webhook that failed and is to be retried: (id, attempts so far).
    pub terminal_retry: Option<(String, u32)>,
}

pub(crate) struct State {
    pub base: String,
    pub tokens: Vec<String>,
    pub account: Value,
    /// What Replicate's status page answers at `/api/v1/summary`.
    pub status_summary: Value,
    pub webhook_secret: String,
    pub models: BTreeMap<String, Vec<Version>>,
    pub predictions: Vec<Prediction>,
    pub files: BTreeMap<String, FileObj>,
    pub default_script: Script,
    pub queued_scripts: VecDeque<Script>,
    pub faults: Vec<Fault>,
    pub requests: Vec<RecordedRequest>,
    pub deliveries: Vec<WebhookDelivery>,
    pub page_size: usize,
    pub drop_webhooks: bool,
    pub webhook_skew: i64,
    pub signing_override: Option<String>,
    pub clock_offset: u64,
}

pub(crate) fn real_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn rfc3339(secs: u64) -> String {
    OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Replicate-style ids: 26 lowercase base32 characters.
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..26)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// What a prediction looks like at a moment of the fake clock.
pub(crate) struct View {
    pub status: String,
    pub logs: String,
    pub error: Option<String>,
    pub output: Option<Value>,
    pub started: Option<u64>,
    pub completed: Option<u64>,
    pub steps_reached: usize,
}

impl Prediction {
    pub(crate) fn view(&self, now: u64) -> View {
        let elapsed = now.saturating_sub(self.created);
        let horizon = self
            .canceled_at
            .map(|c| c.saturating_sub(self.created).min(elapsed))
            .unwrap_or(elapsed);
        let mut v = View {
            status: "starting".into(),
            logs: String::new(),
            error: None,
            output: None,
            started: None,
            completed: None,
            steps_reached: 0,
        };
        for step in self.script.steps.iter().take_while(|s| s.at <= horizon) {
            v.steps_reached += 1;
            v.logs.push_str(&step.logs);
            if let Some(s) = &step.status {
                if s == "processing" && v.started.is_none() {
                    v.started = Some(self.created + step.at);
                }
                if is_terminal(s) {
                    v.completed = Some(self.created + step.at);
                }
                v.status = s.clone();
            }
            if step.error.is_some() {
                v.error = step.error.clone();
            }
            if step.output.is_some() {
                v.output = step.output.clone();
            }
        }
        if let Some(c) = self.canceled_at
            && !is_terminal(&v.status)
            && c <= now
        {
            v.status = "canceled".into();
            v.completed = Some(c);
        }
        v
    }
}

impl State {
    pub(crate) fn new(base: String) -> Self {
        Self {
            base,
            tokens: vec![crate::DEFAULT_TOKEN.to_string()],
            status_summary: json!({
                "page_url": "https://www.replicatestatus.com",
                "ongoing_incidents": [],
                "in_progress_maintenances": [],
                "scheduled_maintenances": [],
            }),
            account: json!({
                "type": "user",
                "username": "fake-user",
                "name": "Fake User",
                "github_url": "https://github.com/fake-user",
            }),
            webhook_secret: crate::signing::new_secret(),
            models: BTreeMap::new(),
            predictions: Vec::new(),
            files: BTreeMap::new(),
            default_script: Script::training(
                2,
                10,
                1,
                crate::script::Outcome::Succeeded {
                    output: json!("https://replicate.delivery/fake/output/trained_model.tar"),
                },
            ),
            queued_scripts: VecDeque::new(),
            faults: Vec::new(),
            requests: Vec::new(),
            deliveries: Vec::new(),
            page_size: 100,
            drop_webhooks: false,
            webhook_skew: 0,
            signing_override: None,
            clock_offset: 0,
        }
    }

    pub(crate) fn now(&self) -> u64 {
        real_now() + self.clock_offset
    }

    pub(crate) fn add_version(&mut self, owner: &str, name: &str) -> String {
        let id: String = (0..64)
            .map(|_| char::from_digit(rand::random_range(0..16), 16).unwrap())
            .collect();
        let created_at = rfc3339(self.now());
        self.models
            .entry(format!("{owner}/{name}"))
            .or_default()
            .insert(
                0,
                Version {
                    id: id.clone(),
                    created_at,
                },
            );
        id
    }

    pub(crate) fn model_json(&self, key: &str) -> Option<Value> {
        let versions = self.models.get(key)?;
        let (owner, name) = key.split_once('/')?;
        Some(json!({
            "url": format!("https://replicate.com/{key}"),
            "owner": owner,
            "name": name,
            "description": "A model of the fake Replicate",
            "visibility": "public",
            "github_url": null, "paper_url": null, "license_url": null,
            "run_count": self.predictions.iter().filter(|p| p.model == key).count(),
            "cover_image_url": null, "default_example": null,
            "latest_version": versions.first().map(|v| self.version_json(v)),
        }))
    }

    pub(crate) fn version_json(&self, v: &Version) -> Value {
        json!({"id": v.id, "created_at": v.created_at, "cog_version": "0.9.0", "openapi_schema": {}})
    }

    /// Finds `owner/name:version` or a bare version id; returns (model, version).
    pub(crate) fn resolve_version(&self, spec: &str) -> Option<(String, String)> {
        match spec.split_once(':') {
            Some((model, version)) => self
                .models
                .get(model)?
                .iter()
                .any(|v| v.id == version)
                .then(|| (model.to_string(), version.to_string())),
            None => self.models.iter().find_map(|(m, vs)| {
                vs.iter()
                    .any(|v| v.id == spec)
                    .then(|| (m.clone(), spec.to_string()))
            }),
        }
    }

    pub(crate) fn prediction_json(&self, id: &str, with_logs: bool) -> Option<Value> {
        let p = self.predictions.iter().find(|p| p.id == id)?;
        Some(self.render(p, with_logs))
    }

    pub(crate) fn render(&self, p: &Prediction, with_logs: bool) -> Value {
        let v = p.view(self.now());
        let metrics = match (v.started, v.completed) {
            (Some(s), Some(c)) => {
                json!({"predict_time": (c.saturating_sub(s)) as f64 + 0.25, "total_time": (c - p.created) as f64})
            }
            (None, Some(c)) => json!({"predict_time": 0.0, "total_time": (c - p.created) as f64}),
            _ => json!({}),
        };
        let mut body = json!({
            "id": p.id,
            "model": p.model,
            "version": p.version,
            "input": p.input,
            "output": v.output,
            "error": v.error,
            "status": v.status,
            "source": "api",
            "data_removed": false,
            "created_at": rfc3339(p.created),
            "started_at": v.started.map(rfc3339),
            "completed_at": v.completed.map(rfc3339),
            "metrics": metrics,
            "webhook": p.webhook,
            "webhook_events_filter": p.events_filter,
            "urls": {
                "get": format!("{}/v1/predictions/{}", self.base, p.id),
                "cancel": format!("{}/v1/predictions/{}/cancel", self.base, p.id),
                "web": format!("https://replicate.com/p/{}", p.id),
            },
        });
        if with_logs {
            body["logs"] = json!(v.logs);
        }
        body
    }
}
