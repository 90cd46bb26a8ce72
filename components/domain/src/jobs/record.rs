//! The job record, its statuses and the one transition function every write
//! goes through.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::kernel::clock::rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Uploading,
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

pub const ALL_STATUSES: [JobStatus; 7] = [
    JobStatus::Pending,
    JobStatus::Uploading,
    JobStatus::Queued,
    JobStatus::Running,
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Uploading => "uploading",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_STATUSES.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Position in the lifecycle; a job only moves forward.
    fn rank(self) -> u8 {
        match self {
            JobStatus::Pending => 0,
            JobStatus::Uploading => 1,
            JobStatus::Queued => 2,
            JobStatus::Running => 3,
            _ => 4,
        }
    }

    /// Maps a Replicate prediction status. `None` for statuses we do not know
    /// (the job stays where it is and the provider status is recorded).
    pub fn from_replicate(status: &str) -> Option<Self> {
        match status.to_ascii_lowercase().as_str() {
            "starting" => Some(JobStatus::Queued),
            "processing" => Some(JobStatus::Running),
            "succeeded" => Some(JobStatus::Completed),
            "failed" => Some(JobStatus::Failed),
            "canceled" | "cancelled" | "aborted" => Some(JobStatus::Cancelled),
            _ => None,
        }
    }
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: JobStatus,
    pub to: JobStatus,
}

impl std::fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a {} job cannot become {}",
            self.from.as_str(),
            self.to.as_str()
        )
    }
}

/// The rule for every status write: staying put is allowed (progress updates),
/// active jobs move forward only (a late "queued" never undoes "running"), and
/// a terminal job never changes again.
pub fn check_transition(from: JobStatus, to: JobStatus) -> Result<(), IllegalTransition> {
    if from == to || (!from.is_terminal() && to.rank() > from.rank()) {
        Ok(())
    } else {
        Err(IllegalTransition { from, to })
    }
}

/// Statuses that may still be cancelled.
pub const CANCELLABLE: [JobStatus; 4] = [
    JobStatus::Pending,
    JobStatus::Uploading,
    JobStatus::Queued,
    JobStatus::Running,
];

/// Statuses that may be deleted.
pub const DELETABLE: [JobStatus; 3] = [
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

/// A job's page in each list scope (every job's, its owner's), kept in its
/// record so a change goes straight to its page (see `jobs::pages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    pub all: u64,
    pub owner: u64,
}

/// A re-run's place among its attempts: the job it re-ran, the first job of
/// the chain (so a list can group attempts), and its attempt number (2, 3, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub retry_of: String,
    pub first_job: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub owner: String,
    pub provider: String,
    pub status: JobStatus,
    pub config_name: Option<String>,
    pub created_ms: u64,
    pub started_ms: Option<u64>,
    pub completed_ms: Option<u64>,
    pub updated_ms: u64,
    /// When the provider was last asked about this job.
    pub refreshed_ms: Option<u64>,
    pub cost_usd: Option<f64>,
    pub cost_estimated: bool,
    pub hardware_profile: String,
    pub hardware_type: String,
    pub error_message: Option<String>,
    pub output_url: Option<String>,
    pub prediction_id: Option<String>,
    pub provider_status: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub tracker_run_name: Option<String>,
    pub webhook_url: Option<String>,
    /// SHA-256 of the prediction input we sent, to adopt a prediction whose
    /// create response was lost.
    pub input_sha256: Option<String>,
    pub dataset_file_url: Option<String>,
    pub config: Value,
    pub dataloader_config: Value,
    #[serde(default)]
    pub progress: Option<crate::jobs::progress::Progress>,
    #[serde(default)]
    pub loss_history: crate::jobs::progress::LossHistory,
    /// Recent Replicate `webhook-id`s, for dedupe (checked in the same CAS
    /// update that applies the webhook, so no extra keys are needed).
    #[serde(default)]
    pub webhook_ids: Vec<String>,
    /// $/s this job is billed at (the profile's rate when it was submitted).
    #[serde(default)]
    pub cost_per_second: Option<f64>,
    /// The estimate reserved against spend windows at submit.
    #[serde(default)]
    pub reservation: Option<crate::billing::limits::Reservation>,
    /// The quota counters taken at submit, given back when the job ends
    /// (see `billing::quotas::usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_hold: Option<crate::billing::quotas::usage::QuotaHold>,
    /// The team the job is charged to (for its quotas and usage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<u64>,
    /// How the trained model comes back (decided at submit).
    #[serde(default)]
    pub delivery: Option<crate::jobs::delivery::Delivery>,
    /// The KV key of the idempotency record that produced this job, removed
    /// with the job once past its 24 h (not shown in responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_record: Option<String>,
    /// Bumped by every change the job list shows (see `jobs::summary`).
    #[serde(default)]
    pub rev: u64,
    /// The job's page in each list scope (see `jobs::pages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_pages: Option<Slots>,
    /// Ended from a list answer of Replicate's, which carries no logs: the
    /// next refresh (a read, or the next sync within its budget) fetches them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logs_pending: bool,
    /// Which attempt of a training this is, when it re-runs another job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
    /// The job's deadline: Replicate cancels it this long after submit
    /// (`Cancel-After`), even when this server is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Why it ended, when that has a name (`deadline_exceeded`, `provider_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl Job {
    /// Moves to `to` through [`check_transition`], stamping timestamps.
    pub fn transition(&mut self, to: JobStatus, now_ms: u64) -> Result<(), IllegalTransition> {
        check_transition(self.status, to)?;
        if to == JobStatus::Running && self.started_ms.is_none() {
            self.started_ms = Some(now_ms);
        }
        if to.is_terminal() && self.completed_ms.is_none() {
            self.completed_ms = Some(now_ms);
        }
        self.status = to;
        self.updated_ms = now_ms;
        Ok(())
    }

    /// When the job ended (its last change if the provider gave no time);
    /// meaningful for finished jobs.
    /// 1 for a first run, then 2, 3, ... for its re-runs.
    pub fn attempt(&self) -> u32 {
        self.lineage.as_ref().map_or(1, |l| l.attempt)
    }

    pub fn ended_ms(&self) -> u64 {
        self.completed_ms.unwrap_or(self.updated_ms)
    }

    pub fn duration_seconds(&self, now_ms: u64) -> Option<f64> {
        let start = self.started_ms?;
        let end = self.completed_ms.unwrap_or(now_ms);
        Some(crate::kernel::clock::seconds_between(start, end))
    }

    /// The API view (SimpleTuner's job shape). Secrets in the config are
    /// redacted; the owner is `user_id`.
    pub fn to_api(&self, now_ms: u64) -> Value {
        json!({
            "job_id": self.job_id,
            "job_type": "cloud",
            "provider": self.provider,
            "status": self.status.as_str(),
            "config_name": self.config_name,
            "attempt": self.attempt(),
            "retry_of": self.lineage.as_ref().map(|l| l.retry_of.as_str()),
            "first_job": self.lineage.as_ref().map(|l| l.first_job.as_str()),
            "created_at": rfc3339(self.created_ms),
            "started_at": self.started_ms.map(rfc3339),
            "completed_at": self.completed_ms.map(rfc3339),
            "updated_at": rfc3339(self.updated_ms),
            "cost_usd": self.cost_usd,
            "cost_estimated": self.cost_estimated,
            "hardware_type": self.hardware_type,
            "error_message": self.error_message,
            "error": self.error_code,
            "max_runtime_minutes": self.max_runtime_minutes,
            "deadline_at": self.deadline_ms.map(rfc3339),
            "team_id": self.team_id,
            "output_url": self.output_url,
            "delivery": self.delivery.as_ref().map(|d| d.to_api(&self.job_id)),
            "user_id": self.owner,
            "is_terminal": self.status.is_terminal(),
            "is_active": !self.status.is_terminal(),
            "duration_seconds": self.duration_seconds(now_ms),
            "progress": self.progress.as_ref().map(|p| json!({
                "stage": p.stage,
                "step": p.step,
                "total_steps": p.total_steps,
                "percent": p.percent,
                "epoch": p.epoch,
                "total_epochs": p.total_epochs,
                "loss": p.loss,
                "eta_seconds": p.eta_seconds,
                "updated_at": rfc3339(p.updated_ms),
            })),
            "metadata": {
                "prediction_id": self.prediction_id,
                "provider_status": self.provider_status,
                "hardware_profile": self.hardware_profile,
                "model": self.model,
                "version": self.version,
                "tracker_run_name": self.tracker_run_name,
                "webhook_url": self.webhook_url,
                "last_refreshed_at": self.refreshed_ms.map(rfc3339),
                "config_snapshot": {
                    "config": redact(&self.config),
                    "dataloader_config": redact(&self.dataloader_config),
                },
            },
        })
    }
}

impl Job {
    /// The single-job view: [`Job::to_api`] plus the loss history for charts.
    pub fn to_api_detail(&self, now_ms: u64) -> Value {
        let mut v = self.to_api(now_ms);
        v["loss_history"] = json!(self.loss_history);
        v
    }
}

/// Replaces the values of secret-looking keys (tokens, passwords, secret and
/// access keys) with `"***"`, at any depth, including inside strings that
/// hold JSON (SimpleTuner sends `publishing_config` as a JSON string).
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if is_secret_key(k) && !v.is_null() {
                        (k.clone(), json!("***"))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(s) => match embedded_json(s) {
            Some(inner) => {
                let redacted = redact(&inner);
                if redacted == inner {
                    value.clone()
                } else {
                    Value::String(redacted.to_string())
                }
            }
            None => value.clone(),
        },
        other => other.clone(),
    }
}

/// The object or array a string holds as JSON text, if it does.
fn embedded_json(s: &str) -> Option<Value> {
    let t = s.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<Value>(s)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
}

/// Whether `value` holds any secret [`redact`] would hide.
pub fn holds_secrets(value: &Value) -> bool {
    redact(value) != *value
}

/// The other half of [`redact`]: a secret sent back as `"***"` (a form that
/// showed the redacted value and did not change it) keeps the value in `old`,
/// at the same place; with nothing to keep it is dropped, never stored as
/// `"***"`.
pub fn restore_redacted(new: &mut Value, old: Option<&Value>) {
    if let Value::String(text) = new {
        // JSON text (a `publishing_config` string) is restored inside, and
        // written back only if a redacted secret was in it.
        if let Some(mut inner) = embedded_json(text) {
            let before = inner.clone();
            let old_inner = old.and_then(|o| match o {
                Value::String(t) => embedded_json(t),
                other => Some(other.clone()),
            });
            restore_redacted(&mut inner, old_inner.as_ref());
            if inner != before {
                *new = Value::String(inner.to_string());
            }
        }
        return;
    }
    match new {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let before = old.and_then(|o| o.get(&k));
                if is_secret_key(&k) && map[&k] == "***" {
                    match before.filter(|b| *b != "***") {
                        Some(b) => map.insert(k, b.clone()),
                        None => map.remove(&k),
                    };
                } else if let Some(v) = map.get_mut(&k) {
                    restore_redacted(v, before);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                restore_redacted(item, old.and_then(|o| o.get(i)));
            }
        }
        _ => {}
    }
}

pub fn is_secret_key(key: &str) -> bool {
    let k = key.trim_start_matches('-').to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "access_key",
        "api_key",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
}

#[cfg(test)]
mod tests;
