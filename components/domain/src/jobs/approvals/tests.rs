//! Approvals against a scripted Replicate: rules hold, approvals dispatch
//! exactly once, rejections and expiry end requests, keys replay.

use serde_json::{Value, json};

use super::api::{ApprovalsRequest, handle};
use super::decide::{Decision, decide, dispatch, expire_due};
use super::rules::{Subject, first_match, from_body, glob};
use super::*;
use crate::auth::principal::{AuthMethod, Principal, Role};
use crate::auth::users::UserStore;
use crate::jobs::submit::{SubmitContext, Submitted};
use crate::kernel::counting::CountingKv;
use crate::kernel::http::Method;
use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};
use crate::providers::catalog::{DEFAULT_PROFILE, find_profile};
use crate::providers::settings::{ProviderSettings, StoredSettings};

const NOW: u64 = 1_800_000_000_000;

struct World {
    kv: CountingKv,
    http: ScriptedHttp,
    settings: ProviderSettings,
    stored: StoredSettings,
    datasets: tempfile::TempDir,
    researcher: Principal,
    lead: Principal,
    admin: Principal,
}

fn person(kv: &CountingKv, name: &str, role: Role) -> Principal {
    UserStore::new(kv)
        .create(name, "a long password here", role, NOW)
        .unwrap()
        .principal(AuthMethod::Session, None)
}

impl World {
    fn new() -> Self {
        let http = ScriptedHttp::new();
        let model = find_profile(DEFAULT_PROFILE).unwrap().model();
        http.on(
            Method::Get,
            &format!("/v1/models/{model}"),
            vec![Reply::Json(200, json!({"latest_version": {"id": "v1"}}))],
        );
        http.on(
            Method::Post,
            "/v1/predictions",
            vec![Reply::Json(201, json!({"id": "p1", "status": "starting"}))],
        );
        let kv = CountingKv::default();
        let researcher = person(&kv, "rita", Role::Researcher);
        let lead = person(&kv, "leo", Role::Lead);
        World {
            http,
            settings: ProviderSettings {
                api_base: "http://replicate.test".into(),
                token: "r8_test".into(),
                public_url: None,
                refresh_after_ms: 5_000,
            },
            stored: StoredSettings::default(),
            datasets: tempfile::tempdir().unwrap(),
            researcher,
            lead,
            admin: Principal::admin("root"),
            kv,
        }
    }

    fn ctx<'a>(&'a self, p: &'a Principal, now: u64) -> SubmitContext<'a, ScriptedHttp> {
        SubmitContext {
            kv: &self.kv,
            http: &self.http,
            settings: &self.settings,
            principal: p,
            hf_token: None,
            datasets_root: self.datasets.path(),
            stored: &self.stored,
            now_ms: now,
        }
    }

    fn rule(&self, body: Value) -> Rule {
        RuleStore::new(&self.kv)
            .create(from_body(&body, None, NOW).unwrap())
            .unwrap()
    }

    /// The gate's answer for `p` submitting `body` (None: not held).
    fn gate(&self, p: &Principal, body: &Value) -> Option<Submitted> {
        gate(
            &self.ctx(p, NOW),
            Some("replicate"),
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    fn api(&self, p: &Principal, method: &str, rest: &str, body: Value) -> (u16, Value) {
        let req = ApprovalsRequest {
            method,
            rest,
            query: &[],
            body,
            now_ms: NOW,
        };
        let ctx = self.ctx(p, NOW);
        match block_on(handle(&self.kv, p, &req, Some(&ctx))) {
            Ok(answer) => answer,
            Err(e) => (e.status, e.body()),
        }
    }

    fn creates(&self) -> usize {
        self.http.count(Method::Post, "/v1/predictions")
    }
}

/// ~$9: an H100 for 98 minutes, the worst case the submit reserves.
fn nine_dollars(key: Option<&str>) -> Value {
    let mut body = json!({"config": {"--max_train_steps": 10}, "hardware_profile": "h100",
        "max_runtime_minutes": 98});
    if let Some(k) = key {
        body["idempotency_key"] = json!(k);
    }
    body
}

fn cost_rule() -> Value {
    json!({"name": "Expensive runs", "condition": "cost_exceeds", "threshold": "5"})
}

#[test]
fn without_rules_nothing_is_held() {
    let w = World::new();
    assert!(w.gate(&w.researcher, &nine_dollars(None)).is_none());
}

#[test]
fn a_cost_rule_holds_a_nine_dollar_submit_until_a_lead_approves_it() {
    let w = World::new();
    w.rule(cost_rule());
    let held = w.gate(&w.researcher, &nine_dollars(None)).expect("held");
    assert_eq!(held.status, 202, "{}", held.body);
    assert_eq!(held.body["approval_required"], true);
    let cost = held.body["estimated_cost_usd"].as_f64().unwrap();
    assert!((8.5..9.5).contains(&cost), "{cost}");
    assert!(
        held.body["message"]
            .as_str()
            .unwrap()
            .contains("exceeds threshold ($5)")
    );
    assert_eq!(w.creates(), 0, "nothing reaches Replicate before approval");
    let id = held.body["approval_request_id"].as_u64().unwrap();
    let (status, out) = w.api(&w.lead, "POST", &format!("/{id}/approve"), Value::Null);
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["dispatched"], true, "{out}");
    assert_eq!(w.creates(), 1);
    let job = out["job_id"].as_str().unwrap();
    let stored = crate::jobs::store::JobStore::new(&w.kv)
        .get(job)
        .unwrap()
        .unwrap();
    assert_eq!(stored.owner, w.researcher.id, "the job is the submitter's");
    // A second approval is a 409 and sends nothing.
    let (again, _) = w.api(&w.admin, "POST", &format!("/{id}/approve"), Value::Null);
    assert_eq!(again, 409);
    assert_eq!(w.creates(), 1);
}

#[test]
fn racing_approvers_make_one_decision_and_one_job() {
    let w = World::new();
    w.rule(cost_rule());
    let held = w.gate(&w.researcher, &nine_dollars(None)).unwrap();
    let id = held.body["approval_request_id"].as_u64().unwrap();
    // Both passed their checks; only one swap from `pending` lands.
    let first = decide(&w.kv, &w.lead, id, Decision::Approve, None, NOW).unwrap();
    let second = decide(
        &w.kv,
        &w.admin,
        id,
        Decision::Reject,
        Some("no".into()),
        NOW,
    );
    assert_eq!(second.unwrap_err().status, 409);
    let done = block_on(dispatch(&w.ctx(&w.lead, NOW), first));
    assert!(done.job_id.is_some());
    assert_eq!(w.creates(), 1);
}

#[test]
fn a_rejection_needs_a_reason_and_the_submitter_sees_it() {
    let w = World::new();
    w.rule(cost_rule());
    let held = w.gate(&w.researcher, &nine_dollars(None)).unwrap();
    let id = held.body["approval_request_id"].as_u64().unwrap();
    let (status, _) = w.api(
        &w.lead,
        "POST",
        &format!("/requests/{id}/reject"),
        Value::Null,
    );
    assert_eq!(status, 400);
    let (status, _) = w.api(
        &w.lead,
        "POST",
        &format!("/{id}/reject"),
        json!({"reason": "Cost too high"}),
    );
    assert_eq!(status, 200);
    let (status, mine) = w.api(&w.researcher, "GET", "/me", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(mine["requests"][0]["status"], "rejected");
    assert_eq!(mine["requests"][0]["review_notes"], "Cost too high");
    assert_eq!(w.creates(), 0);
}

#[test]
fn researchers_cannot_decide_nor_see_others_requests() {
    let w = World::new();
    w.rule(cost_rule());
    let held = w.gate(&w.lead, &nine_dollars(None)).unwrap();
    let id = held.body["approval_request_id"].as_u64().unwrap();
    let (status, _) = w.api(
        &w.researcher,
        "POST",
        &format!("/{id}/approve"),
        Value::Null,
    );
    assert_eq!(status, 403);
    let (status, _) = w.api(
        &w.researcher,
        "GET",
        &format!("/requests/{id}"),
        Value::Null,
    );
    assert_eq!(status, 404);
    let (status, _) = w.api(&w.researcher, "GET", "", Value::Null);
    assert_eq!(status, 403);
    // A lead does not decide their own submit.
    let (status, body) = w.api(&w.lead, "POST", &format!("/{id}/approve"), Value::Null);
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("self_approval"))
    );
}

#[test]
fn the_same_idempotency_key_answers_the_same_request() {
    let w = World::new();
    w.rule(cost_rule());
    let first = w.gate(&w.researcher, &nine_dollars(Some("k1"))).unwrap();
    let again = w.gate(&w.researcher, &nine_dollars(Some("k1"))).unwrap();
    assert_eq!(again.body["idempotent_hit"], true);
    assert_eq!(
        first.body["approval_request_id"],
        again.body["approval_request_id"]
    );
    assert_eq!(RequestStore::new(&w.kv).pending().unwrap().len(), 1);
    // Once approved, the key answers the job the approval made.
    let id = first.body["approval_request_id"].as_u64().unwrap();
    let approved = decide(&w.kv, &w.lead, id, Decision::Approve, None, NOW).unwrap();
    let done = block_on(dispatch(&w.ctx(&w.lead, NOW), approved));
    let replay = w.gate(&w.researcher, &nine_dollars(Some("k1"))).unwrap();
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.body["job_id"], json!(done.job_id));
    assert_eq!(w.creates(), 1);
    let mut other = nine_dollars(Some("k1"));
    other["max_runtime_minutes"] = json!(99);
    let e = gate(
        &w.ctx(&w.researcher, NOW),
        None,
        other.to_string().as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e.status, 422);
}

#[test]
fn requests_expire_after_their_rules_time() {
    let w = World::new();
    w.rule(
        json!({"name": "All", "condition": "provider", "threshold": "replicate",
        "expires_hours": 1}),
    );
    let held = w.gate(&w.researcher, &nine_dollars(None)).unwrap();
    let id = held.body["approval_request_id"].as_u64().unwrap();
    assert_eq!(expire_due(&w.kv, NOW + 3_500_000).unwrap(), 0);
    assert_eq!(expire_due(&w.kv, NOW + 3_600_000).unwrap(), 1);
    let r = RequestStore::new(&w.kv).load(id).unwrap();
    assert_eq!(r.status, Status::Expired);
    let e = decide(&w.kv, &w.lead, id, Decision::Approve, None, NOW).unwrap_err();
    assert_eq!(e.status, 409);
}

#[test]
fn rule_changes_are_for_admins_and_listed_by_priority() {
    let w = World::new();
    let (status, _) = w.api(&w.lead, "POST", "/rules", cost_rule());
    assert_eq!(status, 403);
    let (status, low) = w.api(&w.admin, "POST", "/rules", cost_rule());
    assert_eq!(status, 201, "{low}");
    let (_, high) = w.api(
        &w.admin,
        "POST",
        "/rules",
        json!({"name": "First", "condition": "first_job", "priority": 20}),
    );
    let (status, list) = w.api(&w.lead, "GET", "/rules", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(list["rules"][0]["id"], high["id"]);
    let (status, bad) = w.api(
        &w.admin,
        "POST",
        "/rules",
        json!({"name": "x", "condition": "cost_exceeds", "threshold": "lots"}),
    );
    assert_eq!(status, 400, "{bad}");
    let id = low["id"].as_u64().unwrap();
    let (status, patched) = w.api(
        &w.admin,
        "PATCH",
        &format!("/rules/{id}"),
        json!({"is_active": false}),
    );
    assert_eq!((status, &patched["is_active"]), (200, &json!(false)));
    assert_eq!(patched["threshold"], "5", "unsent fields stay");
    let (status, _) = w.api(&w.admin, "DELETE", &format!("/rules/{id}"), Value::Null);
    assert_eq!(status, 200);
}

#[test]
fn conditions_match_as_simpletuner_means_them() {
    let rule = |c: &str, t: &str| {
        from_body(
            &json!({"name": "r", "condition": c, "threshold": t}),
            None,
            NOW,
        )
        .unwrap()
    };
    let s = Subject {
        level: "researcher".into(),
        provider: "replicate".into(),
        config_name: Some("flux-lora".into()),
        estimated_cost: 9.0,
        hardware_type: Some("2x H100".into()),
        jobs_today: 3,
        jobs_total: 3,
    };
    let holds = |r: Rule| first_match(&[r], &s).is_some();
    assert!(holds(rule("cost_exceeds", "5")) && !holds(rule("cost_exceeds", "9")));
    assert!(holds(rule("hardware_type", "*H100*")) && !holds(rule("hardware_type", "L40S")));
    assert!(holds(rule("user_level", "lead")) && !holds(rule("user_level", "researcher")));
    assert!(holds(rule("daily_jobs_exceed", "2")) && !holds(rule("daily_jobs_exceed", "3")));
    assert!(!holds(rule("first_job", "true")));
    assert!(holds(rule("config_pattern", "flux-*")));
    let mut exempt = rule("cost_exceeds", "5");
    exempt.exempt_levels = vec!["researcher".into()];
    assert!(!holds(exempt));
    assert!(glob("a*c?", "abbbcd") && !glob("a*c", "abd"));
}

#[test]
fn bulk_decisions_answer_each_request() {
    let w = World::new();
    w.rule(cost_rule());
    let ids: Vec<u64> = (0..2)
        .map(|_| {
            w.gate(&w.researcher, &nine_dollars(None)).unwrap().body["approval_request_id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let (status, _) = w.api(
        &w.lead,
        "POST",
        "/requests/bulk-reject",
        json!({"request_ids": ids}),
    );
    assert_eq!(status, 400, "a reason is required");
    let (status, out) = w.api(
        &w.lead,
        "POST",
        "/requests/bulk-approve",
        json!({"request_ids": [ids[0]]}),
    );
    assert_eq!((status, &out["succeeded"]), (200, &json!(1)), "{out}");
    let (status, out) = w.api(
        &w.lead,
        "POST",
        "/requests/bulk-reject",
        json!({"request_ids": ids, "reason": "over budget"}),
    );
    assert_eq!(status, 200, "{out}");
    assert_eq!((&out["succeeded"], &out["failed"]), (&json!(1), &json!(1)));
    assert_eq!(out["results"][0]["success"], false, "already approved");
    assert_eq!(w.creates(), 1);
}

#[test]
fn what_runs_once_approved_is_what_was_judged() {
    let w = World::new();
    w.rule(cost_rule());
    let configs = crate::jobs::configs::ConfigStore::new(&w.kv);
    let put = |steps: u64| {
        let config = json!({"--max_train_steps": steps});
        configs.put(&w.researcher.id, "nightly", config, json!([]), NOW)
    };
    put(10).unwrap();
    let body = json!({"config_name_to_load": "nightly", "max_runtime_minutes": 98});
    let held = w.gate(&w.researcher, &body).unwrap();
    let id = held.body["approval_request_id"].as_u64().unwrap();
    // The submitter changes the saved config while the request waits.
    put(99999).unwrap();
    let approved = decide(&w.kv, &w.lead, id, Decision::Approve, None, NOW).unwrap();
    let done = block_on(dispatch(&w.ctx(&w.lead, NOW), approved));
    let job = crate::jobs::store::JobStore::new(&w.kv)
        .get(done.job_id.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(job.config["--max_train_steps"], 10, "the judged config ran");
}
