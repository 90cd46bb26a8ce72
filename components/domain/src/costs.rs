//! Spend, estimates, cost limits and metrics.
//!
//! - **Spend windows are calendar periods in UTC** (day; ISO week from Monday;
//!   month). Each submit *reserves* its estimated cost with an atomic
//!   `increment` of the window's counters (installation-wide and per user, in
//!   micro-dollars); when the job finishes, the reservation is replaced by its
//!   real cost (`predict_time × the job's own rate`). So the spend a limit sees
//!   = settled costs + estimates of jobs still running, and 20 racing submits
//!   cannot all pass a nearly full limit: each sees the total including the
//!   others' reservations, and one that does not fit takes its reservation
//!   back. (Changing the period starts counting in the new period's window.)
//! - **Metrics** come from daily aggregates (`agg:<date>:all` and
//!   `agg:<date>:u:<owner>`) updated once per job when it finishes, so a
//!   report for N days reads N keys, never every job.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::job::{Job, JobStatus};
use crate::kv::{self, KvStore, get_json};
use crate::settings::{LimitAction, LimitScope, Period, StoredSettings};

/// Typical seconds per training step when this installation has no history
/// (SimpleTuner's published figures: a 1,000-step Flux LoRA takes 30–60 min).
pub const TYPICAL_SECONDS_PER_STEP: f64 = 2.7;
pub const DEFAULT_STEPS: u64 = 1000;

fn date(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn day_key(ms: u64) -> String {
    let d = date(ms);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The window id of `ms` in `period` (calendar, UTC).
pub fn window(period: Period, ms: u64) -> String {
    let d = date(ms);
    match period {
        Period::Daily => day_key(ms),
        Period::Weekly => {
            let (y, w, _) = d.to_iso_week_date();
            format!("{y:04}-W{w:02}")
        }
        Period::Monthly => format!("{:04}-{:02}", d.year(), u8::from(d.month())),
    }
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Daily => "daily",
        Period::Weekly => "weekly",
        Period::Monthly => "monthly",
    }
}

fn spend_keys(period: Period, ms: u64, owner: &str) -> [String; 2] {
    let w = window(period, ms);
    [format!("spend:{w}:all"), format!("spend:{w}:u:{owner}")]
}

fn storage(e: kv::KvError) -> ApiError {
    ApiError::storage(e.to_string())
}

fn micros(usd: f64) -> i64 {
    (usd * 1e6).round() as i64
}

fn usd(micros: i64) -> f64 {
    (micros as f64 / 1e4).round() / 100.0
}

/// What a job reserved, kept on the job so it can be settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub keys: Vec<String>,
    pub micros: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub usd: f64,
    pub low: f64,
    pub high: f64,
    pub steps: u64,
    pub seconds_per_step: f64,
    pub basis: &'static str,
}

/// `max_train_steps` from a config with CLI-style or bare keys.
pub fn max_steps(config: &Value) -> u64 {
    ["--max_train_steps", "max_train_steps"]
        .iter()
        .find_map(|k| {
            let v = config.get(*k)?;
            v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
        })
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_STEPS)
}

/// Seconds per step learnt from this installation's completed jobs, per profile.
fn history_key(profile: &str) -> String {
    format!("stats:profile:{profile}")
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct History {
    steps: u64,
    seconds: f64,
    jobs: u64,
}

pub fn estimate(kv: &dyn KvStore, config: &Value, profile: &str, rate: f64) -> Estimate {
    let steps = max_steps(config);
    let history: History = get_json(kv, &history_key(profile))
        .ok()
        .flatten()
        .unwrap_or_default();
    let (sps, basis) = if history.jobs > 0 && history.steps > 0 {
        (history.seconds / history.steps as f64, "history")
    } else {
        (TYPICAL_SECONDS_PER_STEP, "typical")
    };
    let usd = steps as f64 * sps * rate;
    Estimate {
        usd,
        low: usd * 0.67,
        high: usd * 1.33,
        steps,
        seconds_per_step: sps,
        basis,
    }
}

/// The outcome of reserving at submit.
pub enum Check {
    Allowed {
        reservation: Reservation,
        warning: Option<String>,
    },
    Blocked(ApiError),
}

fn limit_line(spend: f64, limit: f64, period: Period) -> String {
    format!("${spend:.2} / ${limit:.2} ({})", period_name(period))
}

/// Reserves `est` in the current windows and applies the limit, if any.
pub fn reserve(
    kv: &dyn KvStore,
    s: &StoredSettings,
    owner: &str,
    est_usd: f64,
    now_ms: u64,
) -> Result<Check, ApiError> {
    let keys = spend_keys(s.cost_limit_period, now_ms, owner);
    let m = micros(est_usd);
    let after_all = kv.increment(&keys[0], m).map_err(storage)?;
    let after_user = kv.increment(&keys[1], m).map_err(storage)?;
    let after = match s.cost_limit_scope {
        LimitScope::Global => after_all,
        LimitScope::User => after_user,
    };
    let reservation = Reservation {
        keys: keys.to_vec(),
        micros: m,
    };
    let limit = match (s.cost_limit_enabled, s.cost_limit_amount) {
        (true, Some(a)) => a,
        _ => {
            return Ok(Check::Allowed {
                reservation,
                warning: None,
            });
        }
    };
    let limit_m = micros(limit);
    let spend = usd(after);
    if after > limit_m {
        if s.cost_limit_action == LimitAction::Block {
            release(kv, &reservation)?;
            return Ok(Check::Blocked(
                ApiError::new(
                    402,
                    "cost_limit_exceeded",
                    format!(
                        "Cost limit exceeded: this job (estimated ${est_usd:.2}) would bring spend to ${spend:.2} of the ${limit:.2} {} limit ({} spent or reserved before it).",
                        period_name(s.cost_limit_period),
                        format_args!("${:.2}", usd(after - m)),
                    ),
                )
                .with_detail("current_spend", usd(after - m))
                .with_detail("limit_amount", limit)
                .with_detail("estimated_cost", est_usd),
            ));
        }
        let warning = format!(
            "Spending limit exceeded: {}",
            limit_line(spend, limit, s.cost_limit_period)
        );
        return Ok(Check::Allowed {
            reservation,
            warning: Some(warning),
        });
    }
    let warning = (limit_m > 0 && after * 100 >= limit_m * 80).then(|| {
        format!(
            "Approaching limit: {}",
            limit_line(spend, limit, s.cost_limit_period)
        )
    });
    Ok(Check::Allowed {
        reservation,
        warning,
    })
}

pub fn release(kv: &dyn KvStore, r: &Reservation) -> Result<(), ApiError> {
    for k in &r.keys {
        kv.increment(k, -r.micros).map_err(storage)?;
    }
    Ok(())
}

/// Called once, when a job reaches a terminal status: replaces its
/// reservation with its real cost, and folds it into the daily aggregates and
/// the per-profile seconds/step history.
pub fn settle(kv: &dyn KvStore, job: &Job) -> Result<(), ApiError> {
    let actual = micros(job.cost_usd.unwrap_or(0.0));
    if let Some(r) = &job.reservation {
        for k in &r.keys {
            kv.increment(k, actual - r.micros).map_err(storage)?;
        }
    }
    let day = day_key(job.ended_ms());
    let duration = job.duration_seconds(job.ended_ms());
    for key in [
        format!("agg:{day}:all"),
        format!("agg:{day}:u:{}", job.owner),
    ] {
        edit::<DayAggregate>(kv, &key, |a| a.add(job, duration))?;
    }
    if job.status == JobStatus::Completed
        && let (Some(secs), Some(steps)) =
            (duration, job.progress.as_ref().and_then(|p| p.total_steps))
        && steps > 0
    {
        edit::<History>(kv, &history_key(&job.hardware_profile), |h| {
            h.steps += steps;
            h.seconds += secs;
            h.jobs += 1;
        })?;
    }
    Ok(())
}

fn edit<T: Serialize + serde::de::DeserializeOwned + Default>(
    kv: &dyn KvStore,
    key: &str,
    f: impl FnMut(&mut T),
) -> Result<(), ApiError> {
    kv::edit_json(kv, key, f).map_err(storage)
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
    fn add(&mut self, job: &Job, duration: Option<f64>) {
        self.total_jobs += 1;
        match job.status {
            JobStatus::Completed => self.completed += 1,
            JobStatus::Failed => self.failed += 1,
            _ => self.cancelled += 1,
        }
        self.total_cost_micros += micros(job.cost_usd.unwrap_or(0.0));
        if let Some(d) = duration {
            self.duration_seconds += d;
            self.durations += 1;
        }
    }
}

/// `GET /api/cloud/metrics/cost-limit` for an owner (or everyone).
pub fn limit_status(
    kv: &dyn KvStore,
    s: &StoredSettings,
    owner: &str,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let keys = spend_keys(s.cost_limit_period, now_ms, owner);
    let read = |k: &str| -> Result<i64, ApiError> {
        Ok(kv
            .get(k)
            .map_err(storage)?
            .and_then(|v| v.as_slice().try_into().ok().map(i64::from_le_bytes))
            .unwrap_or(0))
    };
    let spend_m = match s.cost_limit_scope {
        LimitScope::Global => read(&keys[0])?,
        LimitScope::User => read(&keys[1])?,
    };
    let spend = usd(spend_m.max(0));
    let enabled = s.cost_limit_enabled && s.cost_limit_amount.is_some();
    let limit = s.cost_limit_amount;
    let percent = limit
        .filter(|l| *l > 0.0)
        .map(|l| (spend / l * 1000.0).round() / 10.0)
        .unwrap_or(0.0);
    let exceeded = enabled && limit.is_some_and(|l| spend >= l);
    let warning = enabled && !exceeded && percent >= 80.0;
    let message = if !s.cost_limit_enabled {
        Some("Cost limits not configured".to_string())
    } else if limit.is_none() {
        Some("No limit amount set".to_string())
    } else if exceeded {
        Some(format!(
            "Spending limit exceeded: {}",
            limit_line(spend, limit.unwrap_or(0.0), s.cost_limit_period)
        ))
    } else if warning {
        Some(format!(
            "Approaching limit: {}",
            limit_line(spend, limit.unwrap_or(0.0), s.cost_limit_period)
        ))
    } else {
        None
    };
    Ok(json!({
        "enabled": enabled,
        "limit_amount": limit,
        "period": period_name(s.cost_limit_period),
        "action": s.cost_limit_action,
        "scope": s.cost_limit_scope,
        "window": window(s.cost_limit_period, now_ms),
        "window_type": "calendar (UTC)",
        "current_spend": spend,
        "percent_used": percent,
        "is_exceeded": exceeded,
        "is_warning": warning,
        "message": message,
    }))
}

/// `GET /api/metrics?days=N`: from daily aggregates (finished jobs) plus the
/// live index (jobs still active).
pub fn metrics(
    kv: &dyn KvStore,
    scope: Option<&str>,
    active_by_status: &[(JobStatus, u64)],
    days: u64,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let suffix = scope.map_or("all".to_string(), |o| format!("u:{o}"));
    let mut by_day = Vec::new();
    let (mut cost, mut jobs, mut dur, mut n) = (0i64, 0u64, 0.0, 0u64);
    let (mut completed, mut failed, mut cancelled) = (0, 0, 0);
    for i in (0..days).rev() {
        let day = day_key(now_ms.saturating_sub(i * 86_400_000));
        let a: DayAggregate = get_json(kv, &format!("agg:{day}:{suffix}"))
            .map_err(storage)?
            .unwrap_or_default();
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
        by_status[s.as_str()] = json!(c);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryKv;

    fn limited(amount: f64, action: LimitAction) -> StoredSettings {
        StoredSettings {
            cost_limit_enabled: true,
            cost_limit_amount: Some(amount),
            cost_limit_action: action,
            ..Default::default()
        }
    }

    #[test]
    fn calendar_windows() {
        let ms = 1_795_879_207_000; // 2026-11-28 (a Saturday)
        assert_eq!(window(Period::Daily, ms), "2026-11-28");
        assert_eq!(window(Period::Weekly, ms), "2026-W48");
        assert_eq!(window(Period::Monthly, ms), "2026-11");
    }

    #[test]
    fn warn_and_block_at_79_80_and_100_percent() {
        for (spent, action, ok, warns) in [
            (78.0, LimitAction::Block, true, false), // 79 % after this job
            (79.0, LimitAction::Block, true, true),  // 80 %
            (99.0, LimitAction::Block, true, true),  // 100 %: fits exactly
            (99.5, LimitAction::Block, false, false),
            (99.5, LimitAction::Warn, true, true),
        ] {
            let kv = MemoryKv::default();
            let s = limited(100.0, action);
            let Check::Allowed { .. } = reserve(&kv, &s, "a", spent, 0).unwrap() else {
                panic!()
            };
            match reserve(&kv, &s, "a", 1.0, 0).unwrap() {
                Check::Allowed { warning, .. } => {
                    assert!(ok, "{spent}");
                    assert_eq!(warning.is_some(), warns, "{spent}: {warning:?}");
                }
                Check::Blocked(e) => {
                    assert!(!ok, "{spent}");
                    assert_eq!(e.status, 402);
                    assert!(e.message.contains("$100.00"), "{}", e.message);
                }
            }
        }
    }

    #[test]
    fn steps_come_from_either_key_style() {
        assert_eq!(max_steps(&json!({"--max_train_steps": 500})), 500);
        assert_eq!(max_steps(&json!({"max_train_steps": "250"})), 250);
        assert_eq!(max_steps(&json!({})), DEFAULT_STEPS);
        let kv = MemoryKv::default();
        let e = estimate(&kv, &json!({"--max_train_steps": 1000}), "h100", 0.001525);
        assert_eq!(e.basis, "typical");
        assert!((e.usd - 1000.0 * 2.7 * 0.001525).abs() < 1e-9);
    }
}
