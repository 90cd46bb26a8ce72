use serde_json::{Value, json};

use super::api::{ChannelRequest, handle};
use crate::auth::orgs::OrgStore;
use crate::auth::orgs::teams::TeamStore;
use crate::auth::principal::{AuthMethod, Principal, Role};
use crate::auth::users::UserStore;
use crate::kernel::error::ApiError;
use crate::kernel::http::Method;
use crate::kernel::kv::{KvStore, MemoryKv};
use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};
use crate::notify::{JobEvent, deliver_due_linked, enqueue};

const SLACK: &str = "https://hooks.slack.com/services/T0001/B0002/sEcReTtOkEn";

fn user(kv: &MemoryKv, name: &str, role: Role) -> Principal {
    let u = UserStore::new(kv)
        .create(name, "correct horse battery staple", role, 1)
        .unwrap();
    u.principal(AuthMethod::Session, None)
}

fn call(
    kv: &MemoryKv,
    http: &ScriptedHttp,
    p: &Principal,
    method: &str,
    rest: &str,
    body: Value,
) -> Result<(u16, Value), ApiError> {
    block_on(handle::<ScriptedHttp, _>(
        kv,
        || Ok(http),
        p,
        &ChannelRequest {
            method,
            rest,
            query: &[],
            body,
            public_url: Some("https://tuner.example.com/"),
            now_ms: 1_000,
        },
    ))
}

fn channel(kv: &MemoryKv, p: &Principal, kind: &str, url: &str) -> u64 {
    let body = json!({"channel_type": kind, "name": "ops", "webhook_url": url,
                      "smtp_port": 587, "smtp_use_tls": true});
    let (status, out) = call(kv, &ScriptedHttp::new(), p, "POST", "/channels", body).unwrap();
    assert_eq!(status, 201, "{out}");
    out["id"].as_u64().unwrap()
}

fn finish(kv: &MemoryKv, job: &str, owner: &str, status: &str) {
    let view = || {
        json!({"job_id": job, "status": status, "config_name": "flux <b>lora</b>",
               "cost_usd": 1.5, "cost_estimated": false})
    };
    let event = JobEvent {
        job_id: job,
        owner,
        status,
        view: &view,
    };
    enqueue(kv, &event, 0).unwrap();
}

#[test]
fn a_slack_channel_gets_slacks_message_format_with_name_status_cost_and_link() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let id = channel(&kv, &alice, "slack", SLACK);
    finish(&kv, "job-1", &alice.id, "completed");
    let http = ScriptedHttp::new();
    http.on(
        Method::Post,
        "/sEcReTtOkEn",
        vec![Reply::Json(200, json!("ok"))],
    );
    let public = Some("https://tuner.example.com");
    assert_eq!(block_on(deliver_due_linked(&kv, &http, public, 0)), (1, 0));
    let sent = http.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].url, SLACK);
    let msg: Value = serde_json::from_slice(&sent[0].body).unwrap();
    let text = msg["text"].as_str().unwrap();
    assert!(
        text.contains("Job Completed") && text.contains("$1.50"),
        "{text}"
    );
    assert!(
        text.contains("flux &lt;b&gt;lora&lt;/b&gt;"),
        "user text is escaped: {text}"
    );
    let blocks = msg["blocks"].to_string();
    assert!(
        blocks.contains("<https://tuner.example.com/#/job/job-1|Open the job in cloudtuner>"),
        "{blocks}"
    );
    assert!(blocks.contains("*Status:*\\ncompleted"), "{blocks}");
    let (_, history) = call(&kv, &http, &alice, "GET", "/history", Value::Null).unwrap();
    let entry = &history["entries"][0];
    assert_eq!(entry["channel_id"], id);
    assert_eq!(entry["event_type"], "job.completed");
    assert_eq!(entry["delivery_status"], "delivered");
    assert_eq!(entry["recipient"], "https://hooks.slack.com/***");
}

#[test]
fn job_statuses_map_to_simpletuners_event_names_and_channels_pick_theirs() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let body = json!({"channel_type": "slack", "name": "fails", "webhook_url": SLACK,
                      "events": ["job.failed", "approval.required"]});
    call(&kv, &ScriptedHttp::new(), &alice, "POST", "/channels", body).unwrap();
    for s in ["queued", "running", "completed", "failed", "uploading"] {
        finish(&kv, &format!("j-{s}"), &alice.id, s);
    }
    let http = ScriptedHttp::new();
    http.on(
        Method::Post,
        "/sEcReTtOkEn",
        vec![Reply::Json(200, json!("ok"))],
    );
    assert_eq!(block_on(deliver_due_linked(&kv, &http, None, 0)), (1, 0));
    let e = call(
        &kv,
        &http,
        &alice,
        "POST",
        "/channels",
        json!({"channel_type": "slack", "name": "x", "webhook_url": SLACK, "events": ["job.exploded"]}),
    )
    .unwrap_err();
    assert_eq!(e.status, 400);
}

#[test]
fn a_dead_channel_does_not_delay_a_live_one() {
    let kv = MemoryKv::default();
    let mallory = user(&kv, "mallory", Role::Researcher);
    let alice = user(&kv, "alice", Role::Researcher);
    for _ in 0..super::MAX_PER_OWNER {
        channel(&kv, &mallory, "slack", "https://dead.example/hook");
    }
    for i in 0..30 {
        finish(&kv, &format!("m{i}"), &mallory.id, "completed");
    }
    channel(&kv, &alice, "slack", SLACK);
    finish(&kv, "a1", &alice.id, "completed");
    let http = ScriptedHttp::new();
    http.on(Method::Post, "/hook", vec![Reply::Lost; 1000]);
    http.on(
        Method::Post,
        "/sEcReTtOkEn",
        vec![Reply::Json(200, json!("ok"))],
    );
    let (sent, failed) = block_on(deliver_due_linked(&kv, &http, None, 0));
    assert_eq!(sent, 1, "alice's message goes out in the first pass");
    assert_eq!(failed, super::MAX_PER_OWNER, "each dead channel tried once");
    assert_eq!(
        block_on(deliver_due_linked(&kv, &http, None, 1_000)),
        (0, 0)
    );
}

#[test]
fn the_url_is_masked_everywhere_but_the_record() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let id = channel(&kv, &alice, "slack", SLACK);
    let http = ScriptedHttp::new();
    http.on(
        Method::Post,
        "/sEcReTtOkEn",
        vec![Reply::Json(200, json!("ok"))],
    );
    let (_, got) = call(
        &kv,
        &http,
        &alice,
        "GET",
        &format!("/channels/{id}"),
        Value::Null,
    )
    .unwrap();
    assert_eq!(got["webhook_url"], "https://hooks.slack.com/***");
    let (_, out) = call(
        &kv,
        &http,
        &alice,
        "POST",
        &format!("/channels/{id}/test"),
        Value::Null,
    )
    .unwrap();
    assert_eq!(out["success"], true, "{out}");
    let (_, list) = call(&kv, &http, &alice, "GET", "/channels", Value::Null).unwrap();
    assert!(!list.to_string().contains("sEcReT"), "{list}");
    call(
        &kv,
        &http,
        &alice,
        "DELETE",
        &format!("/channels/{id}"),
        Value::Null,
    )
    .unwrap();
    for k in kv.keys() {
        let v = String::from_utf8_lossy(&kv.get(&k).unwrap().unwrap()).into_owned();
        assert!(!v.contains("sEcReT"), "{k} holds the URL: {v}");
    }
    let q = crate::kernel::event_log::EventQuery {
        kind: Some("notification.channel".into()),
        actor: None,
        target: None,
        since_ms: None,
        before: None,
        limit: 50,
    };
    let log = crate::kernel::event_log::list(&kv, &q, None)
        .unwrap()
        .to_string();
    for kind in ["created", "tested", "deleted"] {
        assert!(
            log.contains(&format!("notification.channel.{kind}")),
            "{log}"
        );
    }
}

#[test]
fn another_user_cannot_see_test_change_or_delete_my_channel() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let bob = user(&kv, "bob", Role::Lead);
    let id = channel(&kv, &alice, "slack", SLACK);
    let http = ScriptedHttp::new();
    for (method, rest) in [
        ("GET", format!("/channels/{id}")),
        ("POST", format!("/channels/{id}/test")),
        ("PATCH", format!("/channels/{id}")),
        ("DELETE", format!("/channels/{id}")),
    ] {
        let e = call(&kv, &http, &bob, method, &rest, json!({"name": "x"})).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (404, "channel_not_found"),
            "{method} {rest}"
        );
    }
    assert!(http.requests().is_empty(), "no test message went out");
    let (_, list) = call(&kv, &http, &bob, "GET", "/channels", Value::Null).unwrap();
    assert_eq!(list["total"], 0);
    let root = Principal::admin("root");
    let (_, list) = call(&kv, &http, &root, "GET", "/channels", Value::Null).unwrap();
    assert_eq!(list["total"], 1, "admins see every channel");
}

#[test]
fn private_targets_need_an_admins_allowance_as_subscriptions_do() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let http = ScriptedHttp::new();
    let local = json!({"channel_type": "webhook", "name": "x",
                       "webhook_url": "http://[::ffff:169.254.169.254]/latest"});
    let e = call(&kv, &http, &alice, "POST", "/channels", local.clone()).unwrap_err();
    assert_eq!((e.status, e.code), (400, "private_target"));
    let mut allowed = local.clone();
    allowed["allow_private"] = json!(true);
    let e = call(&kv, &http, &alice, "POST", "/channels", allowed.clone()).unwrap_err();
    assert_eq!(e.status, 403);
    let (status, _) = call(
        &kv,
        &http,
        &Principal::admin("root"),
        "POST",
        "/channels",
        allowed,
    )
    .unwrap();
    assert_eq!(status, 201);
    let email = json!({"channel_type": "email", "name": "x"});
    let e = call(&kv, &http, &alice, "POST", "/channels", email).unwrap_err();
    assert_eq!(e.code, "unsupported_channel_type");
}

#[test]
fn a_team_channel_is_managed_by_its_leads_and_hears_every_members_jobs() {
    let kv = MemoryKv::default();
    let lead = user(&kv, "lena", Role::Researcher);
    let member = user(&kv, "max", Role::Researcher);
    let org = OrgStore::new(&kv)
        .create(
            crate::auth::orgs::Profile {
                name: "Acme".into(),
                slug: "acme".into(),
                description: String::new(),
                settings: Default::default(),
                is_active: true,
            },
            1,
        )
        .unwrap();
    let teams = TeamStore::new(&kv);
    let team = teams
        .create(
            org.id,
            crate::auth::orgs::Profile {
                name: "Vision".into(),
                slug: "vision".into(),
                description: String::new(),
                settings: Default::default(),
                is_active: true,
            },
            1,
        )
        .unwrap();
    teams.add_member(team.id, &lead.id, "lead", 1).unwrap();
    teams.add_member(team.id, &member.id, "member", 1).unwrap();
    let http = ScriptedHttp::new();
    let body = json!({"channel_type": "webhook", "name": "team", "team_id": team.id,
                      "webhook_url": "https://hooks.example.com/team", "webhook_secret": "s3"});
    let e = call(&kv, &http, &member, "POST", "/channels", body.clone()).unwrap_err();
    assert_eq!(
        e.status, 403,
        "a member does not manage the team's channels"
    );
    let (status, out) = call(&kv, &http, &lead, "POST", "/channels", body).unwrap();
    assert_eq!(status, 201);
    assert!(
        out["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let outsider = user(&kv, "olga", Role::Researcher);
    let stranger = json!({"channel_type": "slack", "name": "t", "team_id": team.id,
                          "webhook_url": SLACK});
    let e = call(&kv, &http, &outsider, "POST", "/channels", stranger).unwrap_err();
    assert_eq!(e.status, 404, "a team one is not in is not named");

    finish(&kv, "mj", &member.id, "failed");
    http.on(Method::Post, "/team", vec![Reply::Json(204, json!(null))]);
    assert_eq!(
        block_on(deliver_due_linked(&kv, &http, None, 5_000)),
        (1, 0)
    );
    let req = &http.requests()[0];
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["event_type"], "job.failed");
    assert_eq!(body["job_id"], "mj");
    assert_eq!(req.header_value("x-simpletuner-event"), Some("job.failed"));
    assert!(
        req.header_value("webhook-signature")
            .unwrap()
            .starts_with("v1,")
    );
    let sig = req.header_value("x-simpletuner-signature").unwrap();
    assert_eq!(sig.len(), "sha256=".len() + 64, "{sig}");
    let (_, hist) = call(&kv, &http, &lead, "GET", "/history", Value::Null).unwrap();
    assert_eq!(hist["total"], 1);
    let (_, hist) = call(&kv, &http, &member, "GET", "/history", Value::Null).unwrap();
    assert_eq!(
        hist["total"], 0,
        "only those who manage a channel read its history"
    );
}

#[test]
fn a_410_disables_the_channel_and_a_failed_test_says_why() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let id = channel(&kv, &alice, "slack", SLACK);
    let http = ScriptedHttp::new();
    http.on(
        Method::Post,
        "/sEcReTtOkEn",
        vec![Reply::Json(500, json!("no"))],
    );
    let (_, out) = call(
        &kv,
        &http,
        &alice,
        "POST",
        &format!("/channels/{id}/test"),
        Value::Null,
    )
    .unwrap();
    assert_eq!(out["success"], false);
    assert_eq!(out["error"], "the receiver answered HTTP 500");
    finish(&kv, "j", &alice.id, "completed");
    let http = ScriptedHttp::new();
    http.on(
        Method::Post,
        "/sEcReTtOkEn",
        vec![Reply::Json(410, json!("gone"))],
    );
    assert_eq!(block_on(deliver_due_linked(&kv, &http, None, 0)), (0, 1));
    let (_, got) = call(
        &kv,
        &http,
        &alice,
        "GET",
        &format!("/channels/{id}"),
        Value::Null,
    )
    .unwrap();
    assert_eq!(got["is_enabled"], false);
}

#[test]
fn a_channel_is_tested_at_most_once_per_pause() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let id = channel(&kv, &alice, "slack", SLACK);
    let http = ScriptedHttp::new();
    http.on(
        Method::Post,
        "/sEcReTtOkEn",
        vec![Reply::Json(200, json!("ok"))],
    );
    let test = format!("/channels/{id}/test");
    call(&kv, &http, &alice, "POST", &test, Value::Null).unwrap();
    let e = call(&kv, &http, &alice, "POST", &test, Value::Null).unwrap_err();
    assert_eq!((e.status, e.code), (429, "test_too_soon"));
    assert_eq!(e.details["retry_after_secs"], 10);
    assert_eq!(http.requests().len(), 1, "the refused test sent nothing");
    let later = block_on(handle::<ScriptedHttp, _>(
        &kv,
        || Ok(&http),
        &alice,
        &ChannelRequest {
            method: "POST",
            rest: &test,
            query: &[],
            body: Value::Null,
            public_url: None,
            now_ms: 1_000 + super::api::TEST_EVERY_MS,
        },
    ));
    assert_eq!(later.unwrap().1["success"], true);
}

#[test]
fn approval_events_reach_only_the_channels_that_want_them() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    channel(&kv, &alice, "slack", "https://hooks.example.com/jobs-only");
    let body = json!({"channel_type": "slack", "name": "approvals", "webhook_url": SLACK,
                      "events": ["approval.required"]});
    call(&kv, &ScriptedHttp::new(), &alice, "POST", "/channels", body).unwrap();
    let data = json!({"job": {"job_id": "j9", "status": "pending", "config_name": "big"},
                      "reason": "cost exceeds $5"});
    super::send::announce(&kv, "approval.required", &alice.id, "apr-1", data, 0).unwrap();
    let e = super::send::announce(&kv, "job.completed", &alice.id, "x", json!({}), 0);
    assert_eq!(e.unwrap_err().status, 400);
    let http = ScriptedHttp::new();
    http.on(
        Method::Post,
        "/sEcReTtOkEn",
        vec![Reply::Json(200, json!("ok"))],
    );
    assert_eq!(block_on(deliver_due_linked(&kv, &http, None, 0)), (1, 0));
    let msg: Value = serde_json::from_slice(&http.requests()[0].body).unwrap();
    assert!(
        msg["text"].as_str().unwrap().contains("Approval Required"),
        "{msg}"
    );
    assert!(
        msg["blocks"].to_string().contains("cost exceeds $5"),
        "{msg}"
    );
}
