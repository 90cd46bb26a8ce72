//! Quotas (`/api/quotas`, SimpleTuner's routes; issue 27 item 2): admins set
//! them per user, team, organization or every user; a submit past a `block`
//! quota is refused with 429 naming it, a `warn` quota answers
//! `quota_warnings`; racing submits never take more slots than there are, on
//! the embedded store and on a Redis shared by two replicas.

mod common;

use cloudtuner_testhost::{App, TestResponse};
use common::{RedisServer, SUBMIT, TestApp, get, new_user, post_json};
use fake_replicate::{FakeReplicate, Outcome, Script};
use serde_json::{Value, json};

const BODY: &str = r#"{"config": {"--max_train_steps": 100}}"#;

fn body() -> Value {
    serde_json::from_str(BODY).unwrap()
}

/// Jobs that succeed a few fake seconds after they are created.
fn quick_jobs(fake: &FakeReplicate) {
    fake.set_default_script(Script::training(
        5,
        3,
        10,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
}

/// A signed-in user with `role`: (their id, the app as them).
async fn user(admin: &App, name: &str, role: &str) -> (String, App) {
    let (id, token) = new_user(admin, name, role).await;
    let app = admin
        .anonymous()
        .with_header("authorization", &format!("Bearer {token}"));
    (id, app)
}

async fn create_quota(admin: &App, body: Value) -> Value {
    let r = post_json(admin, "/api/quotas", &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

/// Lets the fake's scripts run out and reads the job (which ends it).
async fn finish(app: &App, fake: &FakeReplicate, id: &str) -> Value {
    fake.advance(60);
    let (s, v) = get(app, &format!("/api/cloud/jobs/{id}")).await;
    assert_eq!(s, 200, "{v}");
    v["job"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_at_one_running_job_is_refused_with_429_until_it_ends() {
    let t = TestApp::builder().start().await;
    quick_jobs(&t.fake);
    let admin = &t.app;
    let (alice_id, alice) = user(admin, "alice", "researcher").await;
    // Only admins set quotas.
    let r = post_json(
        &alice,
        "/api/quotas",
        &json!({"quota_type": "concurrent_jobs", "limit_value": 5}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(get(&alice, "/api/quotas").await.0, 403);
    let q = create_quota(
        admin,
        json!({"quota_type": "concurrent_jobs", "limit_value": 1, "user_id": alice_id}),
    )
    .await;
    assert_eq!(q["quota"]["scope"], "user");
    assert!(q["quota"]["user_id"].is_u64(), "the CLI's integer: {q}");

    let first = post_json(&alice, SUBMIT, &body()).await;
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.json()["quota_warnings"], json!([]));
    let id = first.json()["job_id"].as_str().unwrap().to_string();
    let refused = post_json(&alice, SUBMIT, &body()).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    let v = refused.json();
    assert_eq!(v["error"], "quota_exceeded");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("concurrent_jobs limit of 1 for user alice reached (current usage 1)"),
        "{message}"
    );
    assert_eq!(
        t.fake.prediction_ids().len(),
        1,
        "nothing reached Replicate"
    );
    // The admin is not limited by alice's quota.
    assert_eq!(post_json(admin, SUBMIT, &body()).await.status, 201);

    let (s, me) = get(&alice, "/api/quotas/me").await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["statuses"][0]["current"], 1.0);
    assert_eq!(me["statuses"][0]["is_exceeded"], true);
    assert_eq!(me["can_submit"], false);
    let (s, status) = get(&alice, "/api/quotas/status").await;
    assert_eq!(s, 200, "{status}");
    assert_eq!(status["quotas"][0]["current_usage"], 1.0);
    assert_eq!(status["quotas"][0]["limit_value"], 1.0);

    let job = finish(&alice, &t.fake, &id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let (_, me) = get(&alice, "/api/quotas/me").await;
    assert_eq!(me["statuses"][0]["current"], 0.0, "{me}");
    let again = post_json(&alice, SUBMIT, &body()).await;
    assert_eq!(again.status, 201, "{}", again.text());
    // An admin reads anyone's usage by the CLI's integer id.
    let number = q["quota"]["user_id"].as_u64().unwrap();
    let (s, theirs) = get(admin, &format!("/api/quotas/user/{number}")).await;
    assert_eq!(s, 200, "{theirs}");
    assert_eq!(theirs["statuses"][0]["current"], 1.0);
}

/// Sends `n` submits at once, submit `i` on `apps[i % len]`.
async fn race(apps: &[App], n: usize) -> Vec<TestResponse> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = apps[i % apps.len()].clone();
            tokio::spawn(async move { post_json(&app, SUBMIT, &body()).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Six racing submits at a `concurrent_jobs` limit of 2: two jobs, two
/// predictions, four 429s.
async fn racing_submits_take_only_the_free_slots(apps: &[App], fake: &FakeReplicate) {
    create_quota(
        &apps[0],
        json!({"quota_type": "concurrent_jobs", "limit_value": 2}),
    )
    .await;
    let answers = race(apps, 6).await;
    let ok = answers.iter().filter(|r| r.status == 201).count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        (ok, refused),
        (2, 4),
        "{:?}",
        answers.iter().map(TestResponse::text).collect::<Vec<_>>()
    );
    assert_eq!(fake.prediction_ids().len(), 2);
    let (_, me) = get(&apps[1 % apps.len()], "/api/quotas/me").await;
    assert_eq!(me["statuses"][0]["current"], 2.0, "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_racing_submits_at_a_limit_of_two_create_exactly_two_predictions() {
    let t = TestApp::builder().start().await;
    racing_submits_take_only_the_free_slots(std::slice::from_ref(&t.app), &t.fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_submits_over_two_replicas_on_redis_take_only_the_free_slots() {
    let redis = RedisServer::start();
    let fake = FakeReplicate::start().await;
    common::add_trainers(&fake);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(
            TestApp::builder()
                .redis(&redis, "quotas:")
                .start_against(&fake)
                .await,
        );
    }
    let apps: Vec<App> = replicas.iter().map(|r| r.app.clone()).collect();
    racing_submits_take_only_the_free_slots(&apps, &fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_quotas_warn_team_quotas_count_the_team_and_cost_estimate_projects() {
    let t = TestApp::builder().start().await;
    quick_jobs(&t.fake);
    let admin = &t.app;
    let (a_id, a) = user(admin, "ann", "researcher").await;
    let (b_id, b) = user(admin, "ben", "researcher").await;
    let r = post_json(admin, "/api/orgs", &json!({"name": "Acme", "slug": "acme"})).await;
    let org = r.json()["organization"]["id"].as_u64().unwrap();
    let r = post_json(
        admin,
        &format!("/api/orgs/{org}/teams"),
        &json!({"name": "Vision", "slug": "vision"}),
    )
    .await;
    let team = r.json()["team"]["id"].as_u64().unwrap();
    for u in [&a_id, &b_id] {
        let r = post_json(
            admin,
            &format!("/api/orgs/{org}/teams/{team}/members"),
            &json!({"user_id": u, "role": "member"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The team may run one job at a time; every user is warned past one a day.
    let r = post_json(
        admin,
        &format!("/api/orgs/{org}/teams/{team}/quotas"),
        &json!({"quota_type": "concurrent_jobs", "limit_value": 1, "action": "block"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["success"], true);
    let r = post_json(
        &a,
        &format!("/api/orgs/{org}/teams/{team}/quotas"),
        &json!({"quota_type": "concurrent_jobs", "limit_value": 9}),
    )
    .await;
    assert_eq!(r.status, 403, "members do not set their team's quotas");
    let (s, v) = get(&a, &format!("/api/orgs/{org}/teams/{team}/quotas")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["quotas"][0]["quota_type"], "concurrent_jobs");
    create_quota(
        admin,
        json!({"quota_type": "jobs_per_day", "limit_value": 1, "action": "warn"}),
    )
    .await;

    let first = post_json(&a, SUBMIT, &body()).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let id = first.json()["job_id"].as_str().unwrap().to_string();
    let r = post_json(&b, SUBMIT, &body()).await;
    assert_eq!(r.status, 429, "ben's team is at its limit: {}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains(&format!("concurrent_jobs limit of 1 for team {team}")),
        "{}",
        r.text()
    );
    finish(&a, &t.fake, &id).await;
    let second = post_json(&a, SUBMIT, &body()).await;
    assert_eq!(second.status, 201, "{}", second.text());
    let warnings = second.json()["quota_warnings"].clone();
    assert!(
        warnings[0]
            .as_str()
            .is_some_and(|w| w.contains("jobs_per_day limit of 1")),
        "{warnings}"
    );

    // A job is charged only to a team of the submitter's.
    let mut other_team = body();
    other_team["team_id"] = json!(team + 100);
    let r = post_json(&a, SUBMIT, &other_team).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "not_a_team_member");

    // What one more job would do: a second running job for the team.
    let r = a
        .request(
            "POST",
            "/api/quotas/cost-estimate?estimated_cost=2.5",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let est = r.json();
    let concurrent = est["impacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["quota_type"] == "concurrent_jobs")
        .unwrap_or_else(|| panic!("{est}"));
    assert_eq!(
        (
            concurrent["projected"].as_f64(),
            concurrent["projected_percent"].as_f64()
        ),
        (Some(2.0), Some(200.0))
    );
    assert_eq!(est["would_exceed"], true);
    let (s, me) = get(&a, "/api/quotas/me").await;
    assert_eq!(s, 200);
    assert_eq!(me["team_ids"], json!([team]), "{me}");
}
