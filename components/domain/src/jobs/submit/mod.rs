//! `POST /api/cloud/jobs/submit`: validate, reserve the idempotency key, record
//! the job (the intent) before any provider call, package and upload local
//! datasets, create the Replicate prediction, and answer SimpleTuner's flat
//! shape with honest status codes.
//!
//! Until the job is recorded, whatever a submit has taken (its idempotency
//! key, its spend reservation) is given back in one place when it fails
//! ([`Taken::give_back`]). Once the job exists, a failure is recorded on the
//! job instead, which settles its reservation like any finished job.

pub mod lycoris;
mod provider;
pub mod request;

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::auth::principal::Permission;
use crate::auth::principal::Principal;
use crate::billing::estimate::{Estimate, estimate};
use crate::billing::limits::{self, Check};
use crate::billing::quotas::usage::{self as quotas, QuotaHold, Reserved};
use crate::jobs::datasets::{self, Archive};
use crate::jobs::idempotency::{self, Begun, Reservation};
use crate::jobs::record::{Job, JobStatus, Lineage};
use crate::jobs::store::JobStore;
use crate::kernel::error::ApiError;
use crate::kernel::http::HttpClient;
use crate::kernel::kv::KvStore;
use crate::providers::replicate::{PROVIDER, ReplicateError};
use crate::providers::settings::{ProviderSettings, StoredSettings};

use provider::run_provider;
use request::{Request, parse};

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

/// Why a submit was refused: the error, and the job when one was recorded.
struct Refused {
    error: ApiError,
    job: Option<Job>,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused { error, job: None }
    }
}

/// Runs a submit; never panics, always answers.
pub async fn submit<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    provider: Option<&str>,
    raw: &[u8],
) -> Submitted {
    run(ctx, provider, raw, None)
        .await
        .unwrap_or_else(|r| fail(&r.error, r.job.as_ref()))
}

/// A submit of `raw` that records the new job as an attempt of an earlier
/// one (`POST /jobs/{id}/retry`).
pub(crate) async fn submit_attempt<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    raw: &[u8],
    lineage: Lineage,
) -> Submitted {
    run(ctx, Some(PROVIDER), raw, Some(lineage))
        .await
        .unwrap_or_else(|r| fail(&r.error, r.job.as_ref()))
}

async fn run<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    provider: Option<&str>,
    raw: &[u8],
    lineage: Option<Lineage>,
) -> Result<Submitted, Refused> {
    ctx.principal.require(Permission::JobSubmit)?;
    let req = parse(
        raw,
        provider,
        &crate::jobs::configs::ConfigStore::new(ctx.kv),
        ctx.principal,
        ctx.settings,
        ctx.stored,
        ctx.hf_token,
    )?;
    if ctx.settings.token.trim().is_empty() {
        return Err(ReplicateError::NotConfigured.to_api_error().into());
    }
    let store = JobStore::new(ctx.kv);
    // Idempotency first: a replay answers the same whatever changed since.
    let key = match &req.idempotency_key {
        None => None,
        Some(key) => match idempotency::begin(
            ctx.kv,
            &ctx.principal.id,
            key,
            &req.fingerprint,
            ctx.now_ms,
            |id| store.get(id),
        )? {
            Begun::Replay(job) => {
                return Ok(Submitted {
                    status: 200,
                    body: ok_body(&job, true, job.dataset_file_url.is_some(), None),
                });
            }
            Begun::New(r) => Some(r),
        },
    };
    let mut taken = Taken {
        kv: ctx.kv,
        key,
        spend: None,
        quota: None,
    };
    let recorded = match record(ctx, &store, &req, &mut taken, lineage) {
        Ok(r) => r,
        Err(e) => {
            taken.give_back();
            return Err(e.into());
        }
    };
    let job_id = recorded.job.job_id.clone();
    // A key that does not name its job could not lead a retry to it: nothing
    // goes to the provider unless it does (so a key left in progress without
    // a job never has a prediction behind it, and is reusable once stale).
    if let Some(r) = &taken.key
        && let Err(e) = idempotency::attach(ctx.kv, r, &job_id)
    {
        let _ = idempotency::release(ctx.kv, r);
        let job = abandon(&store, recorded.job, ctx.now_ms);
        return Err(Refused {
            error: e.into(),
            job: Some(job),
        });
    }
    let outcome = run_provider(ctx, &store, &req, recorded.job, recorded.archive.as_ref()).await;
    // The job exists now: a replay must find it unless nothing can have been
    // created at the provider, in which case a retry may run afresh. After a
    // store outage the key already names the job (attached above), and the
    // sync that adopts its prediction completes it.
    if let Some(r) = &taken.key {
        let _ = match &outcome {
            Err((_, _, false)) => idempotency::release(ctx.kv, r),
            _ => provider::with_retries(|| idempotency::complete(ctx.kv, r, &job_id)),
        };
    }
    let job = outcome.map_err(|(error, job, _)| Refused {
        error,
        job: Some(job),
    })?;
    let archive = recorded.archive.as_ref();
    let mut body = ok_body(
        &job,
        false,
        archive.is_some(),
        archive.map(Archive::summary),
    );
    crate::kernel::counters::count(ctx.kv, crate::kernel::counters::Event::Submit, 1);
    crate::kernel::event_log::record(
        ctx.kv,
        crate::kernel::event_log::NewEvent {
            kind: if job.lineage.is_some() {
                "job.retried"
            } else {
                "job.submitted"
            },
            actor: &ctx.principal.id,
            target: Some(&job.job_id),
            owner: Some(&job.owner),
            detail: json!({"hardware_profile": job.hardware_profile, "attempt": job.attempt(),
                "retry_of": job.lineage.as_ref().map(|l| l.retry_of.as_str()),
                "estimated_cost_usd": (recorded.estimate.usd * 100.0).round() / 100.0}),
        },
        ctx.now_ms,
    );
    body["cost_limit_warning"] = json!(recorded.warning);
    body["quota_warnings"] = json!(recorded.quota_warnings);
    body["estimated_cost_usd"] = json!((recorded.estimate.usd * 100.0).round() / 100.0);
    Ok(Submitted { status: 201, body })
}

/// What a submit holds before its job is recorded.
struct Taken<'a> {
    kv: &'a dyn KvStore,
    key: Option<Reservation>,
    spend: Option<limits::Reservation>,
    quota: Option<QuotaHold>,
}

impl Taken<'_> {
    /// The submit failed before its job existed: a retry starts afresh and the
    /// spend it reserved is free again.
    fn give_back(&self) {
        if let Some(r) = &self.spend {
            let _ = limits::release(self.kv, r);
        }
        if let Some(h) = &self.quota {
            let _ = quotas::release(self.kv, h);
        }
        if let Some(r) = &self.key {
            let _ = idempotency::release(self.kv, r);
        }
    }
}

/// Fails a job recorded for a submit that stopped before any provider call
/// (best effort: a job the store will not update is failed by the sync once
/// stale, as it never reached the provider).
fn abandon(store: &JobStore, job: Job, now_ms: u64) -> Job {
    store
        .update::<()>(&job.job_id, |j| {
            j.error_message = Some(
                "the data store failed before the job was sent to Replicate; submit it again"
                    .into(),
            );
            let _ = j.transition(JobStatus::Failed, now_ms);
            Ok(())
        })
        .unwrap_or(job)
}

/// The job as recorded before any provider call, and what came with it.
struct Recorded {
    job: Job,
    archive: Option<Archive>,
    estimate: Estimate,
    warning: Option<String>,
    /// `warn` quotas the job went past (SimpleTuner's `quota_warnings`).
    quota_warnings: Vec<String>,
}

/// Packages the datasets, reserves the estimate under the cost limit and
/// records the job: the intent, written before any provider call.
fn record<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    store: &JobStore,
    req: &Request,
    taken: &mut Taken,
    lineage: Option<Lineage>,
) -> Result<Recorded, ApiError> {
    // Bad datasets are the caller's error: refuse before recording anything.
    let sources = datasets::Sources::new(ctx.datasets_root, ctx.kv, &ctx.principal.id);
    let archive = datasets::package(&sources, &req.dataloader)?;
    let rate = ctx.stored.rate(req.profile.id).unwrap_or(0.0);
    let mut estimate = estimate(ctx.kv, &req.config, req.profile.id, rate);
    // With a deadline the job cannot cost more than running to it: reserve
    // that worst case, so a blocking limit is exact.
    if let Some(minutes) = req.max_runtime_minutes {
        estimate.usd = rate * f64::from(minutes) * 60.0;
    }
    let (spend, warning) = match limits::reserve(
        ctx.kv,
        ctx.stored,
        &ctx.principal.id,
        estimate.usd,
        ctx.now_ms,
    )? {
        Check::Allowed {
            reservation,
            warning,
        } => (reservation, warning),
        Check::Blocked(e) => return Err(e),
    };
    taken.spend = Some(spend.clone());
    // Quotas after the spend limit: both are taken by atomic increments, and
    // whatever a refusal leaves is given back by `Taken::give_back`.
    let (reserved, team) = quotas::reserve_submit(
        ctx.kv,
        &ctx.principal.id,
        &ctx.principal.username,
        req.team_id,
        estimate.usd,
        ctx.now_ms,
    )?;
    let (hold, quota_warnings) = match reserved {
        Reserved::Allowed { hold, warnings } => (hold, warnings),
        Reserved::Refused(e) => return Err(e),
    };
    taken.quota = Some(hold.clone());
    let mut job = new_job(ctx, req, archive.is_some());
    job.cost_per_second = Some(rate);
    job.reservation = Some(spend);
    job.quota_hold = Some(hold);
    job.team_id = team;
    job.idempotency_record = taken.key.as_ref().map(|r| r.record_key().to_string());
    job.lineage = lineage;
    job.max_runtime_minutes = req.max_runtime_minutes;
    job.deadline_ms = req
        .max_runtime_minutes
        .map(|m| ctx.now_ms + u64::from(m) * 60_000);
    store.create(&mut job)?;
    Ok(Recorded {
        job,
        archive,
        estimate,
        warning,
        quota_warnings,
    })
}

fn new_job<H: HttpClient>(ctx: &SubmitContext<'_, H>, req: &Request, uploading: bool) -> Job {
    let job_id = uuid::Uuid::new_v4().to_string();
    Job {
        webhook_url: req.webhook_base.as_ref().map(|b| {
            format!(
                "{}{}?job={job_id}",
                b.trim_end_matches('/'),
                request::WEBHOOK_ROUTE
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
        quota_hold: None,
        team_id: None,
        delivery: Some(req.delivery.clone()),
        idempotency_record: None,
        rev: 0,
        list_pages: None,
        logs_pending: false,
        lineage: None,
        max_runtime_minutes: None,
        deadline_ms: None,
        error_code: None,
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests;
