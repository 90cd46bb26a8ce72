//! What happens to a job after submit: applying what Replicate reports,
//! refreshing on read, cancelling and deleting. Every status write goes through
//! [`Job::transition`].

use serde_json::{Value, json};

use crate::auth::principal::Action;
use crate::auth::principal::Principal;
use crate::jobs::record::{CANCELLABLE, DELETABLE, Job, JobStatus};
use crate::jobs::store::JobStore;
use crate::kernel::clock::parse_rfc3339_ms;
use crate::kernel::error::ApiError;
use crate::kernel::http::HttpClient;
use crate::kernel::kv::UpdateError;
use crate::kernel::outbound_budget::is_spent as outbound_budget_spent;
use crate::providers::catalog::find_profile;
use crate::providers::replicate::{ReplicateClient, ReplicateError};
use crate::providers::settings::ProviderSettings;

pub fn job_not_found(id: &str) -> ApiError {
    ApiError::new(404, "job_not_found", format!("no job {id}")).with_detail("job_id", id)
}

pub fn invalid_state(job: &Job, action: &str, allowed: &[JobStatus]) -> ApiError {
    ApiError::new(
        409,
        "invalid_job_state",
        format!(
            "cannot {action} job {} while it is {}; allowed when {}",
            job.job_id,
            job.status.as_str(),
            allowed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .with_detail("job_id", job.job_id.as_str())
    .with_detail("current_state", job.status.as_str())
    .with_detail(
        "allowed_states",
        allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    )
}

pub fn update_failed<E>(id: &str, e: UpdateError<E>) -> ApiError {
    match e {
        UpdateError::Missing => job_not_found(id),
        other => other.into_kv(&format!("job {id}")).into(),
    }
}

/// Loads a job the principal may see (`job.view`): others' jobs are 404.
pub fn visible_job(store: &JobStore, principal: &Principal, id: &str) -> Result<Job, ApiError> {
    match store.get(id)? {
        Some(job) if principal.can(Action::JobView, &job.owner) => Ok(job),
        _ => Err(job_not_found(id)),
    }
}

/// The URL a Replicate `output` names: a string URL, or `weights` of a dict.
fn output_url(output: &Value) -> Option<String> {
    let candidate = match output {
        Value::String(s) => Some(s.as_str()),
        Value::Object(m) => m.get("weights").and_then(Value::as_str),
        Value::Array(a) => a.last().and_then(Value::as_str),
        _ => None,
    }?;
    candidate.starts_with("http").then(|| candidate.to_string())
}

/// Folds a Replicate prediction (from a GET, a list, a cancel or a webhook)
/// into the job. A prediction that would move the job backwards, or change a
/// terminal job, changes nothing but `refreshed_ms` (late events are ignored);
/// returns whether it was applied.
pub fn apply_prediction(job: &mut Job, p: &Value, now_ms: u64) -> bool {
    job.refreshed_ms = Some(now_ms);
    let was_terminal = job.status.is_terminal();
    let provider_status = p.get("status").and_then(Value::as_str).unwrap_or("");
    let target = JobStatus::from_replicate(provider_status);
    if let Some(t) = target
        && crate::jobs::record::check_transition(job.status, t).is_err()
    {
        return false;
    }
    if job.prediction_id.is_none() {
        job.prediction_id = p.get("id").and_then(Value::as_str).map(str::to_string);
    }
    job.provider_status = Some(provider_status.to_string());
    let at = |k: &str| p.get(k).and_then(Value::as_str).and_then(parse_rfc3339_ms);
    if let Some(started) = at("started_at") {
        job.started_ms = Some(started);
    }
    if let Some(t) = target {
        let mut stamp = at("completed_at").unwrap_or(now_ms);
        // A provider clock ahead of ours must not date the job in our future
        // (a day or spend window that has not begun here): keep the duration
        // it reports, and end it now.
        if stamp > now_ms {
            let ahead = stamp - now_ms;
            stamp = now_ms;
            if t.is_terminal()
                && let Some(started) = job.started_ms.as_mut()
            {
                *started = started.saturating_sub(ahead);
            }
        }
        // Checked above; cannot fail.
        let _ = job.transition(t, if t.is_terminal() { stamp } else { now_ms });
        if t.is_terminal() {
            job.completed_ms = Some(stamp);
        }
    }
    // (A named end keeps its explanation when the prediction is read again.)
    if job.status == JobStatus::Failed
        && job.error_code.is_none()
        && let Some(err) = p.get("error").filter(|e| !e.is_null())
    {
        job.error_message = Some(match err {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    if job.status.is_terminal() && !was_terminal {
        name_the_end(job, p);
    }
    let replicate_url = p.get("output").and_then(output_url);
    match &job.delivery {
        Some(d) if job.status == JobStatus::Completed => {
            job.output_url = d.output_url(job.output_url.as_deref(), replicate_url);
        }
        _ => {
            if let Some(url) = replicate_url {
                job.output_url = Some(url);
            }
        }
    }
    if p.get("logs").is_some() {
        job.logs_pending = false;
    } else if job.status.is_terminal() && !was_terminal {
        job.logs_pending = true;
    }
    if let Some(logs) = p.get("logs").and_then(Value::as_str) {
        job.progress = Some(crate::jobs::progress::parse(
            logs,
            &mut job.loss_history,
            job.started_ms,
            now_ms,
        ));
    }
    let rate = job
        .cost_per_second
        .or_else(|| find_profile(&job.hardware_profile).map(|p| p.cost_per_second()));
    let predict_time = p.pointer("/metrics/predict_time").and_then(Value::as_f64);
    match (rate, predict_time, job.status.is_terminal()) {
        (Some(rate), Some(secs), true) => {
            job.cost_usd = Some(round_micro(secs * rate));
            job.cost_estimated = false;
        }
        (Some(rate), _, false) => {
            if let Some(secs) = job.duration_seconds(now_ms) {
                job.cost_usd = Some(round_micro(secs * rate));
                job.cost_estimated = true;
            }
        }
        _ => {}
    }
    job.updated_ms = now_ms;
    true
}

/// Replicate's own time limit, as its error says it (`Prediction timed out`).
fn is_provider_timeout(error: &str) -> bool {
    error.to_ascii_lowercase().contains("timed out")
}

/// How long the prediction lived by Replicate's own clock (created to
/// completed), else by ours: clocks differ, a lifetime does not.
fn lifetime_ms(job: &Job, p: &Value) -> u64 {
    let at = |k: &str| p.get(k).and_then(Value::as_str).and_then(parse_rfc3339_ms);
    match (at("created_at"), at("completed_at")) {
        (Some(created), Some(completed)) => completed.saturating_sub(created),
        _ => job
            .completed_ms
            .unwrap_or(job.updated_ms)
            .saturating_sub(job.created_ms),
    }
}

/// Gives a job that just ended a name for why, when there is one: stopped by
/// its deadline (a cancel this server did not ask for, at or after it), or
/// by Replicate's time limit.
fn name_the_end(job: &mut Job, p: &Value) {
    match job.status {
        JobStatus::Cancelled
            if job.max_runtime_minutes.is_some_and(|m| {
                lifetime_ms(job, p) + DEADLINE_SLACK_MS >= u64::from(m) * 60_000
            }) =>
        {
            job.error_code = Some("deadline_exceeded".into());
            job.error_message = Some(format!(
                "Stopped at its deadline: max_runtime_minutes = {} (sent to Replicate as \
                 Cancel-After, so billing stopped there too). Re-run it with a longer \
                 deadline if it needs more time.",
                job.max_runtime_minutes.unwrap_or_default()
            ));
        }
        JobStatus::Failed
            if job
                .error_message
                .as_deref()
                .is_some_and(is_provider_timeout) =>
        {
            job.error_code = Some("provider_timeout".into());
            job.error_message = Some(format!(
                "Replicate stopped the training at its time limit ({}). Replicate predictions \
                 time out after 30 minutes unless your account's limit was raised: ask \
                 Replicate to raise it, or train fewer steps per job. A re-run starts from \
                 the beginning unless the trainer saved checkpoints somewhere it can resume \
                 from (checkpointing_steps with push_to_hub or an S3 publishing_config).",
                job.error_message.as_deref().unwrap_or_default().trim()
            ));
        }
        _ => {}
    }
}

/// Clocks differ: a cancel this close before the deadline is the deadline's.
const DEADLINE_SLACK_MS: u64 = 60_000;

fn round_micro(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Asks Replicate about an active job whose last refresh is older than the
/// threshold, and stores what it says (status, timestamps, cost, logs).
/// Provider trouble is reported, not fatal: the stored job is still returned.
pub async fn refresh<H: HttpClient>(
    store: &JobStore<'_>,
    http: &H,
    settings: &ProviderSettings,
    job: Job,
    now_ms: u64,
) -> (Job, Option<String>) {
    let stale = job
        .refreshed_ms
        .is_none_or(|t| now_ms.saturating_sub(t) >= settings.refresh_after_ms);
    let Some(pid) = job.prediction_id.clone() else {
        return (job, None);
    };
    // A job that ended from a list answer still needs its final logs, however
    // recently it was refreshed.
    if !job.logs_pending && (job.status.is_terminal() || !stale) {
        return (job, None);
    }
    let client = match ReplicateClient::new(http, &settings.api_base, &settings.token) {
        Ok(c) => c,
        Err(e) => return (job, Some(e.message())),
    };
    let prediction = match client.get_prediction(&pid).await {
        Ok(p) => p,
        Err(e) => return (job, Some(e.message()).filter(|m| !outbound_budget_spent(m))),
    };
    let job_id = job.job_id.clone();
    // Logs before the job that may carry the end, so a follower that reads an
    // ended job then reads its last lines (see `log_stream`); they only grow.
    if let Some(logs) = prediction["logs"].as_str()
        && let Err(e) = store.set_logs(&job_id, logs)
    {
        return (job, Some(e.message));
    }
    let updated = store.update::<()>(&job_id, |j| {
        apply_prediction(j, &prediction, now_ms);
        Ok(())
    });
    match updated {
        Ok(j) => (j, None),
        Err(e) => (job, Some(e.to_string())),
    }
}

/// `POST /jobs/{id}/cancel`: cancels at Replicate (404 there counts as done).
pub async fn cancel<H: HttpClient>(
    store: &JobStore<'_>,
    http: &H,
    settings: &ProviderSettings,
    principal: &Principal,
    id: &str,
    now_ms: u64,
) -> Result<Job, ApiError> {
    let job = visible_job(store, principal, id)?;
    if !principal.can(Action::JobCancel, &job.owner) {
        return Err(
            ApiError::new(403, "permission_denied", "you may not cancel this job")
                .with_detail("required_permission", "job.cancel.own"),
        );
    }
    if job.status.is_terminal() {
        return Err(invalid_state(&job, "cancel", &CANCELLABLE));
    }
    let reported = match &job.prediction_id {
        None => None,
        Some(pid) => {
            let client = ReplicateClient::new(http, &settings.api_base, &settings.token)
                .map_err(|e| e.to_api_error())?;
            client
                .cancel_prediction(pid)
                .await
                .map_err(|e: ReplicateError| e.to_api_error())?
        }
    };
    // Its logs before the job that may carry the end (see `refresh`).
    if let Some(logs) = reported.as_ref().and_then(|p| p["logs"].as_str()) {
        store.set_logs(id, logs)?;
    }
    let updated = store
        .update(id, |j| {
            if let Some(p) = &reported {
                apply_prediction(j, p, now_ms);
            }
            match j.status {
                JobStatus::Completed | JobStatus::Failed => {
                    Err(invalid_state(j, "cancel", &CANCELLABLE))
                }
                JobStatus::Cancelled => Ok(()),
                _ => {
                    if j.prediction_id.is_none() {
                        j.error_message = Some("cancelled before the provider started it".into());
                    }
                    j.transition(JobStatus::Cancelled, now_ms)
                        .map_err(|e| ApiError::new(409, "invalid_job_state", e.to_string()))
                }
            }
        })
        .map_err(|e| match e {
            UpdateError::Rejected(api) => api,
            other => update_failed(id, other),
        })?;
    record_action(store, principal, "job.cancelled", &updated, now_ms);
    Ok(updated)
}

/// Who did what to a job, in the event log.
fn record_action(store: &JobStore, principal: &Principal, kind: &str, job: &Job, now_ms: u64) {
    crate::kernel::event_log::record(
        store.kv(),
        crate::kernel::event_log::NewEvent {
            kind,
            actor: &principal.id,
            target: Some(&job.job_id),
            owner: Some(&job.owner),
            detail: json!({"status": job.status.as_str()}),
        },
        now_ms,
    );
}

/// `DELETE /jobs/{id}`: terminal jobs only; removes the record and its logs
/// (nothing is deleted at Replicate).
pub fn delete(
    store: &JobStore,
    principal: &Principal,
    id: &str,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let job = visible_job(store, principal, id)?;
    if !principal.can(Action::JobDelete, &job.owner) {
        return Err(
            ApiError::new(403, "permission_denied", "you may not delete this job")
                .with_detail("required_permission", "job.delete.own"),
        );
    }
    if !job.status.is_terminal() {
        return Err(invalid_state(&job, "delete", &DELETABLE));
    }
    store.delete(&job, now_ms)?;
    record_action(store, principal, "job.deleted", &job, now_ms);
    Ok(json!({"success": true, "job_id": id}))
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
