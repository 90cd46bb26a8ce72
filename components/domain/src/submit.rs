//! `POST /api/cloud/jobs/submit`: validate, reserve the idempotency key, record
//! the job (the intent) before any provider call, package and upload local
//! datasets, create the Replicate prediction, and answer SimpleTuner's flat
//! shape with honest status codes.

use std::path::Path;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::configs::{ConfigStore, validate_body};
use crate::datasets;
use crate::delivery::{self, Delivery};
use crate::error::ApiError;
use crate::http::{HttpClient, TransportError};
use crate::idempotency::{self, Claim, Reservation};
use crate::job::{Job, JobStatus};
use crate::jobs::JobStore;
use crate::kv::{KvStore, get_json, set_json};
use crate::lifecycle::{ProviderSettings, apply_prediction};
use crate::providers::{DEFAULT_PROFILE, HardwareProfile, find_profile, profile_ids};
use crate::replicate::{PROVIDER, ReplicateClient, ReplicateError};
use crate::settings::StoredSettings;

pub struct SubmitContext<'a, H: HttpClient> {
    pub kv: &'a dyn KvStore,
    pub http: &'a H,
    pub settings: &'a ProviderSettings,
    pub principal: &'a Principal,
    /// The Hugging Face token (`hf_token` variable), if configured.
    pub hf_token: Option<&'a str>,
    /// Where the read-only datasets mount is (`/datasets` in the component).
    pub datasets_root: &'a Path,
    /// Admin-set provider settings (default profile, prices, cost limits).
    pub stored: &'a StoredSettings,
    pub now_ms: u64,
}

/// The HTTP answer: status and SimpleTuner's flat body.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub status: u16,
    pub body: Value,
}

/// Fields SimpleTuner clients send that cloudtuner accepts (some ignored).
const KNOWN_FIELDS: [&str; 12] = [
    "config",
    "dataloader_config",
    "config_name_to_load",
    "config_name",
    "tracker_run_name",
    "idempotency_key",
    "hardware_profile",
    "webhook_url",
    "snapshot_name",
    "snapshot_message",
    "upload_id",
    "delivery",
];

const VERSION_CACHE_MS: u64 = 10 * 60 * 1000;

fn ok_body(job: &Job, hit: bool, data_uploaded: bool, upload: Option<Value>) -> Value {
    json!({
        "success": true,
        "job_id": job.job_id,
        "status": job.status.as_str(),
        "idempotent_hit": hit,
        "cost_limit_warning": null,
        "quota_warnings": [],
        "data_uploaded": data_uploaded,
        "upload": upload,
        "error": null,
    })
}

fn fail(e: &ApiError, job: Option<&Job>) -> Submitted {
    let mut body = e.body();
    let extra = json!({
        "success": false,
        "job_id": job.map(|j| j.job_id.clone()),
        "status": job.map(|j| j.status.as_str()),
        "idempotent_hit": false,
        "cost_limit_warning": null,
        "data_uploaded": false,
    });
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    Submitted {
        status: e.status,
        body,
    }
}

/// The validated request.
struct Request {
    config: Value,
    dataloader: Value,
    config_name: Option<String>,
    tracker_run_name: Option<String>,
    idempotency_key: Option<String>,
    profile: &'static HardwareProfile,
    webhook_base: Option<String>,
    delivery: Delivery,
    fingerprint: String,
}

fn opt_str(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` must be a string"))),
    }
}

fn parse(
    raw: &[u8],
    provider: Option<&str>,
    configs: &ConfigStore,
    principal: &Principal,
    settings: &ProviderSettings,
    default_profile: Option<&str>,
    hf_token: Option<&str>,
) -> Result<Request, ApiError> {
    let provider = provider.unwrap_or(PROVIDER);
    if provider != PROVIDER {
        return Err(ApiError::new(
            400,
            "unknown_provider",
            format!("unknown provider {provider:?}; available: replicate"),
        ));
    }
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("request body is not JSON: {e}"),
        )
    })?;
    let Value::Object(body) = &value else {
        return Err(ApiError::new(
            400,
            "invalid_json",
            "request body must be a JSON object",
        ));
    };
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN_FIELDS.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(
            ApiError::bad_request(format!("unknown fields: {}", unknown.join(", ")))
                .with_detail("unknown_fields", unknown),
        );
    }
    let idempotency_key = match body.get("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => {
            idempotency::validate_key(k)
                .map_err(|m| ApiError::new(400, "invalid_idempotency_key", m))?;
            Some(k.clone())
        }
        Some(_) => {
            return Err(ApiError::new(
                400,
                "invalid_idempotency_key",
                "idempotency_key must be a string",
            ));
        }
    };
    let load = opt_str(body, "config_name_to_load")?;
    let (mut config, mut dataloader, mut config_name) = (json!({}), Value::Null, None);
    if let Some(name) = &load {
        let saved = configs.get(&principal.id, name)?.ok_or_else(|| {
            ApiError::new(
                400,
                "config_not_found",
                format!("no saved config named {name:?}"),
            )
            .with_detail("config_name", name.as_str())
        })?;
        config = saved.config;
        dataloader = saved.dataloader_config;
        config_name = Some(name.clone());
    }
    // Inline values override the saved ones, key by key.
    match body.get("config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(inline)) => {
            let merged = config.as_object_mut().expect("object");
            for (k, v) in inline {
                merged.insert(k.clone(), v.clone());
            }
        }
        Some(_) => {
            return Err(ApiError::new(
                400,
                "invalid_config",
                "`config` must be a JSON object",
            ));
        }
    }
    if let Some(d) = body.get("dataloader_config").filter(|d| !d.is_null()) {
        dataloader = d.clone();
    }
    if dataloader.is_null() {
        dataloader = json!([]);
    }
    if config.as_object().is_some_and(Map::is_empty) {
        return Err(ApiError::new(
            400,
            "invalid_config",
            "No configuration provided: send `config` or `config_name_to_load`",
        ));
    }
    validate_body(&config, &dataloader)?;
    config_name = opt_str(body, "config_name")?.or(config_name);
    let tracker_run_name = opt_str(body, "tracker_run_name")?;
    if tracker_run_name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(ApiError::bad_request(
            "tracker_run_name is longer than 200 characters",
        ));
    }
    let profile_name = opt_str(body, "hardware_profile")?
        .or_else(|| default_profile.map(str::to_string))
        .unwrap_or_else(|| DEFAULT_PROFILE.into());
    let profile = find_profile(&profile_name).ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_hardware_profile",
            format!(
                "Invalid Replicate hardware profile {profile_name:?}. Valid profiles: {}",
                profile_ids().join(", ")
            ),
        )
    })?;
    let webhook_base = match opt_str(body, "webhook_url")? {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => Some(u),
        Some(u) => {
            return Err(ApiError::bad_request(format!(
                "webhook_url {u:?} must be an http(s) URL"
            )));
        }
        None => settings.public_url.clone(),
    };
    let delivery = delivery::plan(&delivery::Choice {
        config: &config,
        requested: opt_str(body, "delivery")?.as_deref(),
        hf_token_set: hf_token.is_some_and(|t| !t.trim().is_empty()),
        public_url: settings.public_url.as_deref(),
    })?;
    Ok(Request {
        config,
        dataloader,
        config_name,
        tracker_run_name,
        idempotency_key,
        profile,
        webhook_base,
        delivery,
        fingerprint: idempotency::fingerprint(&value),
    })
}

/// Runs a submit; never panics, always answers.
pub async fn submit<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    provider: Option<&str>,
    raw: &[u8],
) -> Submitted {
    if !ctx.principal.has("job.submit") {
        return fail(
            &ApiError::new(403, "permission_denied", "Permission denied: job.submit")
                .with_detail("required_permission", "job.submit"),
            None,
        );
    }
    let store = JobStore::new(ctx.kv);
    let req = match parse(
        raw,
        provider,
        &ConfigStore::new(ctx.kv),
        ctx.principal,
        ctx.settings,
        ctx.stored.hardware_profile.as_deref(),
        ctx.hf_token,
    ) {
        Ok(r) => r,
        Err(e) => return fail(&e, None),
    };
    if ctx.settings.token.trim().is_empty() {
        return fail(&ReplicateError::NotConfigured.to_api_error(), None);
    }
    // Idempotency first: a replay answers the same whatever changed since.
    let reservation = match &req.idempotency_key {
        None => None,
        Some(key) => {
            match idempotency::claim(ctx.kv, &ctx.principal.id, key, &req.fingerprint, ctx.now_ms) {
                Err(e) => return fail(&ApiError::storage(e.to_string()), None),
                Ok(Claim::New(r)) => Some(r),
                Ok(Claim::Mismatch) => {
                    return fail(
                        &ApiError::new(
                            422,
                            "idempotency_key_reused",
                            "this idempotency_key was used with a different request body",
                        ),
                        None,
                    );
                }
                Ok(Claim::InProgress) => {
                    return fail(
                        &ApiError::new(
                            409,
                            "idempotency_in_progress",
                            "a request with this idempotency_key is still being processed; retry shortly",
                        ),
                        None,
                    );
                }
                Ok(Claim::Replay { job_id }) => match store.get(&job_id) {
                    Ok(Some(job)) => {
                        return Submitted {
                            status: 200,
                            body: ok_body(&job, true, job.dataset_file_url.is_some(), None),
                        };
                    }
                    Ok(None) => {
                        // Its job was deleted: the key starts over.
                        let key = req.idempotency_key.as_deref().unwrap_or_default();
                        let _ =
                            idempotency::forget(ctx.kv, &ctx.principal.id, key, &req.fingerprint);
                        match idempotency::claim(
                            ctx.kv,
                            &ctx.principal.id,
                            key,
                            &req.fingerprint,
                            ctx.now_ms,
                        ) {
                            Ok(Claim::New(r)) => Some(r),
                            _ => {
                                return fail(
                                    &ApiError::new(409, "idempotency_in_progress", "retry shortly"),
                                    None,
                                );
                            }
                        }
                    }
                    Err(e) => return fail(&e, None),
                },
            }
        }
    };
    let release = |r: &Option<Reservation>| {
        if let Some(r) = r {
            let _ = idempotency::release(ctx.kv, r);
        }
    };
    // Bad datasets are the caller's error: refuse before recording anything.
    let archive = match datasets::package(ctx.datasets_root, &req.dataloader) {
        Ok(a) => a,
        Err(e) => {
            release(&reservation);
            return fail(&e, None);
        }
    };
    // Cost: reserve this job's estimate in the spend window (and apply the limit).
    let rate = ctx.stored.rate(req.profile.id).unwrap_or(0.0);
    let estimate = crate::costs::estimate(ctx.kv, &req.config, req.profile.id, rate);
    let (cost_reservation, cost_warning) = match crate::costs::reserve(
        ctx.kv,
        ctx.stored,
        &ctx.principal.id,
        estimate.usd,
        ctx.now_ms,
    ) {
        Ok(crate::costs::Check::Allowed {
            reservation: r,
            warning,
        }) => (r, warning),
        Ok(crate::costs::Check::Blocked(e)) => {
            release(&reservation);
            return fail(&e, None);
        }
        Err(e) => {
            release(&reservation);
            return fail(&e, None);
        }
    };
    let mut job = new_job(ctx, &req, archive.is_some());
    job.cost_per_second = Some(rate);
    job.reservation = Some(cost_reservation.clone());
    job.idempotency_record = reservation.as_ref().map(|r| r.record_key().to_string());
    if let Err(e) = store.create(&job) {
        let _ = crate::costs::release(ctx.kv, &cost_reservation);
        release(&reservation);
        return fail(&e, None);
    }
    if let Some(r) = &reservation {
        let _ = idempotency::attach(ctx.kv, r, &job.job_id);
    }
    match run_provider(ctx, &store, &req, job, archive.as_ref()).await {
        Ok(job) => {
            if let Some(r) = &reservation {
                let _ = idempotency::complete(ctx.kv, r, &job.job_id);
            }
            let mut body = ok_body(
                &job,
                false,
                archive.is_some(),
                archive.as_ref().map(|a| a.summary()),
            );
            body["cost_limit_warning"] = json!(cost_warning);
            body["estimated_cost_usd"] = json!((estimate.usd * 100.0).round() / 100.0);
            Submitted { status: 201, body }
        }
        Err((e, job, ambiguous)) => {
            if let Some(r) = &reservation {
                if ambiguous {
                    let _ = idempotency::complete(ctx.kv, r, &job.job_id);
                } else {
                    let _ = idempotency::release(ctx.kv, r);
                }
            }
            fail(&e, Some(&job))
        }
    }
}

fn new_job<H: HttpClient>(ctx: &SubmitContext<'_, H>, req: &Request, uploading: bool) -> Job {
    let job_id = uuid::Uuid::new_v4().to_string();
    Job {
        webhook_url: req.webhook_base.as_ref().map(|b| {
            format!(
                "{}/api/cloud/webhooks/replicate?job={job_id}",
                b.trim_end_matches('/')
            )
        }),
        job_id,
        owner: ctx.principal.id.clone(),
        provider: PROVIDER.into(),
        status: if uploading {
            JobStatus::Uploading
        } else {
            JobStatus::Pending
        },
        config_name: req.config_name.clone(),
        created_ms: ctx.now_ms,
        started_ms: None,
        completed_ms: None,
        updated_ms: ctx.now_ms,
        refreshed_ms: None,
        cost_usd: None,
        cost_estimated: false,
        hardware_profile: req.profile.id.into(),
        hardware_type: req.profile.label(),
        error_message: None,
        output_url: None,
        prediction_id: None,
        provider_status: None,
        model: Some(req.profile.model()),
        version: None,
        tracker_run_name: req.tracker_run_name.clone(),
        input_sha256: None,
        dataset_file_url: None,
        config: req.config.clone(),
        dataloader_config: req.dataloader.clone(),
        progress: None,
        loss_history: Vec::new(),
        webhook_ids: Vec::new(),
        cost_per_second: None,
        reservation: None,
        delivery: Some(req.delivery.clone()),
        idempotency_record: None,
        extra: Map::new(),
    }
}

/// (error, the job as stored, whether the prediction may exist anyway)
type ProviderFailure = (ApiError, Job, bool);

async fn run_provider<H: HttpClient>(
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
    let credentials = match crate::s3api::job_credentials(ctx.kv, &id) {
        Ok(c) => c,
        Err(e) => return Err(fail_job(e.to_string(), ApiError::storage(e.to_string()))),
    };
    // The trainer's config may carry this server's upload credentials; the job
    // keeps the user's config.
    let trainer_config = delivery::trainer_config(
        &req.config,
        &req.delivery,
        &id,
        ctx.settings.public_url.as_deref().unwrap_or(""),
        (&credentials.0, &credentials.1),
    );
    let mut input = json!({
        "config_json": trainer_config.to_string(),
        "dataloader_json": req.dataloader.to_string(),
    });
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
    let staged = store.update::<()>(&id, |j| {
        j.version = Some(version.clone());
        j.input_sha256 = Some(input_sha.clone());
        j.dataset_file_url = dataset_url.clone();
        Ok(())
    });
    let job = staged.unwrap_or(job);
    match client.create_prediction(&create).await {
        Ok(prediction) => {
            let stored = store
                .update::<()>(&id, |j| {
                    apply_prediction(j, &prediction, now);
                    Ok(())
                })
                .map_err(|e| (ApiError::storage(format!("{e:?}")), job.clone(), true))?;
            Ok(stored)
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
