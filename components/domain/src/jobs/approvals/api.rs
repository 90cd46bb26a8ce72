//! `/api/approvals/...`: SimpleTuner's routes and shapes, so its CLI
//! (`simpletuner jobs approval list/pending/approve/reject/rules`) works
//! unmodified. The component only hands the request here.
//!
//! Permissions: `admin.approve` (leads and admins) lists, approves and
//! rejects, and reads the rules; changing rules is for admins
//! (`admin.config`: SimpleTuner let any approver rewrite the rules that hold
//! their own submits). A submitter sees their own requests (`/me`, and
//! `/requests/{id}` of their own; anyone else's is 404) and may cancel them.
//! Every change is in the event log.
//!
//! SimpleTuner 4.10.1's CLI calls routes its server lacks (`GET
//! /api/approvals`, `POST /api/approvals/{id}/approve|reject`, reading
//! `approvals` and `requested_at`): they are served here as aliases of the
//! server's `/requests` routes. A reject without a reason is a 400 (as the
//! server's), a decision on a decided request a 409 (it answered 400).

use serde_json::{Value, json};

use super::decide::{self, Decision, dispatch, expire_due, expire_if_due};
use super::rules::{CONDITIONS, from_body};
use super::{ApprovalRequest, RequestStore, RuleStore, Status, request_not_found};
use crate::auth::orgs::numbers::UserNumbers;
use crate::auth::principal::{Permission, Principal};
use crate::jobs::submit::SubmitContext;
use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::event_log::{self, NewEvent};
use crate::kernel::http::{HttpClient, param};
use crate::kernel::kv::KvStore;

/// One request to `/api/approvals...`.
pub struct ApprovalsRequest<'a> {
    pub method: &'a str,
    /// The path after `/api/approvals` (`""`, `/rules/3`, `/7/approve`).
    pub rest: &'a str,
    pub query: &'a [(String, String)],
    /// The JSON body (`Value::Null` when there is none).
    pub body: Value,
    pub now_ms: u64,
}

/// (status, body) of a successful answer.
pub type Answer = (u16, Value);

/// Whether the route approves (and so needs the submit's inputs: provider
/// settings, outbound HTTP, the datasets mount).
pub fn needs_submit(method: &str, rest: &str) -> bool {
    let rest = rest.trim_end_matches('/');
    method.eq_ignore_ascii_case("POST")
        && (rest.ends_with("/approve") || rest.ends_with("/bulk-approve"))
}

pub async fn handle<H: HttpClient>(
    kv: &dyn KvStore,
    p: &Principal,
    req: &ApprovalsRequest<'_>,
    submit: Option<&SubmitContext<'_, H>>,
) -> Result<Answer, ApiError> {
    let parts: Vec<&str> = req.rest.split('/').filter(|s| !s.is_empty()).collect();
    let ctx = Ctx { kv, p, req };
    match parts.as_slice() {
        [] | ["requests"] => ctx.list(false),
        ["me"] => ctx.list(true),
        ["requests", "pending", "count"] => ctx.pending_count(),
        ["requests", "job", job] => ctx.by_job(job),
        ["rules"] => ctx.rules(),
        ["requests", "bulk-approve"] => ctx.bulk(Decision::Approve, submit).await,
        ["requests", "bulk-reject"] => ctx.bulk(Decision::Reject, submit).await,
        ["rules", id] => ctx.rule(number(id)?),
        ["requests", id] | [id] if *id != "conditions" && *id != "expire" => ctx.one(id),
        ["requests", id, action] | [id, action] => ctx.act(id, action, submit).await,
        ["conditions"] => {
            ctx.methods(&["GET"])?;
            p.require(Permission::AdminApprove)?;
            let list: Vec<Value> = CONDITIONS
                .iter()
                .map(|c| json!({"value": c.as_str(), "description": c.description()}))
                .collect();
            Ok((200, json!({"conditions": list})))
        }
        ["expire"] => {
            ctx.methods(&["POST"])?;
            p.require(Permission::AdminApprove)?;
            Ok((200, json!({"expired": expire_due(kv, req.now_ms)?})))
        }
        _ => Err(ApiError::not_found(format!(
            "no route /api/approvals{}",
            req.rest
        ))),
    }
}

fn number(segment: &str) -> Result<u64, ApiError> {
    segment.parse().map_err(|_| {
        ApiError::new(
            400,
            "invalid_id",
            format!("approval request and rule ids are integers, not {segment:?}"),
        )
    })
}

struct Ctx<'a> {
    kv: &'a dyn KvStore,
    p: &'a Principal,
    req: &'a ApprovalsRequest<'a>,
}

impl Ctx<'_> {
    fn methods(&self, allowed: &[&str]) -> Result<(), ApiError> {
        if allowed
            .iter()
            .any(|m| m.eq_ignore_ascii_case(self.req.method))
        {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(self.req.method, allowed))
        }
    }

    fn is(&self, method: &str) -> bool {
        self.req.method.eq_ignore_ascii_case(method)
    }

    fn requests(&self) -> RequestStore<'_> {
        RequestStore::new(self.kv)
    }

    fn audit(&self, kind: &str, target: String, detail: Value) {
        event_log::record(
            self.kv,
            NewEvent {
                kind,
                actor: &self.p.id,
                target: Some(&target),
                owner: None,
                detail,
            },
            self.req.now_ms,
        );
    }

    fn int_param(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match param(self.req.query, name) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ApiError::bad_request(format!("`{name}` must be 0-{max}"))),
        }
    }

    /// `GET /api/approvals`, `/requests` (approvers: everyone's) and `/me`
    /// (one's own), newest first, expiring what is due first.
    fn list(&self, mine: bool) -> Result<Answer, ApiError> {
        self.methods(&["GET"])?;
        if !mine {
            self.p.require(Permission::AdminApprove)?;
        }
        let status = match param(self.req.query, "status").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Invalid status: {s}; use pending, approved, rejected, expired or cancelled"
                ))
            })?),
        };
        let pending_only = matches!(param(self.req.query, "pending_only"), Some("true" | "1"));
        let limit = self.int_param("limit", 50, 200)?.max(1);
        let offset = self.int_param("offset", 0, usize::MAX)?;
        expire_due(self.kv, self.req.now_ms)?;
        let mut all = self.requests().all()?;
        if mine {
            all.retain(|r| r.submitter.id == self.p.id);
        }
        let pending_count = all.iter().filter(|r| r.status == Status::Pending).count();
        let wanted = if pending_only {
            Some(Status::Pending)
        } else {
            status
        };
        let page: Vec<Value> = all
            .iter()
            .filter(|r| wanted.is_none_or(|s| r.status == s))
            .skip(offset)
            .take(limit)
            .map(ApprovalRequest::to_api)
            .collect();
        Ok((
            200,
            json!({"requests": page, "approvals": page, "pending_count": pending_count}),
        ))
    }

    fn pending_count(&self) -> Result<Answer, ApiError> {
        self.methods(&["GET"])?;
        self.p.require(Permission::AdminApprove)?;
        expire_due(self.kv, self.req.now_ms)?;
        let n = self.requests().pending()?.len();
        Ok((200, json!({"pending_count": n})))
    }

    /// A request its submitter or an approver may see (anyone else: 404).
    fn visible(&self, id: u64) -> Result<ApprovalRequest, ApiError> {
        let found = self
            .requests()
            .get(id)?
            .ok_or_else(|| request_not_found(id))?;
        if found.submitter.id != self.p.id && !self.p.has(Permission::AdminApprove) {
            return Err(request_not_found(id));
        }
        expire_if_due(self.kv, found, self.req.now_ms)
    }

    fn one(&self, id: &str) -> Result<Answer, ApiError> {
        self.methods(&["GET"])?;
        Ok((200, self.visible(number(id)?)?.to_api()))
    }

    fn by_job(&self, job: &str) -> Result<Answer, ApiError> {
        self.methods(&["GET"])?;
        let found = self.requests().by_job(job)?;
        match found {
            Some(r) if r.submitter.id == self.p.id || self.p.has(Permission::AdminApprove) => {
                Ok((200, r.to_api()))
            }
            _ => Err(ApiError::new(
                404,
                "approval_not_found",
                format!("No approval request for job: {job}"),
            )),
        }
    }

    /// `POST .../{id}/approve|reject|cancel`.
    async fn act<H: HttpClient>(
        &self,
        id: &str,
        action: &str,
        submit: Option<&SubmitContext<'_, H>>,
    ) -> Result<Answer, ApiError> {
        let decision = match action {
            "approve" => Decision::Approve,
            "reject" => Decision::Reject,
            "cancel" => Decision::Cancel,
            _ => {
                return Err(ApiError::not_found(format!(
                    "no route /api/approvals{}",
                    self.req.rest
                )));
            }
        };
        self.methods(&["POST"])?;
        let id = number(id)?;
        let (notes, reason) = self.notes()?;
        let who = UserNumbers::new(self.kv).number(&self.p.id)?;
        match decision {
            Decision::Approve => {
                let submit = submit.ok_or_else(|| {
                    ApiError::unavailable("this route cannot run submits; try again")
                })?;
                let approved = decide::decide(
                    self.kv,
                    self.p,
                    id,
                    decision,
                    notes.or(reason),
                    self.req.now_ms,
                )?;
                let done = dispatch(submit, approved).await;
                Ok((200, approved_answer(&done, who)))
            }
            Decision::Reject => {
                let Some(reason) = reason.or(notes) else {
                    return Err(ApiError::new(
                        400,
                        "reason_required",
                        "Rejection reason is required: say why (--reason), so the submitter knows",
                    ));
                };
                let r = decide::decide(
                    self.kv,
                    self.p,
                    id,
                    decision,
                    Some(reason.clone()),
                    self.req.now_ms,
                )?;
                Ok((
                    200,
                    json!({"success": true, "request_id": r.id, "rejected_by": who,
                        "reason": reason, "job_id": null, "status": r.status.as_str(),
                        "request": r.to_api()}),
                ))
            }
            Decision::Cancel => {
                let r = decide::decide(
                    self.kv,
                    self.p,
                    id,
                    decision,
                    notes.or(reason),
                    self.req.now_ms,
                )?;
                Ok((
                    200,
                    json!({"success": true, "request_id": r.id, "status": r.status.as_str()}),
                ))
            }
        }
    }

    /// `POST /requests/bulk-approve|bulk-reject`: SimpleTuner's
    /// `BulkActionResponse`, each request decided (and dispatched) on its own.
    async fn bulk<H: HttpClient>(
        &self,
        decision: Decision,
        submit: Option<&SubmitContext<'_, H>>,
    ) -> Result<Answer, ApiError> {
        self.methods(&["POST"])?;
        self.p.require(Permission::AdminApprove)?;
        let body = object_with_fields(
            &self.req.body,
            &["request_ids", "notes", "reason"],
            "invalid_request",
        )?;
        let ids: Vec<u64> = body
            .get("request_ids")
            .and_then(Value::as_array)
            .filter(|ids| (1..=100).contains(&ids.len()))
            .and_then(|ids| ids.iter().map(Value::as_u64).collect())
            .ok_or_else(|| ApiError::bad_request("`request_ids` must be 1-100 integer ids"))?;
        let (notes, reason) = self.notes_of(body)?;
        if decision == Decision::Reject && reason.is_none() {
            return Err(ApiError::new(
                400,
                "reason_required",
                "Rejection reason is required: say why, so the submitters know",
            ));
        }
        let mut results = Vec::new();
        for id in &ids {
            let outcome = match decision {
                Decision::Approve => {
                    let submit = submit.ok_or_else(|| {
                        ApiError::unavailable("this route cannot run submits; try again")
                    })?;
                    match decide::decide(
                        self.kv,
                        self.p,
                        *id,
                        decision,
                        notes.clone(),
                        self.req.now_ms,
                    ) {
                        Ok(approved) => {
                            let done = dispatch(submit, approved).await;
                            Ok(done.dispatched.and_then(|d| d.error))
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => decide::decide(
                    self.kv,
                    self.p,
                    *id,
                    decision,
                    reason.clone(),
                    self.req.now_ms,
                )
                .map(|_| None),
            };
            results.push(match outcome {
                Ok(submit_error) => {
                    json!({"request_id": id, "success": true, "error": submit_error})
                }
                Err(e) => json!({"request_id": id, "success": false, "error": e.message}),
            });
        }
        let succeeded = results.iter().filter(|r| r["success"] == true).count();
        Ok((
            200,
            json!({"total": ids.len(), "succeeded": succeeded, "failed": ids.len() - succeeded,
                "results": results}),
        ))
    }

    /// `notes` and `reason` of the optional body.
    fn notes(&self) -> Result<(Option<String>, Option<String>), ApiError> {
        if self.req.body.is_null() {
            return Ok((None, None));
        }
        let body = object_with_fields(&self.req.body, &["notes", "reason"], "invalid_request")?;
        self.notes_of(body)
    }

    fn notes_of(
        &self,
        body: &serde_json::Map<String, Value>,
    ) -> Result<(Option<String>, Option<String>), ApiError> {
        let field = |k: &str| -> Result<Option<String>, ApiError> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) if s.chars().count() > 1000 => Err(ApiError::bad_request(
                    format!("`{k}` is longer than 1000 characters"),
                )),
                Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(_) => Err(ApiError::bad_request(format!("`{k}` must be a string"))),
            }
        };
        Ok((field("notes")?, field("reason")?))
    }

    fn rules(&self) -> Result<Answer, ApiError> {
        self.methods(&["GET", "POST"])?;
        if self.is("GET") {
            self.p.require(Permission::AdminApprove)?;
            let active_only = matches!(param(self.req.query, "active_only"), Some("true" | "1"));
            let rules: Vec<Value> = RuleStore::new(self.kv)
                .list()?
                .iter()
                .filter(|r| !active_only || r.is_active)
                .map(super::Rule::to_api)
                .collect();
            return Ok((200, json!({"rules": rules})));
        }
        self.p.require(Permission::AdminConfig)?;
        let mut rule = from_body(&self.req.body, None, self.req.now_ms)?;
        rule.created_by = Some(UserNumbers::new(self.kv).number(&self.p.id)?);
        let rule = RuleStore::new(self.kv).create(rule)?;
        self.audit(
            "approval.rule_created",
            format!("approval-rule:{}", rule.id),
            rule.to_api(),
        );
        Ok((201, rule.to_api()))
    }

    fn rule(&self, id: u64) -> Result<Answer, ApiError> {
        self.methods(&["GET", "PATCH", "PUT", "DELETE"])?;
        let store = RuleStore::new(self.kv);
        if self.is("GET") {
            self.p.require(Permission::AdminApprove)?;
            let rule = store.get(id)?.ok_or_else(|| super::rule_not_found(id))?;
            return Ok((200, rule.to_api()));
        }
        self.p.require(Permission::AdminConfig)?;
        let target = format!("approval-rule:{id}");
        if self.is("DELETE") {
            let rule = store.delete(id)?;
            self.audit("approval.rule_deleted", target, json!({"name": rule.name}));
            return Ok((200, json!({"success": true, "rule_id": id})));
        }
        let now = self.req.now_ms;
        let body = &self.req.body;
        let rule = store.update(id, |r| {
            *r = from_body(body, Some(r), now)?;
            Ok(())
        })?;
        self.audit("approval.rule_updated", target, rule.to_api());
        Ok((200, rule.to_api()))
    }
}

/// SimpleTuner's approve answer, with what happened to the held submit.
fn approved_answer(r: &ApprovalRequest, approver: u64) -> Value {
    let d = r.dispatched.as_ref();
    let sent = d.is_some_and(|d| d.success);
    let message = match (sent, &r.job_id, d.and_then(|d| d.error.as_deref())) {
        (true, Some(job), _) => format!("Approved; job {job} was submitted to Replicate"),
        (_, _, Some(e)) => format!("Approved, but the submit failed: {e}"),
        _ => "Approved, but the submit failed".to_string(),
    };
    json!({
        "success": true,
        "request_id": r.id,
        "approved_by": approver,
        "job_id": r.job_id,
        "status": r.status.as_str(),
        "dispatched": sent,
        "submit_status": d.map(|d| d.status),
        "error": d.and_then(|d| d.error.clone()),
        "message": message,
        "request": r.to_api(),
    })
}
