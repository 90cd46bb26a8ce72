//! `/api/quotas/...`, SimpleTuner's routes and shapes, so its CLI
//! (`simpletuner quota list/create/delete/status/types`) works unmodified;
//! and the organizations' and teams' quota routes (`/api/orgs/{id}/quotas`),
//! which `auth::orgs::api` hands here once it has checked access.
//!
//! Permissions (SimpleTuner's names): `quota.view` (leads, admins) lists and
//! reads quotas and other users' usage; `quota.manage` (admins) sets and
//! deletes them; `org.manage.quotas` / `team.manage.quotas` (admins) set an
//! organization's or team's. Everyone sees their own usage (`/me`, `/status`)
//! and a submit's impact (`/cost-estimate`). Every change is in the event log.
//!
//! Deliberate differences from SimpleTuner 4.10.1 (its defects):
//! - `POST /api/quotas` answers the quota under `quota` too (its CLI reads
//!   that key, its route did not send it), 201 for a new one;
//! - `GET /api/quotas/status` exists (its CLI calls it; its server had none),
//!   with the fields the CLI reads (`quotas[].limit_value`, `current_usage`);
//! - `/types` also answers the CLI's `types[].name/description/unit`;
//! - cost-estimate covers every quota a submit moves, with `projected` and
//!   `projected_percent` (its modal reads them; its route never sent them);
//! - a quota for a user, team or organization that does not exist is a 404;
//! - `level_id` quotas (user levels) do not exist here: 400.

use serde_json::{Value, json};

use super::input::{estimated_cost, id_field, quota_body};
use super::usage::{Charge, applicable, current, impacts, status_entry};
use super::{NewQuota, QUOTA_ACTIONS, QUOTA_TYPES, Quota, QuotaAction, QuotaStore, Scope};
use crate::auth::orgs::numbers::UserNumbers;
use crate::auth::orgs::teams::{TeamStore, team_not_found};
use crate::auth::orgs::{OrgStore, org_not_found};
use crate::auth::principal::{Permission, Principal};
use crate::auth::users::User;
use crate::kernel::error::ApiError;
use crate::kernel::event_log::{self, NewEvent};
use crate::kernel::kv::KvStore;

/// One request to `/api/quotas...`.
pub struct QuotaRequest<'a> {
    pub method: &'a str,
    /// The path after `/api/quotas` (`""`, `/3`, `/me`).
    pub rest: &'a str,
    /// The JSON body (`Value::Null` when there is none).
    pub body: Value,
    /// `?estimated_cost=` (cost-estimate).
    pub estimated_cost: Option<String>,
    pub now_ms: u64,
}

/// (status, body) of a successful answer.
pub type Answer = (u16, Value);

pub fn handle(kv: &dyn KvStore, p: &Principal, req: &QuotaRequest) -> Result<Answer, ApiError> {
    let parts: Vec<&str> = req.rest.split('/').filter(|s| !s.is_empty()).collect();
    let only = |allowed: &[&str]| methods(req.method, allowed);
    match parts.as_slice() {
        [] => {
            only(&["GET", "POST"])?;
            if is(req.method, "POST") {
                create(kv, p, &req.body, req.now_ms)
            } else {
                list(kv, p)
            }
        }
        ["types"] => {
            only(&["GET"])?;
            p.require(Permission::QuotaView)?;
            Ok((200, types()))
        }
        ["me"] | ["status"] => {
            only(&["GET"])?;
            let number = UserNumbers::new(kv).number(&p.id)?;
            Ok((200, usage_of(kv, &p.id, &p.username, number, req.now_ms)?))
        }
        ["user", user] => {
            only(&["GET"])?;
            p.require(Permission::QuotaView)?;
            let u: User = UserNumbers::new(kv).resolve(user)?;
            let number = UserNumbers::new(kv).number(&u.id)?;
            Ok((200, usage_of(kv, &u.id, &u.username, number, req.now_ms)?))
        }
        ["cost-estimate"] => {
            only(&["POST"])?;
            let est = estimated_cost(req.estimated_cost.as_deref(), &req.body)?;
            cost_estimate(kv, p, est, req.now_ms)
        }
        [id] => {
            only(&["GET", "DELETE"])?;
            let id = quota_id(id)?;
            if is(req.method, "DELETE") {
                delete(kv, p, id, req.now_ms)
            } else {
                p.require(Permission::QuotaView)?;
                let q = QuotaStore::new(kv)
                    .get(id)?
                    .ok_or_else(|| super::quota_not_found(id))?;
                Ok((200, view(kv, &q)?))
            }
        }
        _ => Err(ApiError::not_found(format!(
            "no route /api/quotas{}",
            req.rest
        ))),
    }
}

fn is(method: &str, name: &str) -> bool {
    method.eq_ignore_ascii_case(name)
}

fn methods(method: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.iter().any(|m| is(method, m)) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(method, allowed))
    }
}

fn quota_id(segment: &str) -> Result<u64, ApiError> {
    segment.parse().map_err(|_| {
        ApiError::new(
            400,
            "invalid_id",
            format!("quota ids are integers, not {segment:?}"),
        )
    })
}

/// A quota as the API shows it (a user quota with the user's number).
fn view(kv: &dyn KvStore, q: &Quota) -> Result<Value, ApiError> {
    let number = match &q.scope {
        Scope::User(u) => Some(UserNumbers::new(kv).number(u)?),
        _ => None,
    };
    Ok(q.to_api(number))
}

fn audit(kv: &dyn KvStore, p: &Principal, kind: &str, q: &Quota, now_ms: u64) {
    event_log::record(
        kv,
        NewEvent {
            kind,
            actor: &p.id,
            target: Some(&format!("quota:{}", q.id)),
            owner: None,
            detail: json!({"quota_type": q.quota_type.as_str(), "limit_value": q.limit_value,
                "action": q.action.as_str(), "scope": q.scope.name(), "scope_id": q.scope.key()}),
        },
        now_ms,
    );
}

fn list(kv: &dyn KvStore, p: &Principal) -> Result<Answer, ApiError> {
    p.require(Permission::QuotaView)?;
    let mut out = Vec::new();
    for q in QuotaStore::new(kv).list()? {
        out.push(view(kv, &q)?);
    }
    Ok((200, json!({"quotas": out})))
}

/// The scope `POST /api/quotas` names: at most one of `user_id` (the CLI's
/// integer, or a user id), `team_id`, `org_id`; none is global.
fn scope_of(kv: &dyn KvStore, obj: &serde_json::Map<String, Value>) -> Result<Scope, ApiError> {
    if obj.get("level_id").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::new(
            400,
            "invalid_quota",
            "quotas per user level are not supported: set user_id, team_id or org_id (or none \
             for every user)",
        ));
    }
    let user = match obj.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => Some(v.to_string()),
    };
    let team = id_field(obj, "team_id")?;
    let org = id_field(obj, "org_id")?;
    let named = [user.is_some(), team.is_some(), org.is_some()];
    if named.iter().filter(|n| **n).count() > 1 {
        return Err(ApiError::new(
            400,
            "invalid_quota",
            "a quota is for one user, one team or one organization: set only one of user_id, \
             team_id and org_id",
        ));
    }
    if let Some(u) = user {
        return Ok(Scope::User(UserNumbers::new(kv).resolve(&u)?.id));
    }
    if let Some(t) = team {
        TeamStore::new(kv)
            .get(t)?
            .ok_or_else(|| team_not_found(t))?;
        return Ok(Scope::Team(t));
    }
    if let Some(o) = org {
        OrgStore::new(kv).get(o)?.ok_or_else(|| org_not_found(o))?;
        return Ok(Scope::Org(o));
    }
    Ok(Scope::Global)
}

fn create(kv: &dyn KvStore, p: &Principal, body: &Value, now_ms: u64) -> Result<Answer, ApiError> {
    p.require(Permission::QuotaManage)?;
    let b = quota_body(body, &["user_id", "team_id", "org_id", "level_id"])?;
    let scope = scope_of(kv, b.fields)?;
    let new = NewQuota {
        quota_type: b.quota_type,
        limit_value: b.limit_value,
        action: b.action,
        scope,
    };
    set(kv, p, &new, now_ms)
}

/// Sets a quota, audits it and answers it (flat, SimpleTuner's shape, and
/// under `quota`, what its CLI reads).
pub(super) fn set(
    kv: &dyn KvStore,
    p: &Principal,
    new: &NewQuota,
    now_ms: u64,
) -> Result<Answer, ApiError> {
    let (q, created) = QuotaStore::new(kv).set(new, now_ms)?;
    let kind = if created {
        "quota.created"
    } else {
        "quota.updated"
    };
    audit(kv, p, kind, &q, now_ms);
    let v = view(kv, &q)?;
    let mut body = v.clone();
    body["quota"] = v;
    body["success"] = json!(true);
    body["message"] = json!(format!(
        "Quota {} = {} ({}) set",
        q.quota_type.as_str(),
        q.limit_value,
        q.action.as_str()
    ));
    Ok((if created { 201 } else { 200 }, body))
}

fn delete(kv: &dyn KvStore, p: &Principal, id: u64, now_ms: u64) -> Result<Answer, ApiError> {
    p.require(Permission::QuotaManage)?;
    let q = QuotaStore::new(kv).delete(id)?;
    audit(kv, p, "quota.deleted", &q, now_ms);
    Ok((200, json!({"success": true, "quota_id": id})))
}

fn types() -> Value {
    let quota_types: Vec<Value> = QUOTA_TYPES
        .iter()
        .map(|t| json!({"value": t.as_str(), "description": t.description()}))
        .collect();
    let cli: Vec<Value> = QUOTA_TYPES
        .iter()
        .map(|t| json!({"name": t.as_str(), "description": t.description(), "unit": t.unit()}))
        .collect();
    let actions: Vec<Value> = QUOTA_ACTIONS
        .iter()
        .map(|a| json!({"value": a.as_str(), "description": a.description()}))
        .collect();
    json!({"quota_types": quota_types, "actions": actions, "types": cli})
}

/// Whom the user's jobs are charged to by default (their first team).
fn default_charge<'a>(
    kv: &dyn KvStore,
    user: &'a str,
    username: &'a str,
) -> Result<(Charge<'a>, Vec<u64>), ApiError> {
    let teams = TeamStore::new(kv).teams_of(user)?;
    let charge = Charge {
        user,
        username,
        team: teams.first().copied(),
        org: OrgStore::new(kv).org_of(user)?,
    };
    Ok((charge, teams))
}

/// `GET /api/quotas/me` (and `/status`, `/user/{id}`): the user's usage
/// against each quota that applies to them, their teams' included
/// (SimpleTuner's `UserQuotasResponse`, plus the CLI's `quotas`).
fn usage_of(
    kv: &dyn KvStore,
    user: &str,
    username: &str,
    number: u64,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let all = QuotaStore::new(kv).list()?;
    let (charge, teams) = default_charge(kv, user, username)?;
    let no_team = Charge {
        team: None,
        ..charge.clone()
    };
    let mut rows: Vec<(&Quota, Scope)> = applicable(&all, &no_team);
    for q in &all {
        if let Scope::Team(t) = q.scope
            && teams.contains(&t)
        {
            rows.push((q, q.scope.clone()));
        }
    }
    let mut statuses = Vec::new();
    let mut blocking = Vec::new();
    for (q, scope) in rows {
        let used = current(kv, q, &scope, now_ms)?;
        let entry = status_entry(q, used, matches!(q.scope, Scope::User(_)).then_some(number));
        if q.action != QuotaAction::Warn && entry["is_exceeded"] == true {
            blocking.push(entry["message"].clone());
        }
        statuses.push(entry);
    }
    Ok(json!({
        "user_id": number,
        "username": username,
        "team_ids": teams,
        "charged_team_id": charge.team,
        "org_id": charge.org,
        "statuses": statuses,
        "quotas": statuses,
        "can_submit": blocking.is_empty(),
        "blocking_reasons": blocking,
    }))
}

/// `POST /api/quotas/cost-estimate`: what a job of `est` would do to each
/// quota of the caller (charged as a submit without a team would be).
fn cost_estimate(
    kv: &dyn KvStore,
    p: &Principal,
    est: f64,
    now_ms: u64,
) -> Result<Answer, ApiError> {
    let all = QuotaStore::new(kv).list()?;
    let (charge, _) = default_charge(kv, &p.id, &p.username)?;
    let impacts = impacts(kv, &all, &charge, est, now_ms)?;
    let refusing = |action: &str| {
        impacts
            .iter()
            .any(|i| i["would_exceed"] == true && i["action"] == action)
    };
    Ok((
        200,
        json!({
            "estimated_cost": est,
            "would_exceed": refusing("block") || refusing("require_approval"),
            "requires_approval": refusing("require_approval"),
            "impacts": impacts,
        }),
    ))
}
