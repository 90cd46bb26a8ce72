//! The provider half of a submit: upload the datasets, resolve the trainer's
//! version, record the intent, create the prediction.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::SubmitContext;
use super::request::Request;
use crate::jobs::datasets;
use crate::jobs::delivery;
use crate::jobs::lifecycle::apply_prediction;
use crate::jobs::record::{Job, JobStatus};
use crate::jobs::store::JobStore;
use crate::kernel::error::ApiError;
use crate::kernel::http::{HttpClient, TransportError};
use crate::kernel::kv::{get_json, set_json};
use crate::providers::replicate::{PROVIDER, ReplicateClient, ReplicateError};

const VERSION_CACHE_MS: u64 = 10 * 60 * 1000;

/// (error, the job as stored, whether the prediction may exist anyway)
pub(super) type ProviderFailure = (ApiError, Job, bool);

pub(super) async fn run_provider<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    store: &JobStore<'_>,
    req: &Request,
    job: Job,
    archive: Option<&datasets::Archive>,
) -> Result<Job, ProviderFailure> {
    let id = job.job_id.clone();
    let original = job.clone();
    let fail_job = |message: String, e: ApiError| -> ProviderFailure {
        let now = ctx.now_ms;
        let stored = store
            .update::<()>(&id, |j| {
                j.error_message = Some(message.clone());
                let _ = j.transition(JobStatus::Failed, now);
                Ok(())
            })
            .unwrap_or_else(|_| original.clone());
        (e, stored, false)
    };
    let client = match ReplicateClient::new(ctx.http, &ctx.settings.api_base, &ctx.settings.token) {
        Ok(c) => c,
        Err(e) => return Err(fail_job(e.message(), e.to_api_error())),
    };
    let credentials = match crate::storage::s3::job_credentials(ctx.kv, &id) {
        Ok(c) => c,
        Err(e) => return Err(fail_job(e.to_string(), ApiError::from(e))),
    };
    // The trainer's config may carry this server's upload credentials; the job
    // keeps the user's config.
    let trainer_config = super::lycoris::without_setting(delivery::trainer_config(
        &req.config,
        &req.delivery,
        &id,
        ctx.settings.public_url.as_deref().unwrap_or(""),
        (&credentials.0, &credentials.1),
    ));
    let mut input = json!({
        "config_json": trainer_config.to_string(),
        "dataloader_json": req.dataloader.to_string(),
    });
    // SimpleTuner 4.10.1's name for it (the Cog declares `lycoris_config`).
    if let Some(lycoris) = &req.lycoris {
        input["lycoris_config"] = json!(lycoris);
    }
    if let (Some(repo), Some(token)) = (&req.delivery.hub_model_id, ctx.hf_token) {
        input["hf_token"] = json!(token);
        input["hub_model_id"] = json!(repo);
    }
    if let Some(a) = archive {
        let file = match client
            .upload_file(&format!("{id}-datasets.zip"), "application/zip", &a.bytes)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                return Err(fail_job(
                    format!("dataset upload failed: {}", e.message()),
                    e.to_api_error(),
                ));
            }
        };
        let sha = file.pointer("/checksums/sha256").and_then(Value::as_str);
        if sha != Some(a.sha256.as_str()) {
            let e = ApiError::provider(PROVIDER, 502, "uploaded dataset checksum does not match");
            return Err(fail_job(e.message.clone(), e));
        }
        let Some(url) = file.pointer("/urls/get").and_then(Value::as_str) else {
            let e = ApiError::provider(PROVIDER, 502, "file upload answer has no urls.get");
            return Err(fail_job(e.message.clone(), e));
        };
        input["images"] = json!(url);
    }
    let model = req.profile.model();
    let version = match ctx
        .stored
        .version_override
        .as_deref()
        .and_then(|o| o.split_once(':'))
    {
        Some((m, v)) if m == model => v.to_string(),
        Some((m, _)) => {
            let e = ApiError::new(
                409,
                "version_override_mismatch",
                format!(
                    "version_override names {m}, but profile {} runs {model}; clear it or pick that profile",
                    req.profile.id
                ),
            );
            return Err(fail_job(e.message.clone(), e));
        }
        None => match cached_version(ctx, &client, &model).await {
            Ok(v) => v,
            Err(e) => return Err(fail_job(e.message(), e.to_api_error())),
        },
    };
    let input_sha = hex::encode(Sha256::digest(input.to_string().as_bytes()));
    let mut create = json!({"version": format!("{model}:{version}"), "input": input});
    if let Some(hook) = &job.webhook_url {
        create["webhook"] = json!(hook);
        create["webhook_events_filter"] = json!(["start", "output", "logs", "completed"]);
    }
    // The intent, completed: enough for a sync to recognise the prediction if
    // the create answer is lost.
    let now = ctx.now_ms;
    let dataset_url = input
        .get("images")
        .and_then(Value::as_str)
        .map(str::to_string);
    // Without the hash stored, a sync could not tell this job's prediction
    // from a stranger's: nothing goes to Replicate unless it is.
    let staged = store.update::<()>(&id, |j| {
        j.version = Some(version.clone());
        j.input_sha256 = Some(input_sha.clone());
        j.dataset_file_url = dataset_url.clone();
        Ok(())
    });
    let job = match staged {
        Ok(job) => job,
        Err(e) => {
            let e = ApiError::from(e.into_kv(&format!("job {id}")));
            return Err(fail_job(
                "the data store failed before the job was sent to Replicate; submit it again"
                    .into(),
                e,
            ));
        }
    };
    match client
        .create_prediction(&create, req.max_runtime_minutes)
        .await
    {
        Ok(prediction) => {
            let mut retried = false;
            let recorded = with_retries(|| {
                let job = store
                    .update::<()>(&id, |j| {
                        apply_prediction(j, &prediction, now);
                        Ok(())
                    })
                    .map_err(|e| ApiError::from(e.into_kv(&format!("job {id}"))))?;
                // What failed may have been the listing after the record.
                if std::mem::replace(&mut retried, true) {
                    store.list_again(&job)?;
                }
                Ok::<_, ApiError>(job)
            });
            recorded.map_err(|_| (created_unrecorded(&id, &prediction), job.clone(), true))
        }
        Err(ReplicateError::Transport(TransportError::Failed(m))) => {
            let message = format!(
                "Replicate did not answer the create request ({m}); if the prediction was created, \
                 the next sync adopts it into this job"
            );
            let stored = store
                .update::<()>(&id, |j| {
                    j.error_message = Some(message.clone());
                    Ok(())
                })
                .unwrap_or(job);
            Err((
                ApiError::provider(PROVIDER, 502, message).with_detail("job_id", id.as_str()),
                stored,
                true,
            ))
        }
        Err(e) => Err(fail_job(e.message(), e.to_api_error())),
    }
}

/// Pauses between attempts to record a prediction Replicate already created:
/// a store restarting (Redis reloading its append-only file) is often back
/// within a couple of seconds, and answering the job beats any 503.
const RECORD_RETRY_PAUSES_MS: [u64; 3] = [200, 600, 1200];

/// `f`, tried again after each pause of [`RECORD_RETRY_PAUSES_MS`] while it fails.
pub(super) fn with_retries<T, E>(mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut result = f();
    for pause in RECORD_RETRY_PAUSES_MS {
        if result.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(pause));
        result = f();
    }
    result
}

/// The answer for a training Replicate created that could not be recorded
/// here: not a failure (a client retrying a failure would train twice) but a
/// 503 saying where it is. The job record and its input hash exist, so the
/// next sync adopts the prediction into this job.
fn created_unrecorded(job_id: &str, prediction: &Value) -> ApiError {
    let prediction_id = prediction.get("id").and_then(Value::as_str).unwrap_or("");
    ApiError::unavailable(format!(
        "your training was created at Replicate (prediction {prediction_id}) as job {job_id}, \
         but the data store is unavailable, so it is not recorded yet; it appears in your job \
         list after the next sync. Do not submit it again: retry with the same idempotency_key, \
         or look for job {job_id}"
    ))
    .with_detail("job_id", job_id)
    .with_detail("prediction_id", prediction_id)
    .with_detail("provider", PROVIDER)
}

/// The latest version of a trainer model, cached for 10 minutes in KV so a
/// submit costs one Replicate call, not two.
async fn cached_version<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    client: &ReplicateClient<'_, H>,
    model: &str,
) -> Result<String, ReplicateError> {
    let key = format!("cache:version:{model}");
    if let Ok(Some(cached)) = get_json::<Value>(ctx.kv, &key)
        && cached["fetched_ms"]
            .as_u64()
            .is_some_and(|t| ctx.now_ms < t + VERSION_CACHE_MS)
        && let Some(id) = cached["id"].as_str()
    {
        return Ok(id.to_string());
    }
    let id = client.latest_version(model).await?;
    let _ = set_json(ctx.kv, &key, &json!({"id": id, "fetched_ms": ctx.now_ms}));
    Ok(id)
}
