//! Deciding a request: approve, reject, cancel, expire. Each is one
//! compare-and-swap from `pending` on the request record, so of racing
//! deciders exactly one wins; the others get 409 with the status it has.
//! Only the approver whose swap won dispatches the held submit
//! ([`dispatch`]), as the submitter, so two approvals make one job.

use serde_json::{Value, json};

use super::{ApprovalRequest, Dispatched, Held, RequestStore, Status, level_rank};
use crate::auth::orgs::numbers::UserNumbers;
use crate::auth::principal::{AuthMethod, Permission, Principal};
use crate::auth::users::UserStore;
use crate::jobs::retry::retry;
use crate::jobs::submit::{SubmitContext, Submitted, submit};
use crate::kernel::error::ApiError;
use crate::kernel::event_log::{self, NewEvent};
use crate::kernel::http::HttpClient;
use crate::kernel::kv::KvStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    /// By the submitter (or an approver): the submit is withdrawn.
    Cancel,
}

impl Decision {
    fn status(self) -> Status {
        match self {
            Decision::Approve => Status::Approved,
            Decision::Reject => Status::Rejected,
            Decision::Cancel => Status::Cancelled,
        }
    }
}

/// 409: the request is no longer pending.
pub fn closed(r: &ApprovalRequest) -> ApiError {
    ApiError::new(
        409,
        "approval_already_decided",
        format!(
            "Approval request {} is already {}{}",
            r.id,
            r.status.as_str(),
            match r.status {
                Status::Expired => " (nobody decided before it expired)",
                _ => "",
            }
        ),
    )
    .with_detail("status", r.status.as_str())
}

/// Whether `p` may approve or reject `r`: `admin.approve` and at least the
/// rule's approver level. Nobody but an admin decides their own submit.
pub fn may_decide(p: &Principal, r: &ApprovalRequest) -> Result<(), ApiError> {
    p.require(Permission::AdminApprove)?;
    if level_rank(p.role.as_str()) < level_rank(&r.required_level) {
        return Err(ApiError::new(
            403,
            "approver_level_too_low",
            format!(
                "Approval request {} needs a {} to decide it",
                r.id, r.required_level
            ),
        ));
    }
    if p.id == r.submitter.id && !p.is_admin() {
        return Err(ApiError::new(
            403,
            "self_approval",
            "you cannot decide your own submit; another lead or an admin must",
        ));
    }
    Ok(())
}

/// Decides request `id` for `p`. A reject needs a reason in `notes`.
pub fn decide(
    kv: &dyn KvStore,
    p: &Principal,
    id: u64,
    decision: Decision,
    notes: Option<String>,
    now_ms: u64,
) -> Result<ApprovalRequest, ApiError> {
    let store = RequestStore::new(kv);
    let found = store.load(id)?;
    match decision {
        Decision::Cancel => {
            if found.submitter.id != p.id && !p.has(Permission::AdminApprove) {
                return Err(super::request_not_found(id));
            }
        }
        _ => may_decide(p, &found)?,
    }
    let found = expire_if_due(kv, found, now_ms)?;
    if found.status != Status::Pending {
        return Err(closed(&found));
    }
    let number = UserNumbers::new(kv).number(&p.id)?;
    let decided = store.update(id, |r| {
        if r.status != Status::Pending {
            return Err(closed(r));
        }
        r.status = decision.status();
        r.reviewed_by = Some(p.id.clone());
        r.reviewed_by_number = Some(number);
        r.reviewed_ms = Some(now_ms);
        r.review_notes = notes.clone();
        Ok(())
    })?;
    let _ = store.unlist_pending(id);
    audit(
        kv,
        &p.id,
        &decided,
        json!({"notes": decided.review_notes}),
        now_ms,
    );
    super::announce(kv, &decided, now_ms);
    Ok(decided)
}

fn audit(kv: &dyn KvStore, actor: &str, r: &ApprovalRequest, detail: Value, now_ms: u64) {
    let mut detail = detail;
    detail["rule_id"] = json!(r.rule_id);
    detail["job_id"] = json!(r.job_id);
    event_log::record(
        kv,
        NewEvent {
            kind: match r.status {
                Status::Pending => "approval.requested",
                Status::Approved => "approval.approved",
                Status::Rejected => "approval.rejected",
                Status::Expired => "approval.expired",
                Status::Cancelled => "approval.cancelled",
            },
            actor,
            target: Some(&format!("approval:{}", r.id)),
            owner: Some(&r.submitter.id),
            detail,
        },
        now_ms,
    );
}

/// `r`, expired first if it is pending past its time (by CAS: a decision
/// that lands first stands).
pub fn expire_if_due(
    kv: &dyn KvStore,
    r: ApprovalRequest,
    now_ms: u64,
) -> Result<ApprovalRequest, ApiError> {
    if !r.is_due(now_ms) {
        return Ok(r);
    }
    let store = RequestStore::new(kv);
    let mut expired = false;
    let out = store.update(r.id, |cur| {
        expired = cur.is_due(now_ms);
        if expired {
            cur.status = Status::Expired;
            cur.reviewed_ms = Some(now_ms);
        }
        Ok(())
    })?;
    if expired {
        let _ = store.unlist_pending(r.id);
        audit(kv, "system", &out, json!({}), now_ms);
        super::announce(kv, &out, now_ms);
    }
    Ok(out)
}

/// Expires every pending request past its time (each sync pass); returns
/// how many.
pub fn expire_due(kv: &dyn KvStore, now_ms: u64) -> Result<usize, ApiError> {
    let mut n = 0;
    for r in RequestStore::new(kv).pending()? {
        if r.is_due(now_ms) && expire_if_due(kv, r, now_ms)?.status == Status::Expired {
            n += 1;
        }
    }
    Ok(n)
}

/// The submitter as they are now: their user record's role (a demoted or
/// disabled submitter's held job does not run with what they had), with the
/// key scopes they submitted with.
fn submitter(kv: &dyn KvStore, held: &Principal) -> Result<Principal, ApiError> {
    if held.method == AuthMethod::AdminToken {
        return Ok(held.clone());
    }
    match UserStore::new(kv).get(&held.id)? {
        Some(u) if !u.disabled => Ok(u.principal(held.method.clone(), held.scopes.clone())),
        _ => Err(ApiError::new(
            409,
            "submitter_gone",
            "the submitter's account is disabled or deleted, so their job was not run",
        )),
    }
}

/// Runs an approved request's held submit as its submitter (the job is
/// created and sent to Replicate now) and records what happened on the
/// request: the job id, or the submit's error in words.
pub async fn dispatch<H: HttpClient>(
    ctx: &SubmitContext<'_, H>,
    approved: ApprovalRequest,
) -> ApprovalRequest {
    let out = match submitter(ctx.kv, &approved.submitter) {
        Ok(who) => {
            let as_submitter = SubmitContext {
                principal: &who,
                ..*ctx
            };
            run_held(&as_submitter, &approved.held).await
        }
        Err(e) => Submitted {
            status: e.status,
            body: e.body(),
        },
    };
    let success = out.status < 300 && out.body["success"] != json!(false);
    let job_id = out.body["job_id"].as_str().map(str::to_string);
    let error = (!success).then(|| {
        out.body["message"]
            .as_str()
            .or(out.body["error"].as_str())
            .unwrap_or("the submit failed")
            .to_string()
    });
    let dispatched = Dispatched {
        status: out.status,
        success,
        error,
    };
    let store = RequestStore::new(ctx.kv);
    if let Some(job) = &job_id {
        let _ = store.link_job(job, approved.id);
    }
    let recorded = store.update(approved.id, |r| {
        r.job_id = job_id.clone();
        r.dispatched = Some(dispatched.clone());
        Ok(())
    });
    let mut done = recorded.unwrap_or(approved);
    done.job_id = job_id.clone();
    done.dispatched = Some(dispatched.clone());
    event_log::record(
        ctx.kv,
        NewEvent {
            kind: "approval.dispatched",
            actor: &ctx.principal.id,
            target: Some(&format!("approval:{}", done.id)),
            owner: Some(&done.submitter.id),
            detail: json!({"job_id": job_id, "status": dispatched.status,
                "success": dispatched.success, "error": dispatched.error}),
        },
        ctx.now_ms,
    );
    done
}

async fn run_held<H: HttpClient>(ctx: &SubmitContext<'_, H>, held: &Held) -> Submitted {
    match held {
        Held::Submit { provider, body } => submit(ctx, Some(provider), body.as_bytes()).await,
        Held::Retry {
            job_id,
            header_key,
            body,
        } => retry(ctx, job_id, header_key.as_deref(), body.as_bytes()).await,
    }
}
