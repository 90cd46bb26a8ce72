//! One sync pass (cron, or `POST /api/cloud/jobs/sync`): refresh active jobs
//! from Replicate, adopt predictions whose create answer was lost, and fail
//! jobs whose prediction never appeared.
//!
//! Budget per pass: at most [`REFRESH_BATCH`] prediction GETs (least recently
//! refreshed first) plus at most [`LIST_PAGES`] pages of `GET /v1/predictions`
//! (only when a job awaits adoption) — 23 outbound requests. Fermyon Cloud
//! allows 500 per hour per app, so schedule a pass every 5 minutes (276/h at
//! most), and each pass stays far below its 30 s request limit. Due user
//! notifications (at most 20 a pass) are delivered at the end of a pass.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::jobs::lifecycle::{apply_prediction, refresh};
use crate::jobs::record::JobStatus;
use crate::jobs::store::JobStore;
use crate::kernel::http::HttpClient;
use crate::providers::catalog::{TRAINER_OWNER, TRAINER_PREFIX};
use crate::providers::replicate::ReplicateClient;
use crate::providers::settings::ProviderSettings;

pub const REFRESH_BATCH: usize = 20;
pub const LIST_PAGES: usize = 3;
/// A job whose prediction has not shown up after this is failed.
pub const ADOPT_WINDOW_MS: u64 = 15 * 60 * 1000;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SyncReport {
    pub synced: usize,
    pub updated: usize,
    pub adopted: usize,
    pub abandoned: usize,
    pub notifications_sent: usize,
    pub notifications_failed: usize,
    /// Finished jobs deleted by retention ([`crate::jobs::retention`]).
    pub pruned: usize,
    pub errors: Vec<Value>,
}

impl SyncReport {
    /// Adds the retention step's outcome to this pass's report.
    pub fn add_retention(&mut self, r: crate::jobs::retention::PruneReport) {
        self.pruned += r.pruned;
        self.errors.extend(r.errors);
    }

    pub fn to_json(&self) -> Value {
        json!({
            "synced": self.synced,
            "updated": self.updated,
            "adopted": self.adopted,
            "abandoned": self.abandoned,
            "notifications_sent": self.notifications_sent,
            "notifications_failed": self.notifications_failed,
            "pruned": self.pruned,
            "errors": self.errors,
        })
    }
}

/// The scheduled pass (cron or `POST /api/cloud/jobs/sync`): refresh active
/// jobs, deliver notifications, then apply retention (`retention_days`, as
/// the variable gives it), so a job that just ended is judged by its end.
pub async fn scheduled_pass<H: HttpClient>(
    store: &JobStore<'_>,
    http: &H,
    settings: &ProviderSettings,
    retention_days: Option<&str>,
    now_ms: u64,
) -> SyncReport {
    let mut report = run(store, http, settings, now_ms).await;
    report.add_retention(crate::jobs::retention::run(store, retention_days, now_ms));
    report
}

fn is_trainer(p: &Value) -> bool {
    p.get("model")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with(&format!("{TRAINER_OWNER}/{TRAINER_PREFIX}")))
}

pub async fn run<H: HttpClient>(
    store: &JobStore<'_>,
    http: &H,
    settings: &ProviderSettings,
    now_ms: u64,
) -> SyncReport {
    let mut report = SyncReport::default();
    // An upgraded installation's jobs are listed (and so synced) from here on.
    if let Err(e) = crate::jobs::legacy_index::migrate(store) {
        report.errors.push(json!({"error": e.message}));
    }
    let active: Vec<String> = match store.active() {
        Ok(active) => active.into_iter().map(|(id, _)| id).collect(),
        Err(e) => {
            report.errors.push(json!({"error": e.message}));
            return report;
        }
    };
    let mut with_prediction = Vec::new();
    let mut orphans = Vec::new();
    for id in active {
        match store.get(&id) {
            Ok(Some(job)) if job.prediction_id.is_some() => with_prediction.push(job),
            Ok(Some(job)) if job.input_sha256.is_some() => orphans.push(job),
            Ok(_) => {}
            Err(e) => report
                .errors
                .push(json!({"job_id": id, "error": e.message})),
        }
    }
    with_prediction.sort_by_key(|j| j.refreshed_ms.unwrap_or(0));
    let forced = settings.always_refresh();
    for job in with_prediction.into_iter().take(REFRESH_BATCH) {
        let (id, before) = (job.job_id.clone(), (job.status, job.progress.clone()));
        let (after, error) = refresh(store, http, &forced, job, now_ms).await;
        report.synced += 1;
        if let Some(e) = error {
            report.errors.push(json!({"job_id": id, "error": e}));
        } else if (after.status, after.progress) != before {
            report.updated += 1;
        }
    }
    if !orphans.is_empty() {
        adopt(store, http, settings, orphans, now_ms, &mut report).await;
    }
    let (sent, failed) = crate::notify::deliver_due(store.kv(), http, now_ms).await;
    report.notifications_sent = sent;
    report.notifications_failed = failed;
    report
}

async fn adopt<H: HttpClient>(
    store: &JobStore<'_>,
    http: &H,
    settings: &ProviderSettings,
    mut orphans: Vec<crate::jobs::record::Job>,
    now_ms: u64,
    report: &mut SyncReport,
) {
    let client = match ReplicateClient::new(http, &settings.api_base, &settings.token) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(json!({"error": e.message()}));
            return;
        }
    };
    let mut next: Option<String> = None;
    for _ in 0..LIST_PAGES {
        let (page, more) = match client.list_predictions(next.as_deref()).await {
            Ok(x) => x,
            Err(e) => {
                report.errors.push(json!({"error": e.message()}));
                return;
            }
        };
        for p in page.iter().filter(|p| is_trainer(p)) {
            let Some(input) = p.get("input") else {
                continue;
            };
            let sha = hex::encode(Sha256::digest(input.to_string().as_bytes()));
            let Some(pos) = orphans
                .iter()
                .position(|j| j.input_sha256.as_deref() == Some(&sha))
            else {
                continue;
            };
            let job = orphans.remove(pos);
            // A list item has no logs; the next refresh brings them.
            let adopted = store.update::<()>(&job.job_id, |j| {
                if j.prediction_id.is_none() {
                    j.prediction_id = p.get("id").and_then(Value::as_str).map(str::to_string);
                    j.error_message = None;
                    apply_prediction(j, p, now_ms);
                }
                Ok(())
            });
            match adopted {
                Ok(_) => report.adopted += 1,
                Err(e) => report
                    .errors
                    .push(json!({"job_id": job.job_id, "error": format!("{e:?}")})),
            }
        }
        if orphans.is_empty() {
            return;
        }
        match more {
            Some(url) => next = Some(url),
            None => break,
        }
    }
    for job in orphans
        .into_iter()
        .filter(|j| now_ms >= j.created_ms + ADOPT_WINDOW_MS)
    {
        let failed = store.update::<()>(&job.job_id, |j| {
            if j.prediction_id.is_none() && !j.status.is_terminal() {
                j.error_message =
                    Some("Replicate never confirmed this job's prediction; submit it again".into());
                let _ = j.transition(JobStatus::Failed, now_ms);
            }
            Ok(())
        });
        if failed.is_ok() {
            report.abandoned += 1;
        }
    }
}
