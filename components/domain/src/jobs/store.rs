//! Job storage in the key-value store.
//!
//! Layout (also in the README):
//! - `job:<id>` — the job record (JSON). Created once (ids are random UUIDs),
//!   then only changed by compare-and-swap ([`crate::kernel::kv::update`]) so
//!   concurrent writers (submit, webhook, sync, cancel) never lose an update.
//! - `jobidx:all` and `jobidx:u:<owner>` — newest-first arrays of
//!   `[id, status, provider]`. A list request reads one index value, filters
//!   it in memory and then reads only the `limit` job records it returns, so
//!   listing costs O(limit) record reads whatever the number of jobs. Indexes
//!   are created race-free ([`crate::kernel::kv::create_once`]) and changed by CAS.
//! - `joblogs:<id>` — the job's logs (`{"dropped": bytes, "text": ...}`), the
//!   last 768 KiB kept so a value stays under Fermyon Cloud's 1 MB.

use serde::{Deserialize, Serialize};

use crate::billing::metrics::{Outcome, Settlement};
use crate::jobs::record::{Job, JobStatus};
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvError, KvStore, UpdateError, get_json, set_json};
use crate::notify::JobEvent;

pub const MAX_LOG_BYTES: usize = 768 * 1024;

fn job_key(id: &str) -> String {
    format!("job:{id}")
}

fn logs_key(id: &str) -> String {
    format!("joblogs:{id}")
}

pub const INDEX_ALL: &str = "jobidx:all";

pub fn owner_index(owner: &str) -> String {
    format!("jobidx:u:{owner}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry(pub String, pub JobStatus, pub String);

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

    /// Stores a new job and lists it.
    pub fn create(&self, job: &Job) -> Result<(), ApiError> {
        set_json(self.kv, &job_key(&job.job_id), job)?;
        let entry = IndexEntry(job.job_id.clone(), job.status, job.provider.clone());
        for index in [INDEX_ALL.to_string(), owner_index(&job.owner)] {
            self.edit_index(&index, |entries| entries.insert(0, entry.clone()))?;
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
            before = Some(job.status);
            f(&mut job).map_err(Refusal::By)?;
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
        if before != Some(job.status) {
            self.reindex(&job)
                .map_err(|e| UpdateError::Store(KvError::new(e.message)))?;
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
            }
        }
        Ok(job)
    }

    fn reindex(&self, job: &Job) -> Result<(), ApiError> {
        for index in [INDEX_ALL.to_string(), owner_index(&job.owner)] {
            self.edit_index(&index, |entries| {
                if let Some(e) = entries.iter_mut().find(|e| e.0 == job.job_id) {
                    e.1 = job.status;
                }
            })?;
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
        for index in [INDEX_ALL.to_string(), owner_index(&job.owner)] {
            self.edit_index(&index, |entries| entries.retain(|e| e.0 != job.job_id))?;
        }
        self.kv.delete(&logs_key(&job.job_id))?;
        // Its stored outputs go with it.
        crate::storage::objects::ObjectStore::new(self.kv, u64::MAX)
            .delete_prefix(crate::storage::BUCKET, &format!("{}/", job.job_id))?;
        self.kv
            .delete(&job_key(&job.job_id))
            .map_err(ApiError::from)
    }

    fn edit_index(&self, index: &str, f: impl FnMut(&mut Vec<IndexEntry>)) -> Result<(), ApiError> {
        kv::edit_json(self.kv, index, f).map_err(ApiError::from)
    }

    pub fn index(&self, owner: Option<&str>) -> Result<Vec<IndexEntry>, ApiError> {
        let key = owner
            .map(owner_index)
            .unwrap_or_else(|| INDEX_ALL.to_string());
        Ok(get_json(self.kv, &key)?.unwrap_or_default())
    }

    /// How many of `owner`'s jobs (everyone's for `None`) are in each active
    /// status, for metrics.
    pub fn active_counts(&self, owner: Option<&str>) -> Result<Vec<(&'static str, u64)>, ApiError> {
        let index = self.index(owner)?;
        Ok(crate::jobs::record::ALL_STATUSES
            .iter()
            .filter(|s| !s.is_terminal())
            .map(|s| {
                (
                    s.as_str(),
                    index.iter().filter(|e| e.1 == *s).count() as u64,
                )
            })
            .collect())
    }

    /// Newest first; `total` counts every match, not just this page.
    pub fn list(&self, q: &ListQuery) -> Result<(Vec<Job>, usize), ApiError> {
        let matches: Vec<IndexEntry> = self
            .index(q.owner.as_deref())?
            .into_iter()
            .filter(|e| q.status.is_none_or(|s| e.1 == s))
            .filter(|e| q.provider.as_deref().is_none_or(|p| e.2 == p))
            .collect();
        let total = matches.len();
        let keys: Vec<String> = matches
            .iter()
            .skip(q.offset)
            .take(q.limit)
            .map(|e| job_key(&e.0))
            .collect();
        // One batch read for the page (one `MGET` on Redis). A record may have
        // moved on since the index was read; a deleted one is simply skipped.
        let mut jobs = Vec::with_capacity(keys.len());
        for (key, raw) in keys.iter().zip(self.kv.get_many(&keys)?) {
            if let Some(raw) = raw {
                jobs.push(
                    serde_json::from_slice(&raw)
                        .map_err(|e| KvError::new(format!("{key} holds invalid JSON: {e}")))?,
                );
            }
        }
        Ok((jobs, total))
    }

    pub fn set_logs(&self, id: &str, text: &str) -> Result<(), ApiError> {
        let logs = StoredLogs::keep_tail(text);
        set_json(self.kv, &logs_key(id), &logs).map_err(ApiError::from)
    }

    pub fn logs(&self, id: &str) -> Result<StoredLogs, ApiError> {
        Ok(get_json(self.kv, &logs_key(id))?.unwrap_or_default())
    }
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

/// A job's logs as stored: the tail of the full text, and how many bytes of
/// its start were dropped (so byte offsets stay absolute).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredLogs {
    pub dropped: usize,
    pub text: String,
}

/// What `GET /jobs/{id}/logs` asks for: `offset` (absolute byte, the last
/// `next_offset`) and `tail` (last N lines).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogQuery {
    pub offset: Option<usize>,
    pub tail: Option<usize>,
}

impl LogQuery {
    pub fn parse(params: &[(String, String)]) -> Result<Self, ApiError> {
        let number = |name: &str| {
            crate::kernel::http::param(params, name)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        ApiError::bad_request(format!("`{name}` must be a non-negative integer"))
                    })
                })
                .transpose()
        };
        Ok(LogQuery {
            offset: number("offset")?,
            tail: number("tail")?,
        })
    }
}

/// A slice of logs for `GET /jobs/{id}/logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSlice {
    pub text: String,
    /// Absolute byte offset where `text` starts.
    pub offset: usize,
    /// Pass this as `offset` next time to get only new output.
    pub next_offset: usize,
    /// Bytes before `offset` that are no longer stored.
    pub truncated: bool,
}

impl StoredLogs {
    pub fn keep_tail(full: &str) -> Self {
        if full.len() <= MAX_LOG_BYTES {
            return Self {
                dropped: 0,
                text: full.to_string(),
            };
        }
        let mut cut = full.len() - MAX_LOG_BYTES;
        while !full.is_char_boundary(cut) {
            cut += 1;
        }
        Self {
            dropped: cut,
            text: full[cut..].to_string(),
        }
    }

    pub fn total_bytes(&self) -> usize {
        self.dropped + self.text.len()
    }

    /// From absolute byte `offset` (clamped to what is stored), optionally only
    /// the last `tail` lines of that.
    pub fn slice(&self, offset: Option<usize>, tail: Option<usize>) -> LogSlice {
        let total = self.total_bytes();
        let want = offset.unwrap_or(self.dropped).min(total);
        let mut start = want.max(self.dropped) - self.dropped;
        while !self.text.is_char_boundary(start) {
            start += 1;
        }
        let mut text = &self.text[start..];
        let mut abs = self.dropped + start;
        if let Some(n) = tail {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let skip = lines.len().saturating_sub(n);
            let skipped: usize = lines[..skip].iter().map(|l| l.len()).sum();
            text = &text[skipped..];
            abs += skipped;
        }
        LogSlice {
            text: text.to_string(),
            offset: abs,
            next_offset: total,
            truncated: offset.is_some_and(|o| o < self.dropped)
                || (offset.is_none() && tail.is_none() && self.dropped > 0),
        }
    }
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
            delivery: None,
            idempotency_record: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn lists_newest_first_with_filters_and_true_totals() {
        let kv = MemoryKv::default();
        let store = JobStore::new(&kv);
        for i in 0..5 {
            store
                .create(&job(&format!("j{i}"), if i % 2 == 0 { "a" } else { "b" }))
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
            jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(),
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
        assert_eq!((total, jobs[0].job_id.as_str()), (1, "j3"));
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
