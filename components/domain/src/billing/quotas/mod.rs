//! Quotas (issue 27, item 2; SimpleTuner's `/api/quotas`): limits on how many
//! jobs run at once, how many are submitted per hour or day, and what they cost
//! per day or month, for one user, a team, an organization, or every user
//! (global), each with an action: `block`, `warn` or `require_approval`.
//!
//! What a scope's usage means:
//! - a **user** quota limits that user's own jobs; a **global** quota is the
//!   default every user gets for a type they have no quota of their own for
//!   (SimpleTuner's "global default", per user, not the installation's sum);
//! - a **team** quota limits the jobs charged to the team (a job is charged to
//!   the team its submit names, else the submitter's first team), an **org**
//!   quota the jobs of the organization's members, all together.
//!
//! Usage lives in counters changed only by the store's atomic `increment` (see
//! [`usage`]), so racing submits cannot both take the last slot on any store.
//!
//! Layout: `quotas:seq` (ids, atomic counter), `quota:<id>` the record,
//! `quotas:index` (ids, CAS), `quota-slot:<scope>:<type>` a slot holding the id
//! of the one quota a scope has of a type (setting it again changes it, as
//! SimpleTuner's `set_quota` does).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::orgs::{next_id, slot_id, update_record};
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore, claim_slot, get_json};

pub mod api;
mod input;
pub mod org_routes;
#[cfg(test)]
pub(crate) mod tests;
pub mod usage;

const SEQ: &str = "quotas:seq";
const INDEX: &str = "quotas:index";

fn quota_key(id: u64) -> String {
    format!("quota:{id}")
}

fn slot_key(scope: &Scope, t: QuotaType) -> String {
    format!("quota-slot:{}:{}", scope.key(), t.as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaType {
    ConcurrentJobs,
    JobsPerHour,
    JobsPerDay,
    CostDaily,
    CostMonthly,
}

pub const QUOTA_TYPES: [QuotaType; 5] = [
    QuotaType::ConcurrentJobs,
    QuotaType::JobsPerHour,
    QuotaType::JobsPerDay,
    QuotaType::CostDaily,
    QuotaType::CostMonthly,
];

impl QuotaType {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaType::ConcurrentJobs => "concurrent_jobs",
            QuotaType::JobsPerHour => "jobs_per_hour",
            QuotaType::JobsPerDay => "jobs_per_day",
            QuotaType::CostDaily => "cost_daily",
            QuotaType::CostMonthly => "cost_monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        QUOTA_TYPES.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the limit is in USD (else it counts jobs).
    pub fn is_cost(self) -> bool {
        matches!(self, QuotaType::CostDaily | QuotaType::CostMonthly)
    }

    /// SimpleTuner's descriptions.
    pub fn description(self) -> &'static str {
        match self {
            QuotaType::ConcurrentJobs => "Maximum running jobs at once",
            QuotaType::JobsPerHour => "Maximum job submissions per hour",
            QuotaType::JobsPerDay => "Maximum job submissions per day",
            QuotaType::CostDaily => "Maximum USD spend per day",
            QuotaType::CostMonthly => "Maximum USD spend per month",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            QuotaType::ConcurrentJobs => "jobs",
            QuotaType::JobsPerHour => "jobs/hour (UTC clock hour)",
            QuotaType::JobsPerDay => "jobs/day (UTC calendar day)",
            QuotaType::CostDaily => "USD/day (UTC calendar day)",
            QuotaType::CostMonthly => "USD/month (UTC calendar month)",
        }
    }

    /// `1` → "1", `2.5` → "$2.50": a limit or usage as a user reads it.
    pub fn show(self, value: f64) -> String {
        if self.is_cost() {
            format!("${value:.2}")
        } else {
            format!("{}", (value * 100.0).round() / 100.0)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaAction {
    Block,
    Warn,
    RequireApproval,
}

pub const QUOTA_ACTIONS: [QuotaAction; 3] = [
    QuotaAction::Block,
    QuotaAction::Warn,
    QuotaAction::RequireApproval,
];

impl QuotaAction {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaAction::Block => "block",
            QuotaAction::Warn => "warn",
            QuotaAction::RequireApproval => "require_approval",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        QUOTA_ACTIONS.into_iter().find(|a| a.as_str() == s)
    }

    pub fn description(self) -> &'static str {
        match self {
            QuotaAction::Block => "Block the action when quota is exceeded",
            QuotaAction::Warn => "Allow but show warning when quota is exceeded",
            QuotaAction::RequireApproval => {
                "Require admin approval when quota is exceeded (until approvals exist: refused)"
            }
        }
    }
}

/// Whom a quota limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Scope {
    /// Every user, each on their own (a default).
    Global,
    /// One user (their id, not their number).
    User(String),
    Team(u64),
    Org(u64),
}

impl Scope {
    /// The scope's part of a key (`u:<id>`, `t:3`, `o:1`, `global`).
    pub fn key(&self) -> String {
        match self {
            Scope::Global => "global".into(),
            Scope::User(u) => format!("u:{u}"),
            Scope::Team(t) => format!("t:{t}"),
            Scope::Org(o) => format!("o:{o}"),
        }
    }

    /// SimpleTuner's scope names.
    pub fn name(&self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::User(_) => "user",
            Scope::Team(_) => "team",
            Scope::Org(_) => "org",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    pub id: u64,
    pub quota_type: QuotaType,
    pub limit_value: f64,
    pub action: QuotaAction,
    pub scope: Scope,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Quota {
    /// SimpleTuner's `Quota.to_dict()`; `user_number` is the user's integer
    /// id (the CLI's), for a user quota.
    pub fn to_api(&self, user_number: Option<u64>) -> Value {
        let (team, org) = match self.scope {
            Scope::Team(t) => (Some(t), None),
            Scope::Org(o) => (None, Some(o)),
            _ => (None, None),
        };
        json!({
            "id": self.id,
            "quota_type": self.quota_type.as_str(),
            "limit_value": self.limit_value,
            "action": self.action.as_str(),
            "scope": self.scope.name(),
            "is_global": self.scope == Scope::Global,
            "user_id": user_number,
            "level_id": null,
            "team_id": team,
            "org_id": org,
            "created_at": crate::kernel::clock::rfc3339(self.created_ms),
            "updated_at": crate::kernel::clock::rfc3339(self.updated_ms),
        })
    }
}

/// What a create asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuota {
    pub quota_type: QuotaType,
    pub limit_value: f64,
    pub action: QuotaAction,
    pub scope: Scope,
}

pub fn quota_not_found(id: u64) -> ApiError {
    ApiError::new(404, "quota_not_found", format!("Quota not found: {id}"))
}

pub struct QuotaStore<'a> {
    kv: &'a dyn KvStore,
}

impl<'a> QuotaStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn get(&self, id: u64) -> Result<Option<Quota>, ApiError> {
        Ok(get_json(self.kv, &quota_key(id))?)
    }

    /// Every quota, oldest first.
    pub fn list(&self) -> Result<Vec<Quota>, ApiError> {
        let ids: Vec<u64> = get_json(self.kv, INDEX)?.unwrap_or_default();
        if ids.is_empty() {
            return Ok(Vec::new()); // the common case: one read per submit
        }
        let keys: Vec<String> = ids.iter().map(|id| quota_key(*id)).collect();
        let mut out = Vec::new();
        for raw in self.kv.get_many(&keys)?.into_iter().flatten() {
            out.push(crate::auth::orgs::parse(&raw)?);
        }
        Ok(out)
    }

    /// Sets the quota of `new.scope` of `new.quota_type`: a new one (true),
    /// or the one it had, changed (false). Racing sets of one scope and type
    /// leave one quota (the slot is claimed race-free).
    pub fn set(&self, new: &NewQuota, now_ms: u64) -> Result<(Quota, bool), ApiError> {
        let slot = slot_key(&new.scope, new.quota_type);
        let id = next_id(self.kv, SEQ)?;
        let created = claim_slot(self.kv, &slot, id.to_string().as_bytes())?;
        let id = if created {
            id
        } else {
            slot_id(self.kv, &slot)?.ok_or_else(|| {
                ApiError::unavailable("this quota is being changed; try again shortly")
            })?
        };
        let fresh = Quota {
            id,
            quota_type: new.quota_type,
            limit_value: new.limit_value,
            action: new.action,
            scope: new.scope.clone(),
            created_ms: now_ms,
            updated_ms: now_ms,
        };
        let changed = update_record(
            self.kv,
            &quota_key(id),
            "Quota",
            || quota_not_found(id),
            &mut |q: &mut Quota| {
                q.limit_value = new.limit_value;
                q.action = new.action;
                q.updated_ms = now_ms;
                Ok(())
            },
        );
        let quota = match changed {
            Ok(q) => q,
            // The slot's first claimer writes the record; one whose write was
            // lost (or has not landed yet) is completed by this one.
            Err(e) if e.status == 404 => {
                kv::set_json(self.kv, &quota_key(id), &fresh)?;
                fresh
            }
            Err(e) => return Err(e),
        };
        kv::edit_json(self.kv, INDEX, |ids: &mut Vec<u64>| {
            if !ids.contains(&id) {
                ids.push(id);
            }
        })?;
        Ok((quota, created))
    }

    /// Deletes quota `id` (404 when there is none).
    pub fn delete(&self, id: u64) -> Result<Quota, ApiError> {
        let quota = self.get(id)?.ok_or_else(|| quota_not_found(id))?;
        self.kv.delete(&quota_key(id))?;
        kv::edit_json(self.kv, INDEX, |ids: &mut Vec<u64>| {
            ids.retain(|i| *i != id)
        })?;
        // The slot is freed only if it still names this quota (by CAS: a
        // set racing in between keeps its claim).
        let slot = slot_key(&quota.scope, quota.quota_type);
        let seen = self.kv.read_for_swap(&slot)?;
        if seen.as_deref() == Some(id.to_string().as_bytes()) {
            self.kv.swap(&slot, seen.as_deref(), b"")?;
        }
        Ok(quota)
    }

    /// The quotas of one scope.
    pub fn of_scope(&self, scope: &Scope) -> Result<Vec<Quota>, ApiError> {
        let mut all = self.list()?;
        all.retain(|q| &q.scope == scope);
        Ok(all)
    }
}
