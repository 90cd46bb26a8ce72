//! A job as the list shows it: the fields SimpleTuner's list returns (same
//! names), plus progress and cost, and nothing a list does not show (the
//! config snapshot, loss history, logs and delivery stay in the single-job
//! read). Summaries are what the index pages hold, so a list request reads
//! the pages and no job record; their size is bounded, so a page is too.

use serde::{Deserialize, Serialize};

use crate::jobs::progress::Progress;
use crate::jobs::record::{Job, JobStatus};
use crate::kernel::clock::{rfc3339, seconds_between};

/// Text fields are cut to this many characters in a summary (the full text
/// is in the job record), so a page of summaries has a known upper size.
pub const MAX_TEXT: usize = 300;
/// URLs longer than this are left out of the summary (the job read has them).
pub const MAX_URL: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub job_id: String,
    pub owner: String,
    pub provider: String,
    pub status: JobStatus,
    /// The record's revision this summary was made from: a page keeps the
    /// newest, whatever order concurrent writers reach it in.
    pub rev: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_name: Option<String>,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_ms: Option<u64>,
    pub updated_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    pub cost_estimated: bool,
    pub hardware_profile: String,
    pub hardware_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker_run_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// A re-run's attempt number and the job it re-ran (first runs: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
}

fn cut(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| match s.char_indices().nth(MAX_TEXT) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.clone(),
    })
}

impl Summary {
    pub fn of(job: &Job) -> Self {
        Summary {
            job_id: job.job_id.clone(),
            owner: job.owner.clone(),
            provider: job.provider.clone(),
            status: job.status,
            rev: job.rev,
            config_name: cut(&job.config_name),
            created_ms: job.created_ms,
            started_ms: job.started_ms,
            completed_ms: job.completed_ms,
            updated_ms: job.updated_ms,
            cost_usd: job.cost_usd,
            cost_estimated: job.cost_estimated,
            hardware_profile: cut(&Some(job.hardware_profile.clone())).unwrap_or_default(),
            hardware_type: cut(&Some(job.hardware_type.clone())).unwrap_or_default(),
            error_message: cut(&job.error_message),
            output_url: job.output_url.clone().filter(|u| u.len() <= MAX_URL),
            prediction_id: cut(&job.prediction_id),
            provider_status: cut(&job.provider_status),
            tracker_run_name: cut(&job.tracker_run_name),
            progress: job.progress.clone().map(|mut p| {
                p.stage = cut(&p.stage);
                p
            }),
            attempt: job.lineage.as_ref().map(|l| l.attempt),
            retry_of: job.lineage.as_ref().map(|l| l.retry_of.clone()),
        }
    }

    /// Since when the job has been running, if it has started and not
    /// finished: its list item's `duration_seconds` grows until then, so it
    /// is added when the item is read, not when it is stored.
    pub fn running_since_ms(&self) -> Option<u64> {
        self.started_ms.filter(|_| self.completed_ms.is_none())
    }

    fn duration(&self) -> Duration {
        match (self.started_ms, self.completed_ms) {
            (Some(_), None) => Duration::AtRead,
            (Some(start), Some(end)) => Duration::Known(Some(seconds_between(start, end))),
            (None, _) => Duration::Known(None),
        }
    }

    /// A list item: the single-job view's fields that a list shows, by the
    /// same names (see `Job::to_api`), serialised straight from the summary.
    /// A running job's `duration_seconds` is left for the reader to add
    /// ([`Summary::running_since_ms`]).
    pub fn item(&self) -> ListItem<'_> {
        ListItem {
            job_id: &self.job_id,
            job_type: "cloud",
            provider: &self.provider,
            status: self.status.as_str(),
            config_name: self.config_name.as_deref(),
            attempt: self.attempt.unwrap_or(1),
            retry_of: self.retry_of.as_deref(),
            created_at: rfc3339(self.created_ms),
            started_at: self.started_ms.map(rfc3339),
            completed_at: self.completed_ms.map(rfc3339),
            updated_at: rfc3339(self.updated_ms),
            cost_usd: self.cost_usd,
            cost_estimated: self.cost_estimated,
            hardware_type: &self.hardware_type,
            error_message: self.error_message.as_deref(),
            output_url: self.output_url.as_deref(),
            user_id: &self.owner,
            is_terminal: self.status.is_terminal(),
            is_active: !self.status.is_terminal(),
            duration_seconds: self.duration(),
            progress: self.progress.as_ref().map(|p| ProgressView {
                stage: p.stage.as_deref(),
                step: p.step,
                total_steps: p.total_steps,
                percent: p.percent,
                epoch: p.epoch,
                total_epochs: p.total_epochs,
                loss: p.loss,
                eta_seconds: p.eta_seconds,
                updated_at: rfc3339(p.updated_ms),
            }),
            metadata: Metadata {
                prediction_id: self.prediction_id.as_deref(),
                provider_status: self.provider_status.as_deref(),
                hardware_profile: &self.hardware_profile,
                tracker_run_name: self.tracker_run_name.as_deref(),
            },
        }
    }
}

/// A list item as JSON (OpenAPI `JobSummary`).
#[derive(Debug, Serialize)]
pub struct ListItem<'a> {
    pub job_id: &'a str,
    pub job_type: &'static str,
    pub provider: &'a str,
    pub status: &'static str,
    pub config_name: Option<&'a str>,
    pub attempt: u32,
    pub retry_of: Option<&'a str>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub updated_at: String,
    pub cost_usd: Option<f64>,
    pub cost_estimated: bool,
    pub hardware_type: &'a str,
    pub error_message: Option<&'a str>,
    pub output_url: Option<&'a str>,
    pub user_id: &'a str,
    pub is_terminal: bool,
    pub is_active: bool,
    #[serde(skip_serializing_if = "Duration::at_read")]
    pub duration_seconds: Duration,
    pub progress: Option<ProgressView<'a>>,
    pub metadata: Metadata<'a>,
}

/// A list item's `duration_seconds`: known when the item is made (`null`
/// before the job starts, fixed once it ends), or added when it is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Duration {
    Known(Option<f64>),
    AtRead,
}

impl Duration {
    fn at_read(&self) -> bool {
        *self == Duration::AtRead
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Duration::Known(secs) => secs.serialize(serializer),
            Duration::AtRead => serializer.serialize_none(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProgressView<'a> {
    pub stage: Option<&'a str>,
    pub step: Option<u64>,
    pub total_steps: Option<u64>,
    pub percent: Option<f64>,
    pub epoch: Option<u64>,
    pub total_epochs: Option<u64>,
    pub loss: Option<f64>,
    pub eta_seconds: Option<u64>,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct Metadata<'a> {
    pub prediction_id: Option<&'a str>,
    pub provider_status: Option<&'a str>,
    pub hardware_profile: &'a str,
    pub tracker_run_name: Option<&'a str>,
}
