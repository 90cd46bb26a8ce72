//! `POST /api/cloud/jobs/{id}/retry`: re-runs a failed or cancelled job as a
//! new job with the same config snapshot, datasets, hardware and delivery,
//! recorded as its next attempt (`retry_of`, `first_job`, `attempt`).
//!
//! It goes through the same submit as everything else (permission, spend
//! limit, datasets packaged again, idempotency), so a retried re-run with the
//! same `Idempotency-Key` returns the attempt it already made.

use serde_json::{Value, json};

use crate::auth::principal::Permission;
use crate::jobs::lifecycle::{invalid_state, visible_job};
use crate::jobs::record::{Job, JobStatus, Lineage, holds_secrets};
use crate::jobs::store::JobStore;
use crate::jobs::submit::{SubmitContext, Submitted, submit_attempt};
use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::http::HttpClient;

/// What can be re-run: a job that ended without its model.
pub const RETRYABLE: [JobStatus; 2] = [JobStatus::Failed, JobStatus::Cancelled];

/// Re-runs job `id` for the caller. `header_key` is the `Idempotency-Key`
/// header; the body may carry `idempotency_key` instead (the header wins).
pub async fn retry<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    id: &str,
    header_key: Option<&str>,
    raw: &[u8],
) -> Submitted {
    match prepare(ctx, id, header_key, raw) {
        Ok((body, lineage)) => submit_attempt(ctx, body.to_string().as_bytes(), lineage).await,
        Err(e) => Submitted {
            status: e.status,
            body: e.body(),
        },
    }
}

fn prepare<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    id: &str,
    header_key: Option<&str>,
    raw: &[u8],
) -> Result<(Value, Lineage), ApiError> {
    let job = visible_job(&JobStore::new(ctx.kv), ctx.principal, id)?;
    ctx.principal.require(Permission::JobSubmit)?;
    if !RETRYABLE.contains(&job.status) {
        return Err(invalid_state(&job, "re-run", &RETRYABLE));
    }
    secrets_stay_with_their_owner(&job, &ctx.principal.id)?;
    let key = match header_key.map(str::trim).filter(|k| !k.is_empty()) {
        Some(k) => Some(Value::from(k)),
        None => body_key(raw)?,
    };
    Ok((submit_body(&job, key), next_attempt(&job)))
}

/// A job's stored config may hold its owner's secrets (publishing keys,
/// tokens). Someone else who may see the job (a lead, an admin) must not run
/// a job with them: such a re-run is refused, and they submit the config
/// with their own secrets instead. A job without secrets re-runs for anyone
/// who may see it.
fn secrets_stay_with_their_owner(job: &Job, caller: &str) -> Result<(), ApiError> {
    if job.owner == caller || !(holds_secrets(&job.config) || holds_secrets(&job.dataloader_config))
    {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        "rerun_needs_owner",
        "this job's config holds its owner's secrets (keys or tokens), so only its owner can \
         re-run it; submit the config with your own secrets instead",
    )
    .with_detail("job_id", job.job_id.as_str()))
}

/// The `idempotency_key` of an optional JSON body (`{}` or empty is none).
fn body_key(raw: &[u8]) -> Result<Option<Value>, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("request body is not JSON: {e}"),
        )
    })?;
    let body = object_with_fields(&value, &["idempotency_key"], "invalid_request")?;
    Ok(body
        .get("idempotency_key")
        .filter(|k| !k.is_null())
        .cloned())
}

/// The submit body that re-runs `job` as it was submitted.
fn submit_body(job: &Job, idempotency_key: Option<Value>) -> Value {
    let delivery = match &job.delivery {
        Some(d) if d.local => "local",
        Some(d) if d.hub_model_id.is_none() && d.external_s3.is_none() => "replicate",
        _ => "auto",
    };
    let mut body = json!({
        "config": job.config,
        "dataloader_config": job.dataloader_config,
        "hardware_profile": job.hardware_profile,
        "delivery": delivery,
    });
    if let Some(name) = &job.config_name {
        body["config_name"] = json!(name);
    }
    if let Some(run) = &job.tracker_run_name {
        body["tracker_run_name"] = json!(run);
    }
    if let Some(minutes) = job.max_runtime_minutes {
        body["max_runtime_minutes"] = json!(minutes);
    }
    if let Some(key) = idempotency_key {
        body["idempotency_key"] = key;
    }
    body
}

fn next_attempt(job: &Job) -> Lineage {
    Lineage {
        retry_of: job.job_id.clone(),
        first_job: job
            .lineage
            .as_ref()
            .map_or_else(|| job.job_id.clone(), |l| l.first_job.clone()),
        attempt: job.attempt() + 1,
    }
}
