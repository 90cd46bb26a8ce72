use serde_json::{Value, json};

use super::api::{QuotaRequest, handle};
use super::usage::{Charge, QuotaHold, Reserved, counter_key, release, reserve, settle};
use super::*;
use crate::auth::principal::{AuthMethod, Principal, Role};
use crate::kernel::kv::{MemoryKv, read_counter};

pub(crate) const NOW: u64 = 1_795_879_207_000; // 2026-11-28T12:40:07Z

pub(crate) fn quota(
    kv: &MemoryKv,
    t: QuotaType,
    limit: f64,
    action: QuotaAction,
    scope: Scope,
) -> Quota {
    let new = NewQuota {
        quota_type: t,
        limit_value: limit,
        action,
        scope,
    };
    QuotaStore::new(kv).set(&new, NOW).unwrap().0
}

pub(crate) fn charge<'a>(user: &'a str, team: Option<u64>, org: Option<u64>) -> Charge<'a> {
    Charge {
        user,
        username: user,
        team,
        org,
    }
}

/// Reserves a job of `usd` for `c`: the hold, or the refusal.
pub(crate) fn submit(
    kv: &MemoryKv,
    c: &Charge,
    usd: f64,
) -> Result<(QuotaHold, Vec<String>), ApiError> {
    let quotas = QuotaStore::new(kv).list().unwrap();
    match reserve(kv, &quotas, c, usd, NOW).unwrap() {
        Reserved::Allowed { hold, warnings } => Ok((hold, warnings)),
        Reserved::Refused(e) => Err(e),
    }
}

pub(crate) fn counter(kv: &MemoryKv, t: QuotaType, scope: &Scope) -> i64 {
    read_counter(kv, &counter_key(t, scope, NOW)).unwrap()
}

#[test]
fn a_concurrent_limit_refuses_the_next_job_until_one_ends() {
    let kv = MemoryKv::default();
    let user = Scope::User("alice".into());
    quota(
        &kv,
        QuotaType::ConcurrentJobs,
        1.0,
        QuotaAction::Block,
        user.clone(),
    );
    let alice = charge("alice", None, None);
    let (first, warnings) = submit(&kv, &alice, 1.0).unwrap();
    assert!(warnings.is_empty());
    let e = submit(&kv, &alice, 1.0).unwrap_err();
    assert_eq!((e.status, e.code), (429, "quota_exceeded"));
    assert!(
        e.message
            .starts_with("concurrent_jobs limit of 1 for user alice reached (current usage 1)"),
        "{}",
        e.message
    );
    assert_eq!(e.details["limit"], 1.0);
    // The refused submit took nothing.
    assert_eq!(counter(&kv, QuotaType::ConcurrentJobs, &user), 1);
    assert_eq!(counter(&kv, QuotaType::JobsPerDay, &user), 1);
    // Another user is not limited by alice's quota.
    submit(&kv, &charge("bob", None, None), 1.0).unwrap();
    settle(&kv, &first, 0.5).unwrap();
    assert_eq!(counter(&kv, QuotaType::ConcurrentJobs, &user), 0);
    assert_eq!(counter(&kv, QuotaType::CostDaily, &user), 500_000);
    submit(&kv, &alice, 1.0).unwrap();
}

#[test]
fn of_six_submits_at_a_limit_of_two_exactly_two_pass() {
    let kv = MemoryKv::default();
    quota(
        &kv,
        QuotaType::ConcurrentJobs,
        2.0,
        QuotaAction::Block,
        Scope::Global,
    );
    let a = charge("a", None, None);
    let passed = (0..6).filter(|_| submit(&kv, &a, 0.0).is_ok()).count();
    assert_eq!(passed, 2);
    assert_eq!(
        counter(&kv, QuotaType::ConcurrentJobs, &Scope::User("a".into())),
        2
    );
}

#[test]
fn global_is_each_users_default_and_a_users_own_quota_replaces_it() {
    let kv = MemoryKv::default();
    quota(
        &kv,
        QuotaType::JobsPerDay,
        1.0,
        QuotaAction::Block,
        Scope::Global,
    );
    quota(
        &kv,
        QuotaType::JobsPerDay,
        3.0,
        QuotaAction::Block,
        Scope::User("vip".into()),
    );
    for u in ["a", "b"] {
        submit(&kv, &charge(u, None, None), 0.0).unwrap();
        let e = submit(&kv, &charge(u, None, None), 0.0).unwrap_err();
        assert!(
            e.message.contains("the default for every user"),
            "{}",
            e.message
        );
    }
    let vip = charge("vip", None, None);
    assert_eq!((0..5).filter(|_| submit(&kv, &vip, 0.0).is_ok()).count(), 3);
}

#[test]
fn team_and_org_quotas_count_all_their_members_jobs() {
    let kv = MemoryKv::default();
    quota(
        &kv,
        QuotaType::ConcurrentJobs,
        2.0,
        QuotaAction::Block,
        Scope::Team(7),
    );
    quota(
        &kv,
        QuotaType::JobsPerHour,
        3.0,
        QuotaAction::Block,
        Scope::Org(1),
    );
    submit(&kv, &charge("a", Some(7), Some(1)), 0.0).unwrap();
    submit(&kv, &charge("b", Some(7), Some(1)), 0.0).unwrap();
    let e = submit(&kv, &charge("c", Some(7), Some(1)), 0.0).unwrap_err();
    assert!(e.message.contains("for team 7"), "{}", e.message);
    // Charged to another team of the same organization: the org's hourly
    // limit is what stops the fourth.
    submit(&kv, &charge("c", Some(8), Some(1)), 0.0).unwrap();
    let e = submit(&kv, &charge("d", None, Some(1)), 0.0).unwrap_err();
    assert!(
        e.message
            .starts_with("jobs_per_hour limit of 3 for organization 1 reached (current usage 3)"),
        "{}",
        e.message
    );
}

#[test]
fn cost_quotas_hold_the_estimate_and_settle_to_the_real_cost() {
    let kv = MemoryKv::default();
    quota(
        &kv,
        QuotaType::CostDaily,
        10.0,
        QuotaAction::Block,
        Scope::Global,
    );
    let a = charge("a", None, None);
    let (hold, _) = submit(&kv, &a, 6.0).unwrap();
    let e = submit(&kv, &a, 4.5).unwrap_err();
    assert!(
        e.message
            .starts_with("cost_daily limit of $10.00 for user a (the default for every user) reached (current usage $6.00)"),
        "{}",
        e.message
    );
    settle(&kv, &hold, 2.0).unwrap();
    // $2 spent: $8 more fits exactly, a cent more does not.
    let (fits, _) = submit(&kv, &a, 8.0).unwrap();
    release(&kv, &fits).unwrap();
    assert!(submit(&kv, &a, 8.01).is_err());
}

#[test]
fn warn_quotas_warn_and_require_approval_refuses_until_approvals_exist() {
    let kv = MemoryKv::default();
    quota(
        &kv,
        QuotaType::JobsPerDay,
        1.0,
        QuotaAction::Warn,
        Scope::Global,
    );
    let a = charge("a", None, None);
    let (_, warnings) = submit(&kv, &a, 0.0).unwrap();
    assert!(warnings.is_empty());
    let (_, warnings) = submit(&kv, &a, 0.0).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("jobs_per_day limit of 1"),
        "{warnings:?}"
    );
    quota(
        &kv,
        QuotaType::ConcurrentJobs,
        2.0,
        QuotaAction::RequireApproval,
        Scope::Global,
    );
    let e = submit(&kv, &a, 0.0).unwrap_err();
    assert_eq!((e.status, e.code), (403, "approval_required"));
    assert!(
        e.message.contains("an approver must allow"),
        "{}",
        e.message
    );
}

#[test]
fn setting_a_scopes_quota_again_changes_it_and_delete_frees_the_slot() {
    let kv = MemoryKv::default();
    let store = QuotaStore::new(&kv);
    let first = quota(
        &kv,
        QuotaType::CostMonthly,
        5.0,
        QuotaAction::Warn,
        Scope::Org(2),
    );
    let again = quota(
        &kv,
        QuotaType::CostMonthly,
        9.0,
        QuotaAction::Block,
        Scope::Org(2),
    );
    assert_eq!(first.id, again.id);
    assert_eq!((again.limit_value, again.action), (9.0, QuotaAction::Block));
    assert_eq!(store.list().unwrap().len(), 1);
    store.delete(first.id).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.delete(first.id).unwrap_err().status, 404);
    let third = quota(
        &kv,
        QuotaType::CostMonthly,
        1.0,
        QuotaAction::Warn,
        Scope::Org(2),
    );
    assert_ne!(third.id, first.id);
    assert_eq!(store.list().unwrap(), vec![third]);
}

fn principal(id: &str, role: Role) -> Principal {
    Principal {
        id: id.into(),
        username: id.into(),
        role,
        permissions: role.permissions(),
        scopes: None,
        method: AuthMethod::Session,
    }
}

fn call(kv: &MemoryKv, p: &Principal, method: &str, rest: &str, body: Value) -> (u16, Value) {
    let req = QuotaRequest {
        method,
        rest,
        body,
        estimated_cost: None,
        now_ms: NOW,
    };
    match handle(kv, p, &req) {
        Ok(a) => a,
        Err(e) => (e.status, e.body()),
    }
}

#[test]
fn admins_manage_quotas_others_see_their_own_usage() {
    let kv = MemoryKv::default();
    let admin = Principal::admin("root");
    let alice = principal("alice", Role::Researcher);
    let body = json!({"quota_type": "cost_daily", "limit_value": 10, "action": "warn"});
    let (s, v) = call(&kv, &alice, "POST", "", body.clone());
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("permission_denied")),
        "{v}"
    );
    assert_eq!(call(&kv, &alice, "GET", "", Value::Null).0, 403);
    let (s, v) = call(&kv, &admin, "POST", "", body);
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["quota"]["is_global"], true);
    let id = v["id"].as_u64().unwrap();
    for bad in [
        json!({"quota_type": "local_gpus", "limit_value": 1}),
        json!({"quota_type": "cost_daily", "limit_value": 0}),
        json!({"quota_type": "cost_daily", "limit_value": 1, "action": "notify"}),
        json!({"quota_type": "cost_daily", "limit_value": 1, "team_id": 1, "org_id": 1}),
        json!({"quota_type": "cost_daily", "limit_value": 1, "level_id": 2}),
    ] {
        let (s, v) = call(&kv, &admin, "POST", "", bad.clone());
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, v) = call(
        &kv,
        &admin,
        "POST",
        "",
        json!({"quota_type": "cost_daily", "limit_value": 1, "team_id": 99}),
    );
    assert_eq!(s, 404, "{v}");

    // Alice spent $8 of her $10 today.
    let (hold, _) = submit(&kv, &charge("alice", None, None), 8.0).unwrap();
    settle(&kv, &hold, 8.0).unwrap();
    let (s, me) = call(&kv, &alice, "GET", "/me", Value::Null);
    assert_eq!(s, 200, "{me}");
    let status = &me["statuses"][0];
    assert_eq!(
        (status["current"].as_f64(), status["limit"].as_f64()),
        (Some(8.0), Some(10.0))
    );
    assert_eq!(
        (
            status["is_warning"].as_bool(),
            status["percent_used"].as_f64()
        ),
        (Some(true), Some(80.0))
    );
    assert_eq!(me["quotas"][0]["current_usage"], 8.0);
    assert_eq!(me["can_submit"], true);

    let req = QuotaRequest {
        method: "POST",
        rest: "/cost-estimate",
        body: Value::Null,
        estimated_cost: Some("3".into()),
        now_ms: NOW,
    };
    let (_, est) = handle(&kv, &alice, &req).unwrap();
    let impact = &est["impacts"][0];
    assert_eq!(
        (
            impact["projected"].as_f64(),
            impact["projected_percent"].as_f64()
        ),
        (Some(11.0), Some(110.0))
    );
    assert_eq!(impact["would_exceed"], true);
    assert_eq!(est["would_exceed"], false, "a warn quota does not refuse");

    assert_eq!(
        call(&kv, &alice, "DELETE", &format!("/{id}"), Value::Null).0,
        403
    );
    let (s, v) = call(&kv, &admin, "DELETE", &format!("/{id}"), Value::Null);
    assert_eq!((s, v["success"].as_bool()), (200, Some(true)));
    assert_eq!(
        call(&kv, &admin, "GET", &format!("/{id}"), Value::Null).0,
        404
    );
    let (_, types) = call(
        &kv,
        &principal("lead", Role::Lead),
        "GET",
        "/types",
        Value::Null,
    );
    assert_eq!(types["types"].as_array().unwrap().len(), 5);
}
