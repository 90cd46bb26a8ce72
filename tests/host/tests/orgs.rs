//! Organizations and teams (`/api/orgs`, SimpleTuner's routes; issue 27 item 1):
//! admins create them and manage members, everyone sees only their own
//! organization, and racing member adds all land, on the embedded store and on
//! a Redis shared by two replicas.

mod common;

use cloudtuner_testhost::App;
use common::{PASSWORD, RedisServer, TestApp, get, new_user, post_json};
use serde_json::{Value, json};

/// A user made by the admin (not signed in): their id.
async fn make_user(app: &App, name: &str) -> String {
    let r = post_json(
        app,
        "/api/cloud/auth/users",
        &json!({"username": name, "password": PASSWORD, "role": "researcher"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["user"]["id"].as_str().unwrap().to_string()
}

async fn send(app: &App, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = app
        .request(
            method,
            path,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    (r.status, r.json())
}

/// Creates an organization and a team in it as `admin`: (org id, team id).
async fn org_and_team(admin: &App) -> (u64, u64) {
    let (s, v) = send(
        admin,
        "POST",
        "/api/orgs",
        &json!({"name": "Acme", "slug": "acme"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let org = v["organization"]["id"].as_u64().expect("integer org id");
    let (s, v) = send(
        admin,
        "POST",
        &format!("/api/orgs/{org}/teams"),
        &json!({"name": "Vision", "slug": "vision"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    (org, v["team"]["id"].as_u64().expect("integer team id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_build_orgs_and_teams_and_members_see_only_their_own() {
    let t = TestApp::builder().start().await;
    let admin = &t.app;
    let (org, team) = org_and_team(admin).await;
    let (s, other) = send(
        admin,
        "POST",
        "/api/orgs",
        &json!({"name": "Other", "slug": "other"}),
    )
    .await;
    assert_eq!(s, 201, "{other}");
    let (s, v) = send(
        admin,
        "POST",
        "/api/orgs",
        &json!({"name": "Dup", "slug": "acme"}),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("slug_taken")), "{v}");

    let (_, alice_token) = new_user(admin, "alice", "researcher").await;
    let (_, bob_token) = new_user(admin, "bob", "researcher").await;
    let alice = admin.with_header("authorization", &format!("Bearer {alice_token}"));
    let bob = admin.with_header("authorization", &format!("Bearer {bob_token}"));

    // The CLI's integer user ids come from the admin's directory.
    let (s, dir) = get(admin, "/api/orgs/users").await;
    assert_eq!(s, 200, "{dir}");
    let number = |name: &str| {
        dir["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap()["id"]
            .as_u64()
            .expect("integer user id")
    };
    let (s, v) = send(
        admin,
        "POST",
        &format!("/api/orgs/{org}/teams/{team}/members"),
        &json!({"user_id": number("alice"), "role": "lead"}),
    )
    .await;
    assert_eq!((s, &v["success"]), (200, &json!(true)), "{v}");

    // Alice (in Acme through her team) sees Acme only, its members and teams.
    let (s, v) = get(&alice, "/api/orgs").await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);
    assert_eq!(v["organizations"][0]["member_count"], 1);
    assert_eq!(v["organizations"][0]["team_count"], 1);
    let (s, v) = get(&alice, &format!("/api/orgs/{org}/teams/{team}/members")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["members"][0]["username"], "alice");
    assert_eq!(v["members"][0]["role"], "lead");
    let other_id = other["organization"]["id"].as_u64().unwrap();
    let (s, v) = get(&alice, &format!("/api/orgs/{other_id}")).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (404, Some("org_not_found")),
        "{v}"
    );

    // Bob is in no organization: he sees none, and Acme is 404 to him.
    let (s, v) = get(&bob, "/api/orgs").await;
    assert_eq!((s, &v["organizations"]), (200, &json!([])), "{v}");
    assert_eq!(get(&bob, &format!("/api/orgs/{org}")).await.0, 404);
    assert_eq!(get(&bob, &format!("/api/orgs/{org}/members")).await.0, 404);

    // Neither may change anything: 403 naming SimpleTuner's permission.
    let (s, v) = send(
        &bob,
        "POST",
        "/api/orgs",
        &json!({"name": "B", "slug": "b"}),
    )
    .await;
    assert_eq!(
        (s, v["details"]["required_permission"].as_str()),
        (403, Some("org.create")),
        "{v}"
    );
    let (s, v) = send(
        &alice,
        "PATCH",
        &format!("/api/orgs/{org}"),
        &json!({"name": "Mine"}),
    )
    .await;
    assert_eq!(
        (s, v["details"]["required_permission"].as_str()),
        (403, Some("org.edit")),
        "{v}"
    );
    let path = format!("/api/orgs/{org}/members/{}", number("bob"));
    let (s, _) = send(&alice, "POST", &path, &Value::Null).await;
    assert_eq!(s, 403);
    assert_eq!(get(&bob, "/api/orgs/users").await.0, 403);

    // Bad input: the JSON error shape.
    let (s, v) = send(
        admin,
        "POST",
        "/api/orgs",
        &json!({"name": "X", "slug": "No Spaces"}),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_slug")), "{v}");
    assert!(v["message"].is_string() && v["detail"].is_string(), "{v}");
    let (s, v) = get(admin, "/api/orgs/acme").await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_id")), "{v}");

    // A user in Acme cannot be added to another organization; removed, they can.
    let (s, v) = send(
        admin,
        "POST",
        &format!("/api/orgs/{other_id}/members/alice"),
        &Value::Null,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("already_in_org")),
        "{v}"
    );
    let (s, v) = send(
        admin,
        "DELETE",
        &format!("/api/orgs/{org}/members/alice"),
        &Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = get(admin, &format!("/api/orgs/{org}/teams/{team}/members")).await;
    assert_eq!(v["members"], json!([]), "leaving the org left its teams");
    assert_eq!(get(&alice, &format!("/api/orgs/{org}")).await.0, 404);
    let (s, _) = send(
        admin,
        "POST",
        &format!("/api/orgs/{other_id}/members/alice"),
        &Value::Null,
    )
    .await;
    assert_eq!(s, 200);

    // Deleting an organization deletes its teams.
    let (s, _) = send(admin, "DELETE", &format!("/api/orgs/{org}"), &Value::Null).await;
    assert_eq!(s, 200);
    assert_eq!(
        get(admin, &format!("/api/orgs/{org}/teams/{team}")).await.0,
        404
    );
}

/// Adds `names` to the team at once, request `i` on `apps[i % len]`, and
/// checks that every one of them is a member afterwards.
async fn racing_adds_keep_every_member(apps: &[App], names: &[String]) {
    let admin = &apps[0];
    let (org, team) = org_and_team(admin).await;
    for name in names {
        make_user(admin, name).await;
    }
    let tasks: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let app = apps[i % apps.len()].clone();
            let path = format!("/api/orgs/{org}/teams/{team}/members");
            let body = json!({"user_id": name});
            tokio::spawn(async move { send(&app, "POST", &path, &body).await })
        })
        .collect();
    for task in tasks {
        let (s, v) = task.await.unwrap();
        assert_eq!(s, 200, "{v}");
    }
    let (_, v) = get(admin, &format!("/api/orgs/{org}/teams/{team}/members")).await;
    let mut members: Vec<String> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_string())
        .collect();
    members.sort();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(members, want, "no add was lost");
    let (_, v) = get(admin, &format!("/api/orgs/{org}/members")).await;
    assert_eq!(v["members"].as_array().unwrap().len(), names.len(), "{v}");
    let ids: std::collections::BTreeSet<u64> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        names.len(),
        "every user has their own integer id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_team_adds_keep_every_member() {
    let t = TestApp::builder().start().await;
    let names: Vec<String> = (0..8).map(|i| format!("racer{i}")).collect();
    racing_adds_keep_every_member(std::slice::from_ref(&t.app), &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_team_adds_over_two_replicas_on_redis_keep_every_member() {
    let redis = RedisServer::start();
    let fake = fake_replicate::FakeReplicate::start().await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(
            TestApp::builder()
                .redis(&redis, "orgs:")
                .start_against(&fake)
                .await,
        );
    }
    let apps: Vec<App> = replicas.iter().map(|r| r.app.clone()).collect();
    let names: Vec<String> = (0..8).map(|i| format!("replica{i}")).collect();
    racing_adds_keep_every_member(&apps, &names).await;
}
