//! Retention, run by the sync pass: with `retention_days` set, finished jobs
//! whose end is older than that are deleted with everything only they own
//! (logs, stored outputs, index entries, their idempotency record). Fermyon
//! Cloud caps a store at 1,024 keys and each job holds 2–4 of them, so an
//! installation there needs this; off (0) by default, because deleting
//! history is the user's call. Daily aggregates and spend counters are not
//! per job and stay, so metrics and cost limits still count pruned jobs.
//!
//! Cost per pass: the oldest [`SCAN_PAGES`] pages of the job list, a record
//! read for each finished job on them (at most 256),
//! and at most [`PRUNE_BATCH`] deletions, so a pass stays short however many
//! jobs are due; the next pass continues (emptied pages are skipped then).

use serde_json::{Value, json};

use crate::jobs::store::JobStore;

pub const DAY_MS: u64 = 24 * 3600 * 1000;
/// List pages examined per pass, oldest first (16 jobs each), in one read.
pub const SCAN_PAGES: u64 = 16;
/// Jobs deleted per pass at most.
pub const PRUNE_BATCH: usize = 50;

/// Parses the `retention_days` variable: whole days, 0 or empty = keep all.
pub fn parse_days(raw: Option<&str>) -> Result<u64, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(0),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|d| *d <= 36_500)
            .ok_or_else(|| {
                format!("retention_days must be a whole number of days (0 = keep all), got {s:?}")
            }),
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PruneReport {
    pub pruned: usize,
    pub errors: Vec<Value>,
}

/// The sync pass's retention step: `raw_days` is the `retention_days`
/// variable; a bad value is reported and deletes nothing.
pub fn run(store: &JobStore, raw_days: Option<&str>, now_ms: u64) -> PruneReport {
    match parse_days(raw_days) {
        Ok(days) => prune(store, days, now_ms),
        Err(message) => PruneReport {
            pruned: 0,
            errors: vec![json!({"error": message})],
        },
    }
}

/// Deletes finished jobs that ended more than `days` days before `now_ms`.
pub fn prune(store: &JobStore, days: u64, now_ms: u64) -> PruneReport {
    let mut report = PruneReport::default();
    if days == 0 {
        return report;
    }
    let cutoff = now_ms.saturating_sub(days * DAY_MS);
    // The oldest pages of the list, oldest job first; the finished ones are
    // checked against their record (the authority on when a job ended). A job
    // that is still running, or ended recently although created long ago, is
    // skipped.
    let oldest = match store.oldest(SCAN_PAGES) {
        Ok(oldest) => oldest,
        Err(e) => {
            report.errors.push(json!({"error": e.message}));
            return report;
        }
    };
    let due = oldest.iter().filter(|s| s.status.is_terminal());
    for summary in due {
        if report.pruned >= PRUNE_BATCH {
            break;
        }
        let job = match store.get(&summary.job_id) {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(e) => {
                report
                    .errors
                    .push(json!({"job_id": summary.job_id, "error": e.message}));
                continue;
            }
        };
        if !job.status.is_terminal() || job.ended_ms() > cutoff {
            continue;
        }
        match store.delete(&job, now_ms) {
            Ok(()) => report.pruned += 1,
            Err(e) => report
                .errors
                .push(json!({"job_id": job.job_id, "error": e.message})),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::idempotency::{self, Claim};
    use crate::jobs::record::JobStatus;
    use crate::jobs::store::ListQuery;
    use crate::jobs::store::tests::job;
    use crate::kernel::kv::MemoryKv;

    fn finished(store: &JobStore, id: &str, status: JobStatus, ended: u64) {
        let mut j = job(id, "alice");
        j.status = status;
        j.completed_ms = Some(ended);
        j.updated_ms = ended;
        store.create(&mut j).unwrap();
        store.set_logs(id, "log line").unwrap();
    }

    #[test]
    fn days_parse_strictly() {
        assert_eq!(parse_days(None), Ok(0));
        assert_eq!(parse_days(Some(" ")), Ok(0));
        assert_eq!(parse_days(Some("30")), Ok(30));
        assert!(parse_days(Some("-1")).is_err());
        assert!(parse_days(Some("1.5")).is_err());
        assert!(parse_days(Some("thirty")).is_err());
    }

    #[test]
    fn old_finished_jobs_go_with_their_keys_and_nothing_else_does() {
        let kv = MemoryKv::default();
        let store = JobStore::new(&kv);
        let now = 100 * DAY_MS;
        finished(&store, "old-done", JobStatus::Completed, now - 31 * DAY_MS);
        finished(&store, "old-failed", JobStatus::Failed, now - 40 * DAY_MS);
        finished(&store, "recent", JobStatus::Cancelled, now - 29 * DAY_MS);
        let mut running = job("old-running", "alice");
        running.status = JobStatus::Running;
        running.updated_ms = now - 90 * DAY_MS;
        store.create(&mut running).unwrap();
        // The old job came from an idempotency key, long expired.
        let Claim::New(r) = idempotency::claim(&kv, "alice", "ci-123", "fp", 0).unwrap() else {
            panic!()
        };
        idempotency::complete(&kv, &r, "old-done").unwrap();
        store
            .update::<()>("old-done", |j| {
                j.idempotency_record = Some(r.record_key().to_string());
                Ok(())
            })
            .unwrap();

        assert_eq!(prune(&store, 0, now).pruned, 0, "off by default");
        let report = prune(&store, 30, now);
        assert_eq!(report.pruned, 2, "{report:?}");
        let left: Vec<String> = store
            .list(&ListQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .0
            .into_iter()
            .map(|s| s.job_id.into_owned())
            .collect();
        assert_eq!(left, ["recent", "old-running"]);
        let mut keys = kv.keys();
        keys.sort();
        assert!(
            keys.iter()
                .all(|k| !k.contains("old-done") && !k.contains("old-failed")),
            "{keys:?}"
        );
        assert!(
            !keys
                .iter()
                .any(|k| k.starts_with("idem:") || k.starts_with("claim:idem:")),
            "{keys:?}"
        );
        // Idempotent: nothing more is due.
        assert_eq!(prune(&store, 30, now).pruned, 0);
    }

    #[test]
    fn a_pass_deletes_a_bounded_batch_and_the_next_one_continues() {
        let kv = MemoryKv::default();
        let store = JobStore::new(&kv);
        let now = 100 * DAY_MS;
        for i in 0..PRUNE_BATCH + 5 {
            finished(&store, &format!("j{i}"), JobStatus::Completed, DAY_MS);
        }
        assert_eq!(prune(&store, 1, now).pruned, PRUNE_BATCH);
        assert_eq!(prune(&store, 1, now).pruned, 5);
        let q = ListQuery {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(store.list(&q).unwrap().1, 0);
    }
}
