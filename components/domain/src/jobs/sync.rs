//! One sync pass (cron, or `POST /api/cloud/jobs/sync`): bring every active
//! job up to date with Replicate, adopt predictions whose create answer was
//! lost, and fail jobs whose prediction never appeared.
//!
//! Replicate's list (`GET /v1/predictions`, 100 a page, newest first) tells
//! the status, metrics and output of many predictions per request, so a pass
//! reads pages back only as far as the oldest active job and applies what
//! changed from them: 60 active jobs cost one request, not 60. It then GETs
//! (for logs and progress) the jobs that changed, then those it could not see
//! in the pages it read, then running ones least recently refreshed, while
//! its request budget lasts (`sync_request_budget`, [`DEFAULT_BUDGET`]: with a
//! pass every 5 minutes, 12 × 25 = 300 requests an hour, under Fermyon Cloud's
//! 500). What the budget left out is reported (`skipped`) and comes next pass.
//! Due user notifications (at most 20 a pass) are delivered at the end.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::jobs::lifecycle::{apply_prediction, refresh};
use crate::jobs::record::{Job, JobStatus};
use crate::jobs::store::JobStore;
use crate::kernel::clock::parse_rfc3339_ms;
use crate::kernel::counters::{Event, count};
use crate::kernel::http::HttpClient;
use crate::kernel::kv::UpdateError;
use crate::providers::catalog::{TRAINER_OWNER, TRAINER_PREFIX};
use crate::providers::replicate::ReplicateClient;
use crate::providers::settings::ProviderSettings;

/// Outbound requests one pass may make unless `sync_request_budget` says otherwise.
pub const DEFAULT_BUDGET: usize = 25;
/// The most an operator may allow (a pass must stay within a 30 s request).
pub const MAX_BUDGET: usize = 200;
/// A job whose prediction has not shown up after this is failed.
pub const ADOPT_WINDOW_MS: u64 = 15 * 60 * 1000;
/// Provider and server clocks may disagree by this much: list pages are read
/// this far past the oldest active job's creation.
const CLOCK_SLACK_MS: u64 = 5 * 60 * 1000;

/// The request budget an operator configured, within 1 ..= [`MAX_BUDGET`].
pub fn budget(configured: Option<&str>) -> usize {
    configured
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(DEFAULT_BUDGET, |b| b.clamp(1, MAX_BUDGET))
}

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
    /// Abandoned multipart uploads aborted (scheduled passes only).
    pub uploads_expired: usize,
    /// Requests this pass made to Replicate, and the most it could.
    pub provider_requests: usize,
    pub request_budget: usize,
    /// Active jobs whose news the budget left for the next pass.
    pub skipped: usize,
    /// Ended jobs whose final logs wait for a later fetch.
    pub logs_pending: usize,
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
            "uploads_expired": self.uploads_expired,
            "provider_requests": self.provider_requests,
            "request_budget": self.request_budget,
            "skipped": self.skipped,
            "logs_pending": self.logs_pending,
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
    request_budget: usize,
    now_ms: u64,
) -> SyncReport {
    let mut report = run(store, http, settings, request_budget, now_ms).await;
    report.add_retention(crate::jobs::retention::run(store, retention_days, now_ms));
    // Multipart uploads abandoned mid-way (a trainer or browser that went
    // away) hold their parts, and datasets' quota, until expired here.
    match crate::storage::datasets::expire_stale_uploads(store.kv(), now_ms) {
        Ok(n) => report.uploads_expired = n,
        Err(e) => report.errors.push(json!({"error": e.to_string()})),
    }
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
    request_budget: usize,
    now_ms: u64,
) -> SyncReport {
    let mut report = SyncReport {
        request_budget,
        ..SyncReport::default()
    };
    // An upgraded installation's jobs are listed (and so synced) from here on.
    if let Err(e) = crate::jobs::legacy_index::migrate(store) {
        report.errors.push(json!({"error": e.message}));
    }
    match store.active() {
        Ok(active) => {
            let ids: Vec<String> = active.into_iter().map(|(id, _)| id).collect();
            if !ids.is_empty() {
                let mut pass = Pass {
                    store,
                    settings,
                    now_ms,
                    report: &mut report,
                };
                pass.jobs(http, ids).await;
            }
        }
        Err(e) => report.errors.push(json!({"error": e.message})),
    }
    // Channel messages link to the job in the UI at the public origin.
    let public_url = settings.public_url.as_deref();
    let (sent, failed) =
        crate::notify::deliver_due_linked(store.kv(), http, public_url, now_ms).await;
    report.notifications_sent = sent;
    report.notifications_failed = failed;
    let kv = store.kv();
    count(kv, Event::SyncPass, 1);
    count(kv, Event::SyncError, report.errors.len() as u64);
    count(
        kv,
        Event::SyncProviderRequest,
        report.provider_requests as u64,
    );
    count(kv, Event::Notification("sent"), sent as u64);
    count(kv, Event::Notification("failed"), failed as u64);
    report
}

/// What one pass knows about the active jobs as it reads the list.
#[derive(Default)]
struct Found {
    /// Status changed at Replicate (applied from the list): GET for logs.
    changed: Vec<Job>,
    /// Seen, unchanged, still running: GET for progress if budget remains.
    running: Vec<Job>,
    /// Not in the pages read: GET to learn anything.
    unseen: Vec<Job>,
    /// No prediction id yet: matched by the hash of the input we sent.
    orphans: Vec<Job>,
    /// The pages reached back past every active job (or the list's end).
    covered: bool,
}

struct Pass<'s, 'r> {
    store: &'s JobStore<'s>,
    settings: &'s ProviderSettings,
    now_ms: u64,
    report: &'r mut SyncReport,
}

impl Pass<'_, '_> {
    fn spend(&mut self) -> bool {
        if self.report.provider_requests >= self.report.request_budget {
            return false;
        }
        self.report.provider_requests += 1;
        true
    }

    fn error(&mut self, job_id: Option<&str>, message: impl Into<String>) {
        let message = message.into();
        self.report.errors.push(match job_id {
            Some(id) => json!({"job_id": id, "error": message}),
            None => json!({"error": message}),
        });
    }

    async fn jobs<H: HttpClient>(&mut self, http: &H, ids: Vec<String>) {
        let mut found = Found::default();
        let mut stalled = Vec::new();
        for id in ids {
            match self.store.get(&id) {
                Ok(Some(job)) if job.prediction_id.is_some() => found.unseen.push(job),
                Ok(Some(job)) if job.input_sha256.is_some() => found.orphans.push(job),
                Ok(Some(job)) => stalled.push(job),
                Ok(None) => {}
                Err(e) => self.error(Some(&id), e.message),
            }
        }
        self.fail_stalled(&stalled);
        let client = match ReplicateClient::new(http, &self.settings.api_base, &self.settings.token)
        {
            Ok(c) => c,
            Err(e) => return self.error(None, e.message()),
        };
        self.read_list(&client, &mut found).await;
        self.abandon(&found);
        let Found {
            changed,
            mut running,
            mut unseen,
            ..
        } = found;
        unseen.sort_by_key(|j| j.refreshed_ms.unwrap_or(0));
        running.sort_by_key(|j| j.refreshed_ms.unwrap_or(0));
        let forced = self.settings.always_refresh();
        // (job, counted as updated already, its news unknown without a GET)
        let queue = changed
            .into_iter()
            .map(|j| (j, true, false))
            .chain(unseen.into_iter().map(|j| (j, false, true)))
            .chain(running.into_iter().map(|j| (j, false, false)));
        for (job, counted, unknown) in queue {
            if !self.spend() {
                self.report.skipped += usize::from(unknown);
                self.report.logs_pending += usize::from(job.logs_pending);
                continue;
            }
            let (id, before) = (job.job_id.clone(), (job.status, job.progress.clone()));
            let (after, error) = refresh(self.store, http, &forced, job, self.now_ms).await;
            self.report.synced += 1;
            match error {
                Some(e) => self.error(Some(&id), e),
                None if !counted && (after.status, after.progress) != before => {
                    self.report.updated += 1
                }
                None => {}
            }
        }
    }

    /// Reads list pages newest first until every active job was seen, the
    /// pages reach back past the oldest one, or the budget is spent; applies
    /// each change it sees.
    async fn read_list<H: HttpClient>(
        &mut self,
        client: &ReplicateClient<'_, H>,
        found: &mut Found,
    ) {
        let oldest = found
            .unseen
            .iter()
            .chain(&found.orphans)
            .map(|j| j.created_ms)
            .min()
            .unwrap_or(self.now_ms);
        let mut next: Option<String> = None;
        while !(found.unseen.is_empty() && found.orphans.is_empty()) {
            if !self.spend() {
                return;
            }
            let (page, more) = match client.list_predictions(next.as_deref()).await {
                Ok(x) => x,
                Err(e) => return self.error(None, e.message()),
            };
            let mut reached = false;
            for p in &page {
                self.seen(p, found);
                let created = p
                    .get("created_at")
                    .and_then(Value::as_str)
                    .and_then(parse_rfc3339_ms);
                reached |= created.is_some_and(|c| c + CLOCK_SLACK_MS < oldest);
            }
            match more {
                Some(url) if !reached => next = Some(url),
                _ => {
                    found.covered = true;
                    return;
                }
            }
        }
        found.covered = true;
    }

    /// One list item: an active job's news, or an orphan's prediction.
    fn seen(&mut self, p: &Value, found: &mut Found) {
        let id = p.get("id").and_then(Value::as_str);
        if let Some(pos) = found
            .unseen
            .iter()
            .position(|j| j.prediction_id.as_deref() == id)
        {
            let job = found.unseen.remove(pos);
            let status = p.get("status").and_then(Value::as_str);
            if status == job.provider_status.as_deref() {
                if !job.status.is_terminal() {
                    found.running.push(job);
                }
                return;
            }
            match self.store.update::<()>(&job.job_id, |j| {
                apply_prediction(j, p, self.now_ms);
                Ok(())
            }) {
                Ok(updated) => {
                    self.report.updated += 1;
                    found.changed.push(updated);
                }
                Err(e) => self.error(Some(&job.job_id), e.to_string()),
            }
            return;
        }
        if found.orphans.is_empty() || !is_trainer(p) {
            return;
        }
        let Some(input) = p.get("input") else {
            return;
        };
        let sha = hex::encode(Sha256::digest(input.to_string().as_bytes()));
        let Some(pos) = found
            .orphans
            .iter()
            .position(|j| j.input_sha256.as_deref() == Some(&sha))
        else {
            return;
        };
        let job = found.orphans.remove(pos);
        // A list item has no logs; a later refresh brings them.
        let adopted = self.store.update::<()>(&job.job_id, |j| {
            if j.prediction_id.is_none() {
                j.prediction_id = id.map(str::to_string);
                j.error_message = None;
                apply_prediction(j, p, self.now_ms);
            }
            Ok(())
        });
        match adopted {
            Ok(adopted) => {
                self.report.adopted += 1;
                // Its submit may have ended in a store outage with its key
                // still in progress: a retry with that key now replays it.
                if let Some(record) = &adopted.idempotency_record {
                    let _ =
                        crate::jobs::idempotency::settle(self.store.kv(), record, &adopted.job_id);
                }
            }
            Err(e) => self.error(Some(&job.job_id), e.to_string()),
        }
    }

    /// Fails the jobs whose submit stopped before it sent Replicate anything
    /// (no prediction id, no input hash: it died packaging or uploading the
    /// datasets). No prediction can exist for them, so no request is needed;
    /// once past [`ADOPT_WINDOW_MS`] (far longer than any submit runs) they
    /// fail, which gives their spend reservation back.
    fn fail_stalled(&mut self, stalled: &[Job]) {
        let now = self.now_ms;
        for job in stalled
            .iter()
            .filter(|j| now >= j.created_ms.saturating_add(ADOPT_WINDOW_MS))
        {
            let failed = self.store.update::<()>(&job.job_id, |j| {
                if j.prediction_id.is_none() && j.input_sha256.is_none() && !j.status.is_terminal()
                {
                    j.error_message = Some(
                        "The submit stopped before this job reached Replicate (while its \
                         datasets were packaged or uploaded); submit it again"
                            .into(),
                    );
                    let _ = j.transition(JobStatus::Failed, now);
                }
                Ok(())
            });
            match failed {
                Ok(_) => self.report.abandoned += 1,
                Err(UpdateError::Store(e)) => self.error(Some(&job.job_id), e.to_string()),
                Err(_) => self.error(Some(&job.job_id), "the job changed meanwhile; next pass"),
            }
        }
    }

    /// Fails the orphans whose prediction never appeared: only once the pages
    /// read reach back past them, so a spent budget abandons nothing.
    fn abandon(&mut self, found: &Found) {
        if !found.covered {
            self.report.skipped += found.orphans.len();
            return;
        }
        for job in found
            .orphans
            .iter()
            .filter(|j| self.now_ms >= j.created_ms + ADOPT_WINDOW_MS)
        {
            let failed = self.store.update::<()>(&job.job_id, |j| {
                if j.prediction_id.is_none() && !j.status.is_terminal() {
                    j.error_message = Some(
                        "Replicate never confirmed this job's prediction; submit it again".into(),
                    );
                    let _ = j.transition(JobStatus::Failed, self.now_ms);
                }
                Ok(())
            });
            if failed.is_ok() {
                self.report.abandoned += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_budget_is_bounded() {
        assert_eq!(budget(None), DEFAULT_BUDGET);
        assert_eq!(budget(Some("x")), DEFAULT_BUDGET);
        assert_eq!(budget(Some("0")), 1);
        assert_eq!(budget(Some("5000")), MAX_BUDGET);
        assert_eq!(budget(Some(" 40 ")), 40);
    }
}
