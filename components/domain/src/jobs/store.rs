//! Job storage in the key-value store.
//!
//! Layout (also in docs/storage.md):
//! - `job:<id>` — the job record (JSON). Created once (ids are random UUIDs),
//!   then only changed by compare-and-swap ([`crate::kernel::kv::update`]) so
//!   concurrent writers (submit, webhook, sync, cancel) never lose an update.
//! - the list's index: job summaries in fixed-size pages per scope, a head
//!   with exact counts, and the set of active jobs ([`crate::jobs::pages`]).
//!   A list request reads the head and one or two pages, never a record; a
//!   change to a job rewrites its summary in its one page.
//! - `joblogs:<id>` — the job's logs (`{"dropped": bytes, "text": ...}`), the
//!   last 768 KiB kept so a value stays under Fermyon Cloud's 1 MB.

use crate::billing::metrics::{Outcome, Settlement};
use crate::jobs::entry::Entry;
use crate::jobs::pages::{self, Filter, Scope};
use crate::jobs::record::{Job, JobStatus, Slots};
use crate::jobs::summary::Summary;
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvError, KvStore, UpdateError, get_json, set_json};
use crate::notify::JobEvent;

pub use super::logs::{LogQuery, LogSlice, MAX_LOG_BYTES, StoredLogs};

fn job_key(id: &str) -> String {
    format!("job:{id}")
}

fn logs_key(id: &str) -> String {
    format!("joblogs:{id}")
}

pub struct JobStore<'a> {
    kv: &'a dyn KvStore,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `None`: every owner's jobs (needs `job.view.all`).
    pub owner: Option<String>,
    pub status: Option<JobStatus>,
    pub provider: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

impl<'a> JobStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn kv(&self) -> &'a dyn KvStore {
        self.kv
    }

    pub fn get(&self, id: &str) -> Result<Option<Job>, ApiError> {
        get_json(self.kv, &job_key(id)).map_err(ApiError::from)
    }

    /// Stores a new job and lists it: a slot in each scope's pages (kept in
    /// the record, so later changes go straight to its page), its place
    /// among the active jobs, the record, then its count and summary.
    ///
    /// The order is what a submit that dies half-way leaves behind: the job
    /// is active before its record exists, so a record that was written is
    /// always one the sync follows (and settles, and fails if it never
    /// reached Replicate); it is counted only once its record exists, so a
    /// failed write leaves no phantom in the list's totals.
    pub fn create(&self, job: &mut Job) -> Result<(), ApiError> {
        let summary = Summary::of(job);
        let slots = Slots {
            all: pages::slot(self.kv, Scope::All)?,
            owner: pages::slot(self.kv, Scope::Owner(&job.owner))?,
        };
        job.list_pages = Some(slots);
        let active = !job.status.is_terminal();
        if active {
            pages::set_active(self.kv, &job.job_id, &job.owner, true)?;
        }
        if let Err(e) = set_json(self.kv, &job_key(&job.job_id), job) {
            if active {
                let _ = pages::set_active(self.kv, &job.job_id, &job.owner, false);
            }
            return Err(e.into());
        }
        // The job exists from here: a submit that failed now would give its
        // reservation back while the job (active, holding it) settles it
        // again when it ends. So listing is best effort; the job's next
        // change puts its entry in its page again.
        let entry = Entry::of(&summary);
        for scope in [Scope::All, Scope::Owner(&job.owner)] {
            let _ = pages::count(self.kv, scope, &summary);
            let _ = pages::put(self.kv, scope, slots.of(scope), &entry);
        }
        Ok(())
    }

    /// Changes a job through `f` without losing concurrent updates; keeps the
    /// indexes' status in step. `f` may refuse with an error of its own.
    pub fn update<E>(
        &self,
        id: &str,
        mut f: impl FnMut(&mut Job) -> Result<(), E>,
    ) -> Result<Job, UpdateError<E>> {
        enum Refusal<E> {
            NotAJob,
            By(E),
        }
        let mut before = None;
        let bytes = kv::update(self.kv, &job_key(id), |current| {
            let mut job: Job = serde_json::from_slice(current).map_err(|_| Refusal::NotAJob)?;
            let was = Summary::of(&job);
            f(&mut job).map_err(Refusal::By)?;
            let mut now = Summary::of(&job);
            now.rev = was.rev;
            if now != was {
                // Only a change the list shows gets a new revision (and a
                // page write); a refresh that changes nothing visible does not.
                job.rev += 1;
            }
            before = Some(was);
            Ok(serde_json::to_vec(&job).expect("job serialises"))
        })
        .map_err(|e| match e {
            UpdateError::Rejected(Refusal::By(e)) => UpdateError::Rejected(e),
            UpdateError::Rejected(Refusal::NotAJob) => {
                UpdateError::Store(KvError::new(format!("{id}: record is not a job")))
            }
            UpdateError::Missing => UpdateError::Missing,
            UpdateError::Contended => UpdateError::Contended,
            UpdateError::Store(s) => UpdateError::Store(s),
        })?;
        let job: Job = serde_json::from_slice(&bytes).expect("just written");
        let Some(was) = before else {
            return Ok(job);
        };
        if was.rev != job.rev {
            self.relist(&job, was.status)
                .map_err(|e| UpdateError::Store(KvError::new(e.message)))?;
        }
        if was.status != job.status {
            // Status changes are what users subscribe to; failing to queue a
            // notification must not fail the job update itself.
            let view = || job.to_api(job.updated_ms);
            let event = JobEvent {
                job_id: &job.job_id,
                owner: &job.owner,
                status: job.status.as_str(),
                view: &view,
            };
            let _ = crate::notify::enqueue(self.kv, &event, job.updated_ms);
            // Terminal statuses are reached once: settle cost and metrics then.
            if let Some(settlement) = settlement(&job) {
                let _ = crate::billing::metrics::settle(self.kv, &settlement);
                // Its running slot frees and its quota spend becomes its cost.
                if let Some(hold) = &job.quota_hold {
                    let _ =
                        crate::billing::quotas::usage::settle(self.kv, hold, settlement.cost_usd);
                }
                crate::kernel::event_log::record(
                    self.kv,
                    crate::kernel::event_log::NewEvent {
                        kind: "job.finished",
                        actor: "system",
                        target: Some(&job.job_id),
                        owner: Some(&job.owner),
                        detail: serde_json::json!({"status": job.status.as_str(),
                            "cost_usd": job.cost_usd, "error": job.error_code}),
                    },
                    job.updated_ms,
                );
            }
        }
        Ok(job)
    }

    /// Puts the job's summary in its pages again (no count moves): after a
    /// store outage cut an update between its record and its listing, the
    /// retried update changes nothing visible, so it would not relist.
    pub fn list_again(&self, job: &Job) -> Result<(), ApiError> {
        let Some(slots) = job.list_pages else {
            return Ok(());
        };
        let entry = Entry::of(&Summary::of(job));
        for scope in [Scope::All, Scope::Owner(&job.owner)] {
            pages::put(self.kv, scope, slots.of(scope), &entry)?;
        }
        Ok(())
    }

    /// Puts a changed job's summary in its pages; a status change also moves
    /// its count, and a finished job leaves the active set.
    fn relist(&self, job: &Job, was: JobStatus) -> Result<(), ApiError> {
        let Some(slots) = job.list_pages else {
            return Ok(()); // not listed (a record from before the paged index)
        };
        let entry = Entry::of(&Summary::of(job));
        for scope in [Scope::All, Scope::Owner(&job.owner)] {
            pages::put(self.kv, scope, slots.of(scope), &entry)?;
            if was != job.status {
                pages::recount(self.kv, scope, &job.provider, was, job.status)?;
            }
        }
        if was != job.status && job.status.is_terminal() {
            pages::set_active(self.kv, &job.job_id, &job.owner, false)?;
        }
        Ok(())
    }

    /// Deletes a job with everything that is only its: index entries, logs,
    /// stored outputs, and its idempotency record once past its 24 h (a
    /// younger one stays: a replay then finds the job gone and starts over).
    pub fn delete(&self, job: &Job, now_ms: u64) -> Result<(), ApiError> {
        if let Some(record) = &job.idempotency_record {
            crate::jobs::idempotency::remove_expired(self.kv, record, &job.job_id, now_ms)?;
        }
        if let Some(slots) = job.list_pages {
            let summary = Summary::of(job);
            for scope in [Scope::All, Scope::Owner(&job.owner)] {
                pages::remove(self.kv, scope, slots.of(scope), &summary)?;
            }
        }
        pages::set_active(self.kv, &job.job_id, &job.owner, false)?;
        self.kv.delete(&logs_key(&job.job_id))?;
        // Its stored outputs go with it.
        crate::storage::objects::ObjectStore::new(self.kv, u64::MAX)
            .delete_prefix(crate::storage::BUCKET, &format!("{}/", job.job_id))?;
        self.kv
            .delete(&job_key(&job.job_id))
            .map_err(ApiError::from)
    }

    /// `(id, owner)` of every job not yet finished, oldest first.
    pub fn active(&self) -> Result<Vec<(String, String)>, ApiError> {
        Ok(pages::active(self.kv)?)
    }

    /// How many of `owner`'s jobs (everyone's for `None`) are in each active
    /// status, for metrics: from the head's counts, no page read.
    pub fn active_counts(&self, owner: Option<&str>) -> Result<Vec<(&'static str, u64)>, ApiError> {
        let head = pages::head(self.kv, scope(owner))?;
        Ok(crate::jobs::record::ALL_STATUSES
            .iter()
            .filter(|s| !s.is_terminal())
            .map(|s| (s.as_str(), head.count(Some(*s), None)))
            .collect())
    }

    /// The oldest jobs first, from at most `max_pages` pages (for retention).
    pub fn oldest(&self, max_pages: u64) -> Result<Vec<Entry<'static>>, ApiError> {
        Ok(pages::oldest(self.kv, Scope::All, max_pages)?)
    }

    /// Newest first; `total` counts every match, not just this page. Reads
    /// the scope's head (exact counts) and the pages that hold the page asked
    /// for, never a job record.
    pub fn list(&self, q: &ListQuery) -> Result<(Vec<Entry<'static>>, usize), ApiError> {
        let mut out = Vec::new();
        let total = self.list_into(q, |e| out.push(e.clone().into_owned()))?;
        Ok((out, total))
    }

    /// [`JobStore::list`] handing each entry to `take` as it is read (in
    /// place, borrowing the page); returns the total.
    pub fn list_into(&self, q: &ListQuery, take: impl FnMut(&Entry)) -> Result<usize, ApiError> {
        let scope = scope(q.owner.as_deref());
        let head = pages::head(self.kv, scope)?;
        let filter = Filter {
            status: q.status,
            provider: q.provider.as_deref(),
        };
        let total = pages::scan(self.kv, scope, &head, filter, (q.offset, q.limit), take)?;
        Ok(total as usize)
    }

    /// Stores a job's whole log text so far; never replaces it with a shorter
    /// (older) one (`logs::store_growing`).
    pub fn set_logs(&self, id: &str, text: &str) -> Result<(), ApiError> {
        super::logs::store_growing(self.kv, &logs_key(id), text).map_err(ApiError::from)
    }

    pub fn logs(&self, id: &str) -> Result<StoredLogs, ApiError> {
        Ok(get_json(self.kv, &logs_key(id))?.unwrap_or_default())
    }
}

fn scope(owner: Option<&str>) -> Scope<'_> {
    owner.map_or(Scope::All, Scope::Owner)
}

/// What billing settles for a finished job; `None` while it is active.
fn settlement(job: &Job) -> Option<Settlement<'_>> {
    let outcome = match job.status {
        JobStatus::Completed => Outcome::Completed,
        JobStatus::Failed => Outcome::Failed,
        JobStatus::Cancelled => Outcome::Cancelled,
        _ => return None,
    };
    let ended_ms = job.ended_ms();
    Some(Settlement {
        owner: &job.owner,
        outcome,
        cost_usd: job.cost_usd.unwrap_or(0.0),
        reservation: job.reservation.as_ref(),
        ended_ms,
        duration_seconds: job.duration_seconds(ended_ms),
        total_steps: job.progress.as_ref().and_then(|p| p.total_steps),
        hardware_profile: &job.hardware_profile,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jobs::record::JobStatus;
    use crate::kernel::kv::MemoryKv;
    use serde_json::json;

    pub(crate) fn job(id: &str, owner: &str) -> Job {
        Job {
            job_id: id.into(),
            owner: owner.into(),
            provider: "replicate".into(),
            status: JobStatus::Pending,
            config_name: None,
            created_ms: 1,
            started_ms: None,
            completed_ms: None,
            updated_ms: 1,
            refreshed_ms: None,
            cost_usd: None,
            cost_estimated: false,
            hardware_profile: "h100".into(),
            hardware_type: "H100".into(),
            error_message: None,
            output_url: None,
            prediction_id: None,
            provider_status: None,
            model: None,
            version: None,
            tracker_run_name: None,
            webhook_url: None,
            input_sha256: None,
            dataset_file_url: None,
            config: json!({}),
            dataloader_config: json!([]),
            progress: None,
            loss_history: Vec::new(),
            webhook_ids: Vec::new(),
            cost_per_second: None,
            reservation: None,
            quota_hold: None,
            team_id: None,
            delivery: None,
            idempotency_record: None,
            rev: 0,
            list_pages: None,
            logs_pending: false,
            lineage: None,
            max_runtime_minutes: None,
            deadline_ms: None,
            error_code: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn lists_newest_first_with_filters_and_true_totals() {
        let kv = MemoryKv::default();
        let store = JobStore::new(&kv);
        for i in 0..5 {
            store
                .create(&mut job(
                    &format!("j{i}"),
                    if i % 2 == 0 { "a" } else { "b" },
                ))
                .unwrap();
        }
        store
            .update::<()>("j3", |j| {
                j.transition(JobStatus::Running, 5).unwrap();
                Ok(())
            })
            .unwrap();
        let (jobs, total) = store
            .list(&ListQuery {
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(total, 5);
        assert_eq!(
            jobs.iter().map(|j| &*j.job_id).collect::<Vec<_>>(),
            ["j4", "j3"]
        );
        let (jobs, total) = store
            .list(&ListQuery {
                owner: Some("b".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((total, jobs.len()), (2, 2));
        let (jobs, total) = store
            .list(&ListQuery {
                status: Some(JobStatus::Running),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((total, &*jobs[0].job_id), (1, "j3"));
        let (jobs, _) = store
            .list(&ListQuery {
                limit: 2,
                offset: 4,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(jobs[0].job_id, "j0");
        store.delete(&store.get("j3").unwrap().unwrap(), 0).unwrap();
        assert_eq!(
            store
                .list(&ListQuery {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap()
                .1,
            4
        );
        assert!(store.get("j3").unwrap().is_none());
    }

    #[test]
    fn log_slices_are_incremental_and_keep_absolute_offsets() {
        let logs = StoredLogs::keep_tail("a\nb\nc\n");
        let all = logs.slice(None, None);
        assert_eq!(
            (all.text.as_str(), all.offset, all.next_offset),
            ("a\nb\nc\n", 0, 6)
        );
        let new = StoredLogs::keep_tail("a\nb\nc\nd\n").slice(Some(all.next_offset), None);
        assert_eq!((new.text.as_str(), new.offset), ("d\n", 6));
        let tail = logs.slice(None, Some(2));
        assert_eq!((tail.text.as_str(), tail.offset), ("b\nc\n", 2));
        let big = "x".repeat(MAX_LOG_BYTES + 10);
        let kept = StoredLogs::keep_tail(&big);
        assert_eq!((kept.dropped, kept.total_bytes()), (10, MAX_LOG_BYTES + 10));
        assert!(kept.slice(Some(0), None).truncated);
        assert_eq!(kept.slice(Some(0), None).offset, 10);
    }
}
