//! Approvals (issue 27, item 4; SimpleTuner's `/api/approvals`): rules that
//! hold a submit for a lead's or an admin's decision before anything is sent
//! to Replicate.
//!
//! - **Rules** ([`Rule`]) are SimpleTuner's conditions (`cost_exceeds`,
//!   `hardware_type`, `provider`, `user_level`, `daily_jobs_exceed`,
//!   `first_job`, `config_pattern` as a glob), evaluated highest `priority`
//!   first; the first match holds the submit ([`rules`]).
//! - The **gate** ([`gate`]) runs in front of the submit (and the retry):
//!   a matching submit becomes a pending [`ApprovalRequest`] holding the raw
//!   body, and is answered 202. Nothing is recorded as a job and nothing goes
//!   to Replicate until it is approved.
//! - **Deciding** ([`decide`]) is one compare-and-swap on the request record:
//!   of racing approvers exactly one wins and dispatches the held submit as
//!   the submitter; the others get 409. Pending requests past their
//!   `expires_at` are expired when listed, decided, and on each sync pass.
//! - Ids are integers from the store's atomic `increment` (SimpleTuner's CLI
//!   parses them with `type=int`); users appear by their integer number
//!   ([`crate::auth::orgs::numbers`]).
//!
//! Layout: `approval-rule:<id>`, `approval-rules:index` (ids, CAS),
//! `approval:<id>` (the request), `approvals:index` (ids, oldest first, CAS;
//! at most [`KEPT`] decided requests are kept), `approvals:pending` (ids,
//! CAS), `approval-key:<user>:<sha256(idempotency key)>` (a slot holding the
//! request id), `approval-job:<job id>` (the request a job came from).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::orgs::{next_id, update_record};
use crate::auth::principal::{Principal, Role};
use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore, get_json, set_json};

pub mod api;
pub mod decide;
pub mod gate;
pub mod rules;
mod subject;
#[cfg(test)]
mod tests;

pub use gate::{gate, gate_retry, open_for_quota};
pub use rules::{Condition, Rule};

const RULE_SEQ: &str = "approval-rules:seq";
const RULE_INDEX: &str = "approval-rules:index";
const SEQ: &str = "approvals:seq";
const INDEX: &str = "approvals:index";
const PENDING: &str = "approvals:pending";
/// Decided requests kept (the oldest beyond this are deleted as new ones
/// arrive): the store's key budget is shared (Fermyon Cloud: 1,024 keys).
pub const KEPT: usize = 200;
/// How long a request waits for a decision unless its rule says otherwise
/// (SimpleTuner's `expires_hours` default).
pub const DEFAULT_EXPIRES_HOURS: u32 = 24;

fn rule_key(id: u64) -> String {
    format!("approval-rule:{id}")
}

fn request_key(id: u64) -> String {
    format!("approval:{id}")
}

fn idempotency_slot(user: &str, key: &str) -> String {
    format!(
        "approval-key:{user}:{}",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

fn job_key(job_id: &str) -> String {
    format!("approval-job:{job_id}")
}

/// Roles as SimpleTuner's levels, lowest first.
pub fn level_rank(level: &str) -> Option<u8> {
    Role::parse(&level.trim().to_ascii_lowercase()).map(|r| match r {
        Role::Viewer => 0,
        Role::Researcher => 1,
        Role::Lead => 2,
        Role::Admin => 3,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::from(s)).ok()
    }
}

/// What a request holds back, to run as the submitter once approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Held {
    /// `POST /api/cloud/jobs/submit`: its provider and raw body.
    Submit { provider: String, body: String },
    /// `POST /api/cloud/jobs/{job}/retry`: the job, the `Idempotency-Key`
    /// header and the raw body.
    Retry {
        job_id: String,
        header_key: Option<String>,
        body: String,
    },
}

/// What happened when an approved request's submit ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatched {
    /// The submit's HTTP status (201: the job went to Replicate).
    pub status: u16,
    pub success: bool,
    /// Why it failed, in words (the submit's message).
    pub error: Option<String>,
}

/// An approval request: a held submit and where its decision stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: u64,
    pub status: Status,
    /// The submitter as they were authenticated (role, key scopes).
    pub submitter: Principal,
    /// The submitter's integer id (SimpleTuner's `user_id`).
    pub user_number: u64,
    pub rule_id: u64,
    pub rule_name: String,
    /// The lowest role that may decide (`lead` or `admin`).
    pub required_level: String,
    pub reason: String,
    pub provider: String,
    pub config_name: Option<String>,
    pub estimated_cost: f64,
    pub hardware_type: Option<String>,
    pub held: Held,
    pub idempotency_key: Option<String>,
    /// The held body's fingerprint, to tell a replay from a reused key.
    pub fingerprint: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    #[serde(default)]
    pub reviewed_by: Option<String>,
    #[serde(default)]
    pub reviewed_by_number: Option<u64>,
    #[serde(default)]
    pub reviewed_ms: Option<u64>,
    #[serde(default)]
    pub review_notes: Option<String>,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub dispatched: Option<Dispatched>,
}

impl ApprovalRequest {
    /// SimpleTuner's `RequestResponse`, plus what its CLI reads
    /// (`requested_at`) and what a person needs (who, which rule, what
    /// happened at dispatch). Never the held body (it may hold secrets).
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "job_id": self.job_id,
            "user_id": self.user_number,
            "username": self.submitter.username,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "status": self.status.as_str(),
            "reason": self.reason,
            "provider": self.provider,
            "config_name": self.config_name,
            "estimated_cost": (self.estimated_cost * 100.0).round() / 100.0,
            "hardware_type": self.hardware_type,
            "required_approver_level": self.required_level,
            "reviewed_by": self.reviewed_by_number,
            "reviewed_at": self.reviewed_ms.map(rfc3339),
            "review_notes": self.review_notes,
            "created_at": rfc3339(self.created_ms),
            "requested_at": rfc3339(self.created_ms),
            "expires_at": rfc3339(self.expires_ms),
            "retry_of": match &self.held {
                Held::Retry { job_id, .. } => Some(job_id.as_str()),
                Held::Submit { .. } => None,
            },
            "dispatch": self.dispatched.as_ref().map(|d| json!({
                "status": d.status, "success": d.success, "error": d.error,
            })),
        })
    }

    pub fn is_due(&self, now_ms: u64) -> bool {
        self.status == Status::Pending && now_ms >= self.expires_ms
    }
}

pub fn request_not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        404,
        "approval_not_found",
        format!("Approval request {id} not found"),
    )
}

pub fn rule_not_found(id: u64) -> ApiError {
    ApiError::new(
        404,
        "approval_rule_not_found",
        format!("Approval rule {id} not found"),
    )
}

pub struct RuleStore<'a> {
    kv: &'a dyn KvStore,
}

impl<'a> RuleStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn get(&self, id: u64) -> Result<Option<Rule>, ApiError> {
        Ok(get_json(self.kv, &rule_key(id))?)
    }

    /// Every rule, highest priority first (then oldest first).
    pub fn list(&self) -> Result<Vec<Rule>, ApiError> {
        let ids: Vec<u64> = get_json(self.kv, RULE_INDEX)?.unwrap_or_default();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| rule_key(*id)).collect();
        let mut rules: Vec<Rule> = Vec::new();
        for raw in self.kv.get_many(&keys)?.into_iter().flatten() {
            rules.push(crate::auth::orgs::parse(&raw)?);
        }
        rules.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        Ok(rules)
    }

    pub fn create(&self, mut rule: Rule) -> Result<Rule, ApiError> {
        rule.id = next_id(self.kv, RULE_SEQ)?;
        // The record before the index: a listed id always has a record.
        set_json(self.kv, &rule_key(rule.id), &rule)?;
        kv::edit_json(self.kv, RULE_INDEX, |ids: &mut Vec<u64>| ids.push(rule.id))?;
        Ok(rule)
    }

    pub fn update(
        &self,
        id: u64,
        mut f: impl FnMut(&mut Rule) -> Result<(), ApiError>,
    ) -> Result<Rule, ApiError> {
        update_record(
            self.kv,
            &rule_key(id),
            "Approval rule",
            || rule_not_found(id),
            &mut f,
        )
    }

    pub fn delete(&self, id: u64) -> Result<Rule, ApiError> {
        let rule = self.get(id)?.ok_or_else(|| rule_not_found(id))?;
        kv::edit_json(self.kv, RULE_INDEX, |ids: &mut Vec<u64>| {
            ids.retain(|i| *i != id)
        })?;
        self.kv.delete(&rule_key(id))?;
        Ok(rule)
    }
}

pub struct RequestStore<'a> {
    kv: &'a dyn KvStore,
}

impl<'a> RequestStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn get(&self, id: u64) -> Result<Option<ApprovalRequest>, ApiError> {
        Ok(get_json(self.kv, &request_key(id))?)
    }

    pub fn load(&self, id: u64) -> Result<ApprovalRequest, ApiError> {
        self.get(id)?.ok_or_else(|| request_not_found(id))
    }

    fn many(&self, ids: &[u64]) -> Result<Vec<ApprovalRequest>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| request_key(*id)).collect();
        let mut out = Vec::new();
        for raw in self.kv.get_many(&keys)?.into_iter().flatten() {
            out.push(crate::auth::orgs::parse(&raw)?);
        }
        Ok(out)
    }

    /// Every kept request, newest first.
    pub fn all(&self) -> Result<Vec<ApprovalRequest>, ApiError> {
        let ids: Vec<u64> = get_json(self.kv, INDEX)?.unwrap_or_default();
        let mut out = self.many(&ids)?;
        out.reverse();
        Ok(out)
    }

    /// The pending requests, oldest first.
    pub fn pending(&self) -> Result<Vec<ApprovalRequest>, ApiError> {
        let ids: Vec<u64> = get_json(self.kv, PENDING)?.unwrap_or_default();
        let mut out = self.many(&ids)?;
        out.retain(|r| r.status == Status::Pending);
        Ok(out)
    }

    /// Stores a new pending request under a fresh id.
    pub fn create(&self, mut request: ApprovalRequest) -> Result<ApprovalRequest, ApiError> {
        request.id = next_id(self.kv, SEQ)?;
        set_json(self.kv, &request_key(request.id), &request)?;
        kv::edit_json(self.kv, PENDING, |ids: &mut Vec<u64>| ids.push(request.id))?;
        let mut dropped = Vec::new();
        kv::edit_json(self.kv, INDEX, |ids: &mut Vec<u64>| {
            ids.push(request.id);
            dropped = trim(ids, self.kv);
        })?;
        for id in dropped {
            let _ = self.kv.delete(&request_key(id));
        }
        Ok(request)
    }

    /// Changes request `id` by CAS; `f` may refuse.
    pub fn update(
        &self,
        id: u64,
        mut f: impl FnMut(&mut ApprovalRequest) -> Result<(), ApiError>,
    ) -> Result<ApprovalRequest, ApiError> {
        update_record(
            self.kv,
            &request_key(id),
            "Approval request",
            || request_not_found(id),
            &mut f,
        )
    }

    /// Takes `id` off the pending list (it was decided).
    pub fn unlist_pending(&self, id: u64) -> Result<(), ApiError> {
        Ok(kv::edit_json(self.kv, PENDING, |ids: &mut Vec<u64>| {
            ids.retain(|i| *i != id)
        })?)
    }

    /// The request a job was dispatched from.
    pub fn by_job(&self, job_id: &str) -> Result<Option<ApprovalRequest>, ApiError> {
        match get_json::<u64>(self.kv, &job_key(job_id))? {
            Some(id) => self.get(id),
            None => Ok(None),
        }
    }

    pub fn link_job(&self, job_id: &str, id: u64) -> Result<(), ApiError> {
        Ok(set_json(self.kv, &job_key(job_id), &id)?)
    }

    /// The request an idempotency key of `user` opened, if any.
    pub fn by_key(&self, user: &str, key: &str) -> Result<Option<ApprovalRequest>, ApiError> {
        match crate::auth::orgs::slot_id(self.kv, &idempotency_slot(user, key))? {
            Some(id) => self.get(id),
            None => Ok(None),
        }
    }

    /// Claims `user`'s idempotency `key` for request `id`: false when a
    /// racing submit with the same key claimed it first.
    pub fn claim_key(&self, user: &str, key: &str, id: u64) -> Result<bool, ApiError> {
        Ok(kv::claim_slot(
            self.kv,
            &idempotency_slot(user, key),
            id.to_string().as_bytes(),
        )?)
    }

    pub fn release_key(&self, user: &str, key: &str) -> Result<(), ApiError> {
        Ok(kv::release_slot(self.kv, &idempotency_slot(user, key))?)
    }
}

/// Drops the oldest decided requests beyond [`KEPT`] from the index; returns
/// their ids (pending ones always stay).
fn trim(ids: &mut Vec<u64>, kv: &dyn KvStore) -> Vec<u64> {
    if ids.len() <= KEPT {
        return Vec::new();
    }
    let pending: Vec<u64> = get_json(kv, PENDING).ok().flatten().unwrap_or_default();
    let excess = ids.len() - KEPT;
    let dropped: Vec<u64> = ids
        .iter()
        .filter(|id| !pending.contains(id))
        .take(excess)
        .copied()
        .collect();
    ids.retain(|id| !dropped.contains(id));
    dropped
}

/// Tells the submitter's notification channels (and their teams') what
/// became of a request: `approval.required` when it opens, `.granted`,
/// `.rejected`, `.expired` when decided (a cancel is the submitter's own
/// act: not announced). Best effort, like every notification: a request is
/// never refused because a channel could not be queued.
pub(crate) fn announce(kv: &dyn KvStore, r: &ApprovalRequest, now_ms: u64) {
    let event = match r.status {
        Status::Pending => "approval.required",
        Status::Approved => "approval.granted",
        Status::Rejected => "approval.rejected",
        Status::Expired => "approval.expired",
        Status::Cancelled => return,
    };
    let name = r
        .config_name
        .clone()
        .unwrap_or_else(|| format!("approval request {}", r.id));
    let reason = r.review_notes.clone().unwrap_or_else(|| r.reason.clone());
    let data = serde_json::json!({
        "job": {
            "job_id": r.job_id.clone().unwrap_or_default(),
            "config_name": name,
            "status": event.trim_start_matches("approval."),
            "cost_usd": r.estimated_cost,
            "cost_estimated": true,
        },
        "reason": reason,
        "approval_request_id": r.id,
    });
    let key = format!("approval{}", r.id);
    let _ = crate::notify::channels::send::announce(kv, event, &r.submitter.id, &key, data, now_ms);
}
