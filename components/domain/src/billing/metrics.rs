//! Settlement and metrics: when a job finishes, its reservation becomes its
//! real cost and it is folded into daily aggregates, so a report for N days
//! reads N keys, never every job.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::estimate::{History, history_key};
use super::limits::Reservation;
use super::{day_key, micros, usd};
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore, get_json};

/// How a job ended, as billing counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    Cancelled,
}

/// A finished job as billing sees it (the job store builds one when a job
/// reaches a terminal status).
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub owner: &'a str,
    pub outcome: Outcome,
    pub cost_usd: f64,
    pub reservation: Option<&'a Reservation>,
    pub ended_ms: u64,
    pub duration_seconds: Option<f64>,
    /// Steps the trainer reported, for the seconds/step history.
    pub total_steps: Option<u64>,
    pub hardware_profile: &'a str,
}

/// Called once, when a job reaches a terminal status: replaces its
/// reservation with its real cost, and folds it into the daily aggregates and
/// the per-profile seconds/step history.
pub fn settle(kv: &dyn KvStore, job: &Settlement) -> Result<(), ApiError> {
    crate::kernel::counters::count(
        kv,
        crate::kernel::counters::Event::JobFinished(match job.outcome {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }),
        1,
    );
    let actual = micros(job.cost_usd);
    if let Some(r) = job.reservation {
        // Every window is settled even if one fails (the first failure is
        // reported after), so no window keeps the reservation.
        let mut failed = None;
        for k in &r.keys {
            if let Err(e) = kv.increment(k, actual.saturating_sub(r.micros)) {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    let day = day_key(job.ended_ms);
    for key in [
        format!("agg:{day}:all"),
        format!("agg:{day}:u:{}", job.owner),
    ] {
        kv::edit_json::<DayAggregate>(kv, &key, |a| a.add(job))?;
    }
    if job.outcome == Outcome::Completed
        && let (Some(secs), Some(steps)) = (job.duration_seconds, job.total_steps)
        && steps > 0
    {
        kv::edit_json::<History>(kv, &history_key(job.hardware_profile), |h| {
            h.steps += steps;
            h.seconds += secs;
            h.jobs += 1;
        })?;
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DayAggregate {
    pub total_jobs: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub total_cost_micros: i64,
    pub duration_seconds: f64,
    pub durations: u64,
}

impl DayAggregate {
    fn add(&mut self, job: &Settlement) {
        self.total_jobs += 1;
        match job.outcome {
            Outcome::Completed => self.completed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Cancelled => self.cancelled += 1,
        }
        self.total_cost_micros = self.total_cost_micros.saturating_add(micros(job.cost_usd));
        if let Some(d) = job.duration_seconds {
            self.duration_seconds += d;
            self.durations += 1;
        }
    }
}

/// The `days` of a metrics request: 1–365, 30 when absent.
pub fn parse_days(raw: Option<&str>) -> Result<u64, ApiError> {
    match raw {
        None => Ok(30),
        Some(d) => d
            .parse::<u64>()
            .ok()
            .filter(|d| (1..=365).contains(d))
            .ok_or_else(|| ApiError::bad_request("`days` must be 1-365")),
    }
}

/// `GET /api/metrics?days=N`: from daily aggregates (finished jobs) plus the
/// live index (jobs still active).
pub fn metrics(
    kv: &dyn KvStore,
    scope: Option<&str>,
    active_by_status: &[(&str, u64)],
    days: u64,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let suffix = scope.map_or("all".to_string(), |o| format!("u:{o}"));
    let mut by_day = Vec::new();
    let (mut cost, mut jobs, mut dur, mut n) = (0i64, 0u64, 0.0, 0u64);
    let (mut completed, mut failed, mut cancelled) = (0, 0, 0);
    for i in (0..days).rev() {
        let day = day_key(now_ms.saturating_sub(i * 86_400_000));
        let a: DayAggregate = get_json(kv, &format!("agg:{day}:{suffix}"))?.unwrap_or_default();
        cost += a.total_cost_micros;
        jobs += a.total_jobs;
        dur += a.duration_seconds;
        n += a.durations;
        completed += a.completed;
        failed += a.failed;
        cancelled += a.cancelled;
        by_day.push(json!({
            "date": day, "total_jobs": a.total_jobs, "completed": a.completed, "failed": a.failed,
            "cancelled": a.cancelled, "total_cost_usd": usd(a.total_cost_micros),
        }));
    }
    let mut by_status = json!({"completed": completed, "failed": failed, "cancelled": cancelled});
    for (s, c) in active_by_status {
        by_status[*s] = json!(c);
    }
    Ok(json!({
        "total_cost": usd(cost),
        "job_count": jobs + active_by_status.iter().map(|(_, c)| c).sum::<u64>(),
        "avg_job_duration_seconds": if n > 0 { Some((dur / n as f64 * 10.0).round() / 10.0) } else { None },
        "jobs_by_status": by_status,
        "cost_by_day": by_day,
        "period_days": days,
    }))
}
