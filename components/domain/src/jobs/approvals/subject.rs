//! What the gate judges: a submit's body or a retry's job as a rule
//! [`Subject`] (priced as the submit prices it), and the body held until a
//! decision, pinned to what was judged.

use serde_json::{Map, Value, json};

use super::Held;
use super::rules::Subject;
use crate::billing::estimate::estimate;
use crate::jobs::configs::ConfigStore;
use crate::jobs::idempotency;
use crate::jobs::lifecycle::visible_job;
use crate::jobs::retry::RETRYABLE;
use crate::jobs::store::{JobStore, ListQuery};
use crate::jobs::submit::SubmitContext;
use crate::jobs::submit::request::{max_runtime, opt_str, resolve_profile, resolve_training};
use crate::kernel::error::ApiError;
use crate::kernel::http::HttpClient;
use crate::kernel::kv::KvStore;
use crate::providers::catalog::find_profile;
use crate::providers::replicate::PROVIDER;
use crate::providers::settings::StoredSettings;

const DAY_MS: u64 = 24 * 3_600_000;

/// What the gate needs of a submit besides its [`Subject`].
pub(super) struct Facts {
    pub(super) held: Held,
    pub(super) idempotency_key: Option<String>,
    pub(super) fingerprint: String,
}

/// The submit's body as the gate judges it; `None` when the submit would
/// refuse it (it answers then).
pub(super) fn submit_subject<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    provider: Option<&str>,
    raw: &[u8],
) -> Option<(Subject, Facts)> {
    let provider = provider.unwrap_or(PROVIDER);
    if provider != PROVIDER {
        return None;
    }
    let value: Value = serde_json::from_slice(raw).ok()?;
    let body = value.as_object()?;
    let training = resolve_training(body, &ConfigStore::new(ctx.kv), ctx.principal).ok()?;
    let profile = resolve_profile(
        opt_str(body, "hardware_profile").ok()?.as_deref(),
        ctx.stored.hardware_profile.as_deref(),
    )
    .ok()?;
    let minutes = max_runtime(body, ctx.stored.max_runtime_minutes).ok()?;
    let config_name = opt_str(body, "config_name").ok()?.or(training.config_name);
    let subject = Subject {
        level: ctx.principal.role.as_str().into(),
        provider: provider.into(),
        config_name,
        estimated_cost: worst_case(ctx.kv, ctx.stored, &training.config, profile.id, minutes),
        hardware_type: Some(profile.label()),
        jobs_today: 0,
        jobs_total: 0,
    };
    let mut pinned = body.clone();
    pin(
        &mut pinned,
        &training.config,
        &training.dataloader,
        &subject,
        profile.id,
        minutes,
    );
    let facts = Facts {
        held: Held::Submit {
            provider: provider.into(),
            body: Value::Object(pinned).to_string(),
        },
        idempotency_key: body_key(body)?,
        fingerprint: idempotency::fingerprint(&value),
    };
    Some((subject, facts))
}

/// The body as judged: a saved config (`config_name_to_load`) merged in, the
/// hardware profile and deadline the defaults gave, so what runs once
/// approved is what the approver saw, whatever the submitter or an admin
/// changes meanwhile.
fn pin(
    body: &mut Map<String, Value>,
    config: &Value,
    dataloader: &Value,
    subject: &Subject,
    profile: &str,
    minutes: Option<u32>,
) {
    body.remove("config_name_to_load");
    body.insert("config".into(), config.clone());
    body.insert("dataloader_config".into(), dataloader.clone());
    if let Some(name) = &subject.config_name {
        body.insert("config_name".into(), json!(name));
    }
    body.insert("hardware_profile".into(), json!(profile));
    if let Some(m) = minutes {
        body.insert("max_runtime_minutes".into(), json!(m));
    }
}

/// The retry's job as the gate judges it; `None` when the retry would refuse.
pub(super) fn retry_subject<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    job_id: &str,
    header_key: Option<&str>,
    raw: &[u8],
) -> Option<(Subject, Facts)> {
    let job = visible_job(&JobStore::new(ctx.kv), ctx.principal, job_id).ok()?;
    if !RETRYABLE.contains(&job.status) {
        return None;
    }
    let profile = find_profile(&job.hardware_profile)?;
    let body_key = match raw.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => {
            let value: Value = serde_json::from_slice(raw).ok()?;
            body_key(value.as_object()?)?
        }
    };
    let header_key = header_key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let subject = Subject {
        level: ctx.principal.role.as_str().into(),
        provider: job.provider.clone(),
        config_name: job.config_name.clone(),
        estimated_cost: worst_case(
            ctx.kv,
            ctx.stored,
            &job.config,
            profile.id,
            job.max_runtime_minutes,
        ),
        hardware_type: Some(profile.label()),
        jobs_today: 0,
        jobs_total: 0,
    };
    let key = header_key.clone().or(body_key);
    let facts = Facts {
        fingerprint: idempotency::fingerprint(&json!({"retry_of": job_id, "key": key})),
        held: Held::Retry {
            job_id: job_id.into(),
            header_key,
            body: String::from_utf8(raw.to_vec()).ok()?,
        },
        idempotency_key: key,
    };
    Some((subject, facts))
}

/// A valid `idempotency_key` of the body: `Some(None)` when there is none,
/// `None` when it is invalid (the submit refuses it).
fn body_key(body: &Map<String, Value>) -> Option<Option<String>> {
    match body.get("idempotency_key") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(k)) if idempotency::validate_key(k).is_ok() => Some(Some(k.clone())),
        Some(_) => None,
    }
}

/// What the submit reserves: the estimate, or with a deadline the cost of
/// running to it (as `jobs::submit`'s `record`).
fn worst_case(
    kv: &dyn KvStore,
    stored: &StoredSettings,
    config: &Value,
    profile: &str,
    minutes: Option<u32>,
) -> f64 {
    let rate = stored.rate(profile).unwrap_or(0.0);
    match minutes {
        Some(m) => rate * f64::from(m) * 60.0,
        None => estimate(kv, config, profile, rate).usd,
    }
}

/// The submitter's jobs in the last 24 hours and in all.
pub(super) fn count_jobs(
    kv: &dyn KvStore,
    user: &str,
    now_ms: u64,
) -> Result<(u64, u64), ApiError> {
    let query = ListQuery {
        owner: Some(user.to_string()),
        status: None,
        provider: None,
        limit: 500,
        offset: 0,
    };
    let mut today = 0;
    let total = JobStore::new(kv).list_into(&query, |e| {
        if e.created_ms + DAY_MS > now_ms {
            today += 1;
        }
    })?;
    Ok((today, total as u64))
}
