//! The approval gate in front of the submit and the retry: a submit a rule
//! holds becomes a pending [`ApprovalRequest`] and is answered 202
//! (SimpleTuner's submit shape with `approval_required: true`); nothing is
//! recorded as a job and nothing is sent to Replicate.
//!
//! The gate reads the body with the submit's own parsers and prices it as
//! the submit does (the estimate, or the `max_runtime_minutes` worst case).
//! A body the submit would refuse is let through, so the submit's error
//! answers it. A store outage while reading the rules is a 503: a rule that
//! cannot be read must not let an expensive run through.
//!
//! The same `idempotency_key` while its request is pending answers that
//! request again (no second request); once approved, the submit replays the
//! job it made; once refused, it says so (409).

use serde_json::json;

use super::rules::{Subject, first_match, needs_history};
use super::subject::{Facts, count_jobs, retry_subject, submit_subject};
use super::{ApprovalRequest, DEFAULT_EXPIRES_HOURS, RequestStore, RuleStore, Status};
use crate::auth::orgs::numbers::UserNumbers;
use crate::auth::principal::{Permission, Principal};
use crate::jobs::store::JobStore;
use crate::jobs::submit::{SubmitContext, Submitted};
use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::event_log::{self, NewEvent};
use crate::kernel::http::HttpClient;
use crate::kernel::kv::KvStore;

/// Pending requests one user may have at once (more is a 429): held bodies
/// are kept until decided.
pub const MAX_PENDING_PER_USER: usize = 20;

/// The rule that holds a submit, as the request records it.
struct Holder {
    rule_id: u64,
    rule_name: String,
    required_level: String,
    expires_hours: u32,
    reason: String,
}

/// The rules a submit is judged by; `None` when nothing can hold it (the
/// caller may not submit — the submit refuses it — or no rule is active), so
/// an installation without rules pays one store read.
fn rules_to_judge<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
) -> Result<Option<Vec<super::Rule>>, ApiError> {
    if !ctx.principal.has(Permission::JobSubmit) {
        return Ok(None);
    }
    let rules = RuleStore::new(ctx.kv).list()?;
    Ok(rules.iter().any(|r| r.is_active).then_some(rules))
}

/// Runs before `jobs::submit::submit`: `Some(answer)` when the submit is
/// held for approval (or replays a held one), `None` to go on submitting.
pub fn gate<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    provider: Option<&str>,
    raw: &[u8],
) -> Result<Option<Submitted>, ApiError> {
    let Some(rules) = rules_to_judge(ctx)? else {
        return Ok(None);
    };
    let Some((subject, facts)) = submit_subject(ctx, provider, raw) else {
        return Ok(None);
    };
    judge(ctx, &rules, subject, facts)
}

/// Runs before `jobs::retry::retry`: the same gate for a re-run of `job_id`.
pub fn gate_retry<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    job_id: &str,
    header_key: Option<&str>,
    raw: &[u8],
) -> Result<Option<Submitted>, ApiError> {
    let Some(rules) = rules_to_judge(ctx)? else {
        return Ok(None);
    };
    let Some((subject, facts)) = retry_subject(ctx, job_id, header_key, raw) else {
        return Ok(None);
    };
    judge(ctx, &rules, subject, facts)
}

/// For the quota check (issue 27, item 2): a `require_approval` quota the
/// submit would cross holds it here instead of refusing it. Call it where
/// the quota answers `approval_required`, with the quota named in `reason`
/// ("Daily cost quota ($50.00) would be exceeded: $48.00 used"); it answers
/// the 202 to return, or `None` when the body does not parse (let the submit
/// answer it). The request is decided like any other (leads and admins);
/// its `rule_id` is 0 and its `rule_name` `quota`.
pub fn open_for_quota<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    provider: Option<&str>,
    raw: &[u8],
    reason: &str,
) -> Result<Option<Submitted>, ApiError> {
    let Some((subject, facts)) = submit_subject(ctx, provider, raw) else {
        return Ok(None);
    };
    match replay(ctx, &facts)? {
        Replay::Fresh => {}
        Replay::Answer(answer) => return Ok(Some(answer)),
    }
    let holder = Holder {
        rule_id: 0,
        rule_name: "quota".into(),
        required_level: "lead".into(),
        expires_hours: DEFAULT_EXPIRES_HOURS,
        reason: reason.to_string(),
    };
    open(ctx, &holder, subject, facts).map(Some)
}

fn judge<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    rules: &[super::Rule],
    mut subject: Subject,
    facts: Facts,
) -> Result<Option<Submitted>, ApiError> {
    match replay(ctx, &facts)? {
        Replay::Fresh => {}
        Replay::Answer(answer) => return Ok(Some(answer)),
    }
    if rules.iter().any(|r| r.is_active && needs_history(r)) {
        (subject.jobs_today, subject.jobs_total) =
            count_jobs(ctx.kv, &ctx.principal.id, ctx.now_ms)?;
    }
    let Some((rule, reason)) = first_match(rules, &subject) else {
        return Ok(None);
    };
    let holder = Holder {
        rule_id: rule.id,
        rule_name: rule.name.clone(),
        required_level: rule.required_approver_level.clone(),
        expires_hours: rule.expires_hours,
        reason,
    };
    open(ctx, &holder, subject, facts).map(Some)
}

/// What an idempotency key already did.
enum Replay {
    /// Nothing: judge the submit.
    Fresh,
    /// The answer for its request: still pending (202), or the job its
    /// approval made (200, as the submit's replay).
    Answer(Submitted),
}

/// A submit whose idempotency key already opened a request: that request
/// again while pending; after approval the job it made (the held body was
/// pinned, so the submit's own replay could not match it).
fn replay<H: HttpClient>(ctx: &SubmitContext<'_, H>, facts: &Facts) -> Result<Replay, ApiError> {
    let Some(key) = &facts.idempotency_key else {
        return Ok(Replay::Fresh);
    };
    let store = RequestStore::new(ctx.kv);
    let Some(found) = store.by_key(&ctx.principal.id, key)? else {
        return Ok(Replay::Fresh);
    };
    if found.fingerprint != facts.fingerprint {
        return Err(ApiError::new(
            422,
            "idempotency_key_reused",
            "this idempotency_key was used for a different submit that is held for approval; \
             use a new key",
        )
        .with_detail("approval_request_id", found.id));
    }
    let found = super::decide::expire_if_due(ctx.kv, found, ctx.now_ms)?;
    match found.status {
        Status::Pending => Ok(Replay::Answer(held_answer(&found, true))),
        Status::Approved => approved_replay(ctx.kv, &found).map(Replay::Answer),
        other => Err(ApiError::new(
            409,
            "approval_closed",
            format!(
                "the submit with this idempotency_key was {} (approval request {}{}); submit it \
                 again with a new key",
                other.as_str(),
                found.id,
                found
                    .review_notes
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            ),
        )
        .with_detail("approval_request_id", found.id)
        .with_detail("approval_status", other.as_str())),
    }
}

/// The submit's replay answer for the job an approved request made; 409
/// when its submit failed (the key then needs a new submit).
fn approved_replay(kv: &dyn KvStore, r: &ApprovalRequest) -> Result<Submitted, ApiError> {
    let job = match &r.job_id {
        Some(id) => JobStore::new(kv).get(id)?,
        None => None,
    };
    let Some(job) = job else {
        let why = r
            .dispatched
            .as_ref()
            .and_then(|d| d.error.clone())
            .unwrap_or_else(|| "its job is not recorded".into());
        return Err(ApiError::new(
            409,
            "approval_closed",
            format!(
                "approval request {} was approved but its submit failed: {why}; submit again \
                 with a new idempotency_key",
                r.id
            ),
        )
        .with_detail("approval_request_id", r.id));
    };
    Ok(Submitted {
        status: 200,
        body: json!({
            "success": true,
            "job_id": job.job_id,
            "status": job.status.as_str(),
            "idempotent_hit": true,
            "approval_request_id": r.id,
            "cost_limit_warning": null,
            "quota_warnings": [],
            "data_uploaded": job.dataset_file_url.is_some(),
            "upload": null,
            "error": null,
        }),
    })
}

/// Stores the pending request and answers 202.
fn open<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    holder: &Holder,
    subject: Subject,
    facts: Facts,
) -> Result<Submitted, ApiError> {
    let store = RequestStore::new(ctx.kv);
    let mine = store
        .pending()?
        .iter()
        .filter(|r| r.submitter.id == ctx.principal.id)
        .count();
    if mine >= MAX_PENDING_PER_USER {
        return Err(ApiError::new(
            429,
            "too_many_pending_approvals",
            format!(
                "you have {mine} submits waiting for approval; wait for a decision or cancel one"
            ),
        ));
    }
    let request = store.create(ApprovalRequest {
        id: 0,
        status: Status::Pending,
        submitter: ctx.principal.clone(),
        user_number: UserNumbers::new(ctx.kv).number(&ctx.principal.id)?,
        rule_id: holder.rule_id,
        rule_name: holder.rule_name.clone(),
        required_level: holder.required_level.clone(),
        reason: holder.reason.clone(),
        provider: subject.provider,
        config_name: subject.config_name,
        estimated_cost: subject.estimated_cost,
        hardware_type: subject.hardware_type,
        held: facts.held,
        idempotency_key: facts.idempotency_key.clone(),
        fingerprint: facts.fingerprint,
        created_ms: ctx.now_ms,
        expires_ms: ctx.now_ms + u64::from(holder.expires_hours) * 3_600_000,
        reviewed_by: None,
        reviewed_by_number: None,
        reviewed_ms: None,
        review_notes: None,
        job_id: None,
        dispatched: None,
    })?;
    if let Some(key) = &facts.idempotency_key
        && !store.claim_key(&ctx.principal.id, key, request.id)?
    {
        // A racing submit with the same key opened one first: ours goes.
        withdraw(&store, request.id, ctx.now_ms);
        let first = store.by_key(&ctx.principal.id, key)?.ok_or_else(|| {
            ApiError::unavailable("a submit with this idempotency_key is being held; try again")
        })?;
        return Ok(held_answer(&first, true));
    }
    audit(ctx.kv, ctx.principal, &request, ctx.now_ms);
    super::announce(ctx.kv, &request, ctx.now_ms);
    Ok(held_answer(&request, false))
}

fn withdraw(store: &RequestStore, id: u64, now_ms: u64) {
    let _ = store.update(id, |r| {
        r.status = Status::Cancelled;
        r.reviewed_ms = Some(now_ms);
        r.review_notes = Some("a duplicate of a submit with the same idempotency_key".into());
        Ok(())
    });
    let _ = store.unlist_pending(id);
}

fn audit(kv: &dyn KvStore, p: &Principal, r: &ApprovalRequest, now_ms: u64) {
    event_log::record(
        kv,
        NewEvent {
            kind: "approval.requested",
            actor: &p.id,
            target: Some(&format!("approval:{}", r.id)),
            owner: Some(&r.submitter.id),
            detail: json!({"rule_id": r.rule_id, "rule": r.rule_name, "reason": r.reason,
                "estimated_cost_usd": (r.estimated_cost * 100.0).round() / 100.0,
                "retry_of": r.to_api()["retry_of"]}),
        },
        now_ms,
    );
}

/// The 202 a held submit answers: SimpleTuner's submit shape, no job yet.
pub fn held_answer(r: &ApprovalRequest, hit: bool) -> Submitted {
    let message = format!(
        "This job needs approval before it runs: {}. Approval request {} is waiting for a {} \
         (or an admin); nothing has been sent to Replicate. It expires at {} if nobody decides.",
        r.reason,
        r.id,
        r.required_level,
        rfc3339(r.expires_ms)
    );
    Submitted {
        status: 202,
        body: json!({
            "success": true,
            "job_id": null,
            "status": "pending_approval",
            "approval_required": true,
            "approval_request_id": r.id,
            "approval": r.to_api(),
            "reason": r.reason,
            "message": message,
            "idempotent_hit": hit,
            "cost_limit_warning": null,
            "quota_warnings": [],
            "data_uploaded": false,
            "estimated_cost_usd": (r.estimated_cost * 100.0).round() / 100.0,
            "error": null,
        }),
    }
}
