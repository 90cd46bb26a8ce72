//! Quota usage and its enforcement at submit, race-free on every store: each
//! submit `increment`s its scopes' counters first and then compares the
//! totals the increments returned with the limits, so of racing submits at
//! the last slot exactly one sees a total within the limit; one that does not
//! fit takes back everything it added ([`release`]).
//!
//! Counters, for the submitter (`u:<id>`), the team the job is charged to
//! (`t:<id>`) and the submitter's organization (`o:<id>`), always counted so a
//! quota set later sees the window's usage so far:
//! - `qlive:<scope>` jobs not yet ended (decremented once, when the job ends:
//!   [`settle`] from the job store's settlement);
//! - `qn:<YYYY-MM-DDTHH>:<scope>`, `qn:<YYYY-MM-DD>:<scope>` submissions in the
//!   UTC clock hour and calendar day (never decremented once the job exists);
//! - `qcost:<YYYY-MM-DD>:<scope>`, `qcost:<YYYY-MM>:<scope>` spend in
//!   micro-dollars: the job's estimate while it runs, its real cost once it
//!   ended (as the spend limit's windows, `billing::limits`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{QUOTA_TYPES, Quota, QuotaAction, QuotaType, Scope};
use crate::billing::{date, day_key, micros, usd};
use crate::kernel::error::ApiError;
use crate::kernel::kv::{KvStore, read_counter};

/// Who a job is charged to.
#[derive(Debug, Clone)]
pub struct Charge<'a> {
    pub user: &'a str,
    pub username: &'a str,
    pub team: Option<u64>,
    pub org: Option<u64>,
}

impl Charge<'_> {
    /// The scopes whose counters a job of this charge moves.
    fn scopes(&self) -> Vec<Scope> {
        let mut out = vec![Scope::User(self.user.to_string())];
        out.extend(self.team.map(Scope::Team));
        out.extend(self.org.map(Scope::Org));
        out
    }

    /// The scope whose usage `q` is measured on for this charge, if `q`
    /// applies to it at all.
    fn measured(&self, q: &Quota) -> Option<Scope> {
        match &q.scope {
            Scope::Global => Some(Scope::User(self.user.to_string())),
            Scope::User(u) if u == self.user => Some(q.scope.clone()),
            Scope::Team(t) if Some(*t) == self.team => Some(q.scope.clone()),
            Scope::Org(o) if Some(*o) == self.org => Some(q.scope.clone()),
            _ => None,
        }
    }

    /// How a message names the scope of `q`.
    fn describe(&self, q: &Quota) -> String {
        match &q.scope {
            Scope::Global => format!("user {} (the default for every user)", self.username),
            Scope::User(_) => format!("user {}", self.username),
            Scope::Team(t) => format!("team {t}"),
            Scope::Org(o) => format!("organization {o}"),
        }
    }
}

/// The quotas that apply to `charge`, each with the scope its usage is
/// measured on: per type, the user's own quota else the global default
/// (SimpleTuner's "user over global"), and the team's and organization's.
pub fn applicable<'q>(quotas: &'q [Quota], charge: &Charge) -> Vec<(&'q Quota, Scope)> {
    let own = |t: QuotaType| {
        quotas
            .iter()
            .find(|q| q.quota_type == t && q.scope == Scope::User(charge.user.to_string()))
            .or_else(|| {
                quotas
                    .iter()
                    .find(|q| q.quota_type == t && q.scope == Scope::Global)
            })
    };
    let mut out: Vec<(&Quota, Scope)> = QUOTA_TYPES
        .iter()
        .filter_map(|t| own(*t))
        .filter_map(|q| charge.measured(q).map(|s| (q, s)))
        .collect();
    for q in quotas {
        if matches!(q.scope, Scope::Team(_) | Scope::Org(_))
            && let Some(s) = charge.measured(q)
        {
            out.push((q, s));
        }
    }
    out
}

fn hour_key(ms: u64) -> String {
    format!("{}T{:02}", day_key(ms), date(ms).hour())
}

/// The counter of type `t` for `scope` at `now_ms`.
pub fn counter_key(t: QuotaType, scope: &Scope, now_ms: u64) -> String {
    let s = scope.key();
    match t {
        QuotaType::ConcurrentJobs => format!("qlive:{s}"),
        QuotaType::JobsPerHour => format!("qn:{}:{s}", hour_key(now_ms)),
        QuotaType::JobsPerDay => format!("qn:{}:{s}", day_key(now_ms)),
        QuotaType::CostDaily => format!("qcost:{}:{s}", day_key(now_ms)),
        QuotaType::CostMonthly => format!(
            "qcost:{}:{s}",
            crate::billing::limits::window(crate::providers::settings::Period::Monthly, now_ms)
        ),
    }
}

/// The usage a counter value means (USD for cost types).
fn value(t: QuotaType, raw: i64) -> f64 {
    if t.is_cost() { usd(raw) } else { raw as f64 }
}

/// Whether a counter at `raw` is past `limit` (a total equal to it fits).
fn over(t: QuotaType, raw: i64, limit: f64) -> bool {
    if t.is_cost() {
        raw > micros(limit)
    } else {
        raw as f64 > limit
    }
}

/// What a job took at submit, kept on the job so it is given back once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QuotaHold {
    /// Running-job counters: decremented when the job ends.
    #[serde(default)]
    pub live: Vec<String>,
    /// Submission counters: given back only by a submit that failed before
    /// its job existed.
    #[serde(default)]
    pub counts: Vec<String>,
    /// Spend counters holding `micros` (the estimate) until settled.
    #[serde(default)]
    pub cost: Vec<String>,
    #[serde(default)]
    pub micros: i64,
}

/// The outcome of reserving at submit.
pub enum Reserved {
    Allowed {
        hold: QuotaHold,
        /// `warn` quotas this job goes past (SimpleTuner's `quota_warnings`).
        warnings: Vec<String>,
    },
    Refused(ApiError),
}

/// Takes the job's place in every counter of `charge`, then applies the
/// quotas that apply to it: a `block` (or, until approvals exist, a
/// `require_approval`) quota whose total is now past its limit refuses the
/// job, and everything taken is given back.
pub fn reserve(
    kv: &dyn KvStore,
    quotas: &[Quota],
    charge: &Charge,
    est_usd: f64,
    now_ms: u64,
) -> Result<Reserved, ApiError> {
    let m = micros(est_usd).max(0);
    let mut hold = QuotaHold {
        micros: m,
        ..Default::default()
    };
    let mut totals = std::collections::HashMap::new();
    for scope in charge.scopes() {
        for t in QUOTA_TYPES {
            let key = counter_key(t, &scope, now_ms);
            let total = kv.increment(&key, if t.is_cost() { m } else { 1 });
            let total = match total {
                Ok(n) => n,
                Err(e) => {
                    let _ = release(kv, &hold);
                    return Err(e.into());
                }
            };
            totals.insert(key.clone(), total);
            match t {
                QuotaType::ConcurrentJobs => hold.live.push(key),
                QuotaType::JobsPerHour | QuotaType::JobsPerDay => hold.counts.push(key),
                QuotaType::CostDaily | QuotaType::CostMonthly => hold.cost.push(key),
            }
        }
    }
    let mut warnings = Vec::new();
    let mut refusal: Option<(QuotaAction, ApiError)> = None;
    for (q, scope) in applicable(quotas, charge) {
        let t = q.quota_type;
        let total = totals
            .get(&counter_key(t, &scope, now_ms))
            .copied()
            .unwrap_or(0);
        if !over(t, total, q.limit_value) {
            continue;
        }
        let mine = if t.is_cost() { m } else { 1 };
        let before = value(t, total.saturating_sub(mine));
        let crossed = Crossed {
            quota: q,
            scope: charge.describe(q),
            before,
            after: value(t, total),
        };
        match q.action {
            QuotaAction::Warn => warnings.push(crossed.warning()),
            QuotaAction::Block => {
                refusal = Some((QuotaAction::Block, crossed.refusal()));
                break;
            }
            QuotaAction::RequireApproval if refusal.is_none() => {
                refusal = Some((QuotaAction::RequireApproval, crossed.refusal()));
            }
            QuotaAction::RequireApproval => {}
        }
    }
    if let Some((_, e)) = refusal {
        release(kv, &hold)?;
        return Ok(Reserved::Refused(e));
    }
    Ok(Reserved::Allowed { hold, warnings })
}

/// A quota a submit went past.
struct Crossed<'a> {
    quota: &'a Quota,
    scope: String,
    before: f64,
    after: f64,
}

impl Crossed<'_> {
    fn headline(&self) -> String {
        let t = self.quota.quota_type;
        format!(
            "{} limit of {} for {} reached (current usage {})",
            t.as_str(),
            t.show(self.quota.limit_value),
            self.scope,
            t.show(self.before),
        )
    }

    fn warning(&self) -> String {
        let t = self.quota.quota_type;
        format!(
            "{}; this job brings it to {} (warning only)",
            self.headline(),
            t.show(self.after)
        )
    }

    fn refusal(&self) -> ApiError {
        let q = self.quota;
        let e = if q.action == QuotaAction::RequireApproval {
            ApiError::new(
                403,
                "approval_required",
                format!(
                    "{}: an approver must allow this job, and approvals are not available on \
                     this server yet, so it was not submitted",
                    self.headline()
                ),
            )
        } else {
            ApiError::new(
                429,
                "quota_exceeded",
                format!("{}: the job was not submitted", self.headline()),
            )
        };
        e.with_detail("quota_id", q.id)
            .with_detail("quota_type", q.quota_type.as_str())
            .with_detail("limit", q.limit_value)
            .with_detail("current", self.before)
            .with_detail("action", q.action.as_str())
            .with_detail("scope", q.scope.name())
    }
}

/// Gives back everything a hold took (a submit that failed before its job
/// existed); tries every key, reports the first failure.
pub fn release(kv: &dyn KvStore, hold: &QuotaHold) -> Result<(), ApiError> {
    let mut first = None;
    let moves = hold
        .live
        .iter()
        .chain(&hold.counts)
        .map(|k| (k, -1))
        .chain(hold.cost.iter().map(|k| (k, hold.micros.saturating_neg())));
    for (k, delta) in moves {
        if let Err(e) = kv.increment(k, delta) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), |e| Err(e.into()))
}

/// The job ended (called once, from the job store's settlement): its running
/// slot is free and its estimate becomes its real cost.
pub fn settle(kv: &dyn KvStore, hold: &QuotaHold, cost_usd: f64) -> Result<(), ApiError> {
    let mut first = None;
    let delta = micros(cost_usd).saturating_sub(hold.micros);
    let moves = hold
        .live
        .iter()
        .map(|k| (k, -1))
        .chain(hold.cost.iter().map(|k| (k, delta)));
    for (k, d) in moves {
        if let Err(e) = kv.increment(k, d) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), |e| Err(e.into()))
}

/// The current usage `q` is measured against.
pub fn current(kv: &dyn KvStore, q: &Quota, scope: &Scope, now_ms: u64) -> Result<f64, ApiError> {
    let raw = read_counter(kv, &counter_key(q.quota_type, scope, now_ms))?;
    Ok(value(q.quota_type, raw.max(0)))
}

fn percent(value: f64, limit: f64) -> f64 {
    if limit > 0.0 {
        (value / limit * 1000.0).round() / 10.0
    } else {
        0.0
    }
}

/// One quota's usage (SimpleTuner's `QuotaStatus.to_dict()`, with the field
/// names its CLI's `quota status` reads as well).
pub fn status_entry(q: &Quota, current: f64, user_number: Option<u64>) -> Value {
    let t = q.quota_type;
    let used = percent(current, q.limit_value);
    let exceeded = current >= q.limit_value;
    let warning = !exceeded && used >= 80.0;
    let message = if exceeded {
        Some(format!(
            "{} quota reached: {} / {}",
            t.as_str(),
            t.show(current),
            t.show(q.limit_value)
        ))
    } else if warning {
        Some(format!(
            "Approaching {} limit: {} / {}",
            t.as_str(),
            t.show(current),
            t.show(q.limit_value)
        ))
    } else {
        None
    };
    let mut v = q.to_api(user_number);
    let extra = json!({
        "quota_id": q.id,
        "limit": q.limit_value,
        "current": current,
        "current_usage": current,
        "is_exceeded": exceeded,
        "is_warning": warning,
        "percent_used": used,
        "message": message,
        "source": q.scope.name(),
        "unit": t.unit(),
    });
    for (k, x) in extra.as_object().expect("object") {
        v[k] = x.clone();
    }
    v
}

/// What a job of `est_usd` would do to each quota that applies to `charge`
/// (`POST /api/quotas/cost-estimate`): usage now, projected after the job,
/// and whether it crosses the limit. SimpleTuner's pre-submit modal reads
/// `projected` and `projected_percent`, which its route never sent.
pub fn impacts(
    kv: &dyn KvStore,
    quotas: &[Quota],
    charge: &Charge,
    est_usd: f64,
    now_ms: u64,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for (q, scope) in applicable(quotas, charge) {
        let t = q.quota_type;
        let now = current(kv, q, &scope, now_ms)?;
        let projected = if t.is_cost() {
            usd(micros(now) + micros(est_usd).max(0))
        } else {
            now + 1.0
        };
        let exceeds = if t.is_cost() {
            micros(projected) > micros(q.limit_value)
        } else {
            projected > q.limit_value
        };
        out.push(json!({
            "quota_id": q.id,
            "quota_type": t.as_str(),
            "scope": q.scope.name(),
            "team_id": match q.scope { Scope::Team(id) => Some(id), _ => None },
            "org_id": match q.scope { Scope::Org(id) => Some(id), _ => None },
            "action": q.action.as_str(),
            "limit": q.limit_value,
            "current": now,
            "after": projected,
            "projected": projected,
            "percent_before": percent(now, q.limit_value),
            "percent_after": percent(projected, q.limit_value),
            "projected_percent": percent(projected, q.limit_value),
            "would_exceed": exceeds,
        }));
    }
    Ok(out)
}

/// The team a submit is charged to: the one it names, which must be one of
/// the submitter's (400 otherwise), else their first team, else none.
pub fn charged_team(
    kv: &dyn KvStore,
    user: &str,
    asked: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    let teams = crate::auth::orgs::teams::TeamStore::new(kv).teams_of(user)?;
    match asked {
        Some(t) if teams.contains(&t) => Ok(Some(t)),
        Some(t) => Err(ApiError::new(
            400,
            "not_a_team_member",
            format!("you are not a member of team {t}, so a job cannot be charged to it"),
        )
        .with_detail("team_id", t)),
        None => Ok(teams.first().copied()),
    }
}

/// [`reserve`] for a submit by `user`: charged to [`charged_team`] and the
/// user's organization, under every quota there is. Returns the team too.
pub fn reserve_submit(
    kv: &dyn KvStore,
    user: &str,
    username: &str,
    asked_team: Option<u64>,
    est_usd: f64,
    now_ms: u64,
) -> Result<(Reserved, Option<u64>), ApiError> {
    let team = charged_team(kv, user, asked_team)?;
    let charge = Charge {
        user,
        username,
        team,
        org: crate::auth::orgs::OrgStore::new(kv).org_of(user)?,
    };
    let quotas = super::QuotaStore::new(kv).list()?;
    Ok((reserve(kv, &quotas, &charge, est_usd, now_ms)?, team))
}
