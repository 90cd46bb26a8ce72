//! `GET|POST /api/orgs/{org}/quotas` and `/api/orgs/{org}/teams/{team}/quotas`
//! (`simpletuner auth orgs quotas/set-quota/team-quotas/team-set-quota`). The
//! `orgs` component hands these paths here before its own routes (organizations
//! sit below billing, so they do not call into quotas).
//!
//! Access is the organizations' rule: `org.view` / `team.view` to read,
//! `org.manage.quotas` / `team.manage.quotas` (admins) to set, and an
//! organization the caller is not a member of is a 404, as one that does not
//! exist. A team's limit may not be above its organization's of the same type
//! (SimpleTuner's rule).

use serde_json::{Value, json};

use super::api::{Answer, set};
use super::input::quota_body;
use super::{NewQuota, QuotaStore, Scope};
use crate::auth::orgs::teams::TeamStore;
use crate::auth::orgs::{Org, OrgStore, org_not_found};
use crate::auth::principal::{Permission, Principal};
use crate::kernel::error::ApiError;
use crate::kernel::kv::KvStore;

/// The organization (and team) of a quota path, from the path after
/// `/api/orgs`; `None` for any other path.
pub fn quota_path(rest: &str) -> Option<Result<(u64, Option<u64>), ApiError>> {
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let id = |s: &str| {
        s.parse::<u64>().map_err(|_| {
            ApiError::new(
                400,
                "invalid_id",
                format!("organization and team ids are integers, not {s:?}"),
            )
        })
    };
    match parts.as_slice() {
        [org, "quotas"] => Some(id(org).map(|o| (o, None))),
        [org, "teams", team, "quotas"] => Some(id(org).and_then(|o| Ok((o, Some(id(team)?))))),
        _ => None,
    }
}

/// One request to an organization's or team's quotas.
pub struct OrgQuotaRequest<'a> {
    pub method: &'a str,
    pub org: u64,
    pub team: Option<u64>,
    pub body: &'a Value,
    pub now_ms: u64,
}

pub fn handle(kv: &dyn KvStore, p: &Principal, req: &OrgQuotaRequest) -> Result<Answer, ApiError> {
    let post = req.method.eq_ignore_ascii_case("POST");
    if !post && !req.method.eq_ignore_ascii_case("GET") {
        return Err(ApiError::method_not_allowed(req.method, &["GET", "POST"]));
    }
    p.require(match (req.team.is_some(), post) {
        (false, false) => Permission::OrgView,
        (false, true) => Permission::OrgManageQuotas,
        (true, false) => Permission::TeamView,
        (true, true) => Permission::TeamManageQuotas,
    })?;
    let org = visible(kv, p, req.org)?;
    let (scope, holder) = match req.team {
        Some(t) => {
            let team = TeamStore::new(kv).load(req.org, t)?;
            (Scope::Team(t), json!({"team": team.to_api()}))
        }
        None => (Scope::Org(req.org), json!({"organization": org.to_api()})),
    };
    if !post {
        let mut out = holder;
        let quotas: Vec<Value> = QuotaStore::new(kv)
            .of_scope(&scope)?
            .iter()
            .map(|q| q.to_api(None))
            .collect();
        out["quotas"] = json!(quotas);
        return Ok((200, out));
    }
    let b = quota_body(req.body, &[])?;
    if req.team.is_some()
        && let Some(ceiling) = QuotaStore::new(kv)
            .of_scope(&Scope::Org(req.org))?
            .into_iter()
            .find(|q| q.quota_type == b.quota_type && q.limit_value < b.limit_value)
    {
        return Err(ApiError::new(
            400,
            "above_org_quota",
            format!(
                "Team quota ({}) cannot exceed organization ceiling ({})",
                b.limit_value, ceiling.limit_value
            ),
        ));
    }
    let new = NewQuota {
        quota_type: b.quota_type,
        limit_value: b.limit_value,
        action: b.action,
        scope,
    };
    set(kv, p, &new, req.now_ms)
}

/// Organization `id` if the caller may see it (admins: any; others: their own).
fn visible(kv: &dyn KvStore, p: &Principal, id: u64) -> Result<Org, ApiError> {
    let org = OrgStore::new(kv)
        .get(id)?
        .ok_or_else(|| org_not_found(id))?;
    if p.is_admin() || org.members.contains(&p.id) {
        Ok(org)
    } else {
        Err(org_not_found(id))
    }
}
