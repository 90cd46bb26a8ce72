use serde_json::{Value, json};

use super::api::{OrgRequest, handle};
use super::numbers::UserNumbers;
use super::teams::TeamStore;
use super::{OrgStore, Profile};
use crate::auth::principal::{AuthMethod, Principal, Role};
use crate::auth::users::UserStore;
use crate::kernel::error::ApiError;
use crate::kernel::kv::MemoryKv;

const PW: &str = "correct horse battery staple";

fn profile(slug: &str) -> Profile {
    Profile {
        name: slug.to_uppercase(),
        slug: slug.into(),
        description: String::new(),
        settings: Default::default(),
        is_active: true,
    }
}

fn user(kv: &MemoryKv, name: &str, role: Role) -> Principal {
    let u = UserStore::new(kv).create(name, PW, role, 1).unwrap();
    u.principal(AuthMethod::Session, None)
}

fn call(
    kv: &MemoryKv,
    p: &Principal,
    method: &str,
    rest: &str,
    body: Value,
) -> Result<(u16, Value), ApiError> {
    handle(
        kv,
        p,
        &OrgRequest {
            method,
            rest,
            include_inactive: false,
            body,
            now_ms: 1_000,
        },
    )
}

#[test]
fn integer_ids_and_unique_slugs() {
    let kv = MemoryKv::default();
    let orgs = OrgStore::new(&kv);
    let a = orgs.create(profile("acme"), 1).unwrap();
    let b = orgs.create(profile("beta"), 1).unwrap();
    assert_eq!((a.id, b.id), (1, 2));
    assert_eq!(orgs.create(profile("acme"), 1).unwrap_err().status, 409);
    let teams = TeamStore::new(&kv);
    let t = teams.create(a.id, profile("ml"), 1).unwrap();
    assert_eq!(t.org_id, a.id);
    assert_eq!(
        teams.create(a.id, profile("ml"), 1).unwrap_err().status,
        409
    );
    teams.create(b.id, profile("ml"), 1).unwrap();
    assert_eq!(orgs.load(a.id).unwrap().teams, vec![t.id]);
}

#[test]
fn a_user_is_in_one_org_and_several_teams() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let orgs = OrgStore::new(&kv);
    let (a, b) = (
        orgs.create(profile("acme"), 1).unwrap(),
        orgs.create(profile("beta"), 1).unwrap(),
    );
    assert!(orgs.add_member(a.id, &alice.id).unwrap());
    assert!(!orgs.add_member(a.id, &alice.id).unwrap(), "idempotent");
    let e = orgs.add_member(b.id, &alice.id).unwrap_err();
    assert_eq!((e.status, e.code), (409, "already_in_org"));
    let teams = TeamStore::new(&kv);
    let (t1, t2) = (
        teams.create(a.id, profile("one"), 1).unwrap(),
        teams.create(a.id, profile("two"), 1).unwrap(),
    );
    assert!(teams.add_member(t1.id, &alice.id, "member", 1).unwrap());
    assert!(teams.add_member(t2.id, &alice.id, "lead", 1).unwrap());
    assert_eq!(teams.teams_of(&alice.id).unwrap(), vec![t1.id, t2.id]);
    // Leaving the organization leaves its teams, and frees the user for another.
    assert!(orgs.remove_member(a.id, &alice.id).unwrap());
    assert!(teams.teams_of(&alice.id).unwrap().is_empty());
    assert!(teams.load(a.id, t1.id).unwrap().members.is_empty());
    assert!(orgs.add_member(b.id, &alice.id).unwrap());
}

#[test]
fn deleting_an_org_deletes_its_teams_and_frees_slug_and_members() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let orgs = OrgStore::new(&kv);
    let teams = TeamStore::new(&kv);
    let a = orgs.create(profile("acme"), 1).unwrap();
    let t = teams.create(a.id, profile("ml"), 1).unwrap();
    orgs.add_member(a.id, &alice.id).unwrap();
    teams.add_member(t.id, &alice.id, "member", 1).unwrap();
    orgs.delete(a.id).unwrap();
    assert!(teams.get(t.id).unwrap().is_none());
    assert!(orgs.list().unwrap().is_empty());
    assert_eq!(orgs.org_of(&alice.id).unwrap(), None);
    assert!(teams.teams_of(&alice.id).unwrap().is_empty());
    let again = orgs.create(profile("acme"), 1).unwrap();
    assert_ne!(again.id, a.id, "ids are never reused");
}

#[test]
fn users_get_stable_numbers_and_resolve_by_number_id_or_name() {
    let kv = MemoryKv::default();
    let alice = user(&kv, "alice", Role::Researcher);
    let bob = user(&kv, "bob", Role::Researcher);
    let numbers = UserNumbers::new(&kv);
    let (na, nb) = (
        numbers.number(&alice.id).unwrap(),
        numbers.number(&bob.id).unwrap(),
    );
    assert_ne!(na, nb);
    assert_eq!(numbers.number(&alice.id).unwrap(), na);
    assert_eq!(numbers.resolve(&na.to_string()).unwrap().id, alice.id);
    assert_eq!(numbers.resolve(&bob.id).unwrap().id, bob.id);
    assert_eq!(numbers.resolve("alice").unwrap().id, alice.id);
    assert_eq!(numbers.resolve("999").unwrap_err().status, 404);
}

#[test]
fn admins_manage_and_members_see_only_their_own_org() {
    let kv = MemoryKv::default();
    let admin = user(&kv, "root", Role::Admin);
    let alice = user(&kv, "alice", Role::Researcher);
    let (s, v) = call(
        &kv,
        &admin,
        "POST",
        "",
        json!({"name": "Acme", "slug": "acme"}),
    )
    .unwrap();
    assert_eq!(s, 201);
    let acme = v["organization"]["id"].as_u64().unwrap();
    call(&kv, &admin, "POST", "", json!({"name": "B", "slug": "b"})).unwrap();
    // Alice is in no org: she sees none, and an org is 404 to her.
    let (_, v) = call(&kv, &alice, "GET", "", Value::Null).unwrap();
    assert_eq!(v["organizations"], json!([]));
    let e = call(&kv, &alice, "GET", &format!("/{acme}"), Value::Null).unwrap_err();
    assert_eq!(e.status, 404);
    // She may not create or add herself.
    let e = call(&kv, &alice, "POST", "", json!({"name": "X", "slug": "x"})).unwrap_err();
    assert_eq!((e.status, e.code), (403, "permission_denied"));
    let path = format!("/{acme}/members/alice");
    assert_eq!(
        call(&kv, &alice, "POST", &path, Value::Null)
            .unwrap_err()
            .status,
        403
    );
    call(&kv, &admin, "POST", &path, Value::Null).unwrap();
    let (_, v) = call(&kv, &alice, "GET", "", Value::Null).unwrap();
    let listed = v["organizations"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["member_count"], 1);
    let (_, v) = call(&kv, &alice, "GET", &format!("/{acme}/members"), Value::Null).unwrap();
    assert_eq!(v["members"][0]["username"], "alice");
    assert!(v["members"][0]["id"].is_u64(), "integer ids for the CLI");
    assert_eq!(
        call(
            &kv,
            &alice,
            "PATCH",
            &format!("/{acme}"),
            json!({"name": "Z"})
        )
        .unwrap_err()
        .status,
        403
    );
}

#[test]
fn team_routes_add_members_by_integer_id_and_refuse_bad_input() {
    let kv = MemoryKv::default();
    let admin = user(&kv, "root", Role::Admin);
    let alice = user(&kv, "alice", Role::Researcher);
    let n = UserNumbers::new(&kv).number(&alice.id).unwrap();
    call(
        &kv,
        &admin,
        "POST",
        "",
        json!({"name": "Acme", "slug": "acme"}),
    )
    .unwrap();
    let (_, v) = call(
        &kv,
        &admin,
        "POST",
        "/1/teams",
        json!({"name": "ML", "slug": "ml"}),
    )
    .unwrap();
    let team = v["team"]["id"].as_u64().unwrap();
    let members = format!("/1/teams/{team}/members");
    let (s, v) = call(
        &kv,
        &admin,
        "POST",
        &members,
        json!({"user_id": n, "role": "lead"}),
    )
    .unwrap();
    assert_eq!((s, v["success"].clone()), (200, json!(true)));
    // Joining a team joined its organization.
    assert_eq!(OrgStore::new(&kv).org_of(&alice.id).unwrap(), Some(1));
    let e = call(&kv, &admin, "POST", &members, json!({"user_id": n})).unwrap_err();
    assert_eq!(e.status, 409);
    let (_, v) = call(&kv, &alice, "GET", &members, Value::Null).unwrap();
    assert_eq!(v["members"][0]["user_id"], n);
    assert_eq!(v["members"][0]["role"], "lead");
    for (body, code) in [
        (json!({"user_id": n, "role": "boss"}), "invalid_role"),
        (json!({"role": "member"}), "invalid_request"),
        (json!({"user_id": n, "extra": 1}), "invalid_request"),
    ] {
        let e = call(&kv, &admin, "POST", &members, body).unwrap_err();
        assert_eq!((e.status, e.code), (400, code));
    }
    let e = call(
        &kv,
        &admin,
        "POST",
        "",
        json!({"name": "A", "slug": "Not Ok"}),
    )
    .unwrap_err();
    assert_eq!((e.status, e.code), (400, "invalid_slug"));
    let e = call(&kv, &admin, "GET", "/abc", Value::Null).unwrap_err();
    assert_eq!((e.status, e.code), (400, "invalid_id"));
    // A team reached through another organization does not exist.
    call(&kv, &admin, "POST", "", json!({"name": "B", "slug": "b"})).unwrap();
    let e = call(&kv, &admin, "GET", &format!("/2/teams/{team}"), Value::Null).unwrap_err();
    assert_eq!(e.status, 404);
    let path = format!("{members}/{n}");
    call(&kv, &admin, "DELETE", &path, Value::Null).unwrap();
    assert_eq!(
        call(&kv, &admin, "DELETE", &path, Value::Null)
            .unwrap_err()
            .status,
        404
    );
}

#[test]
fn every_change_is_in_the_event_log() {
    let kv = MemoryKv::default();
    let admin = user(&kv, "root", Role::Admin);
    user(&kv, "alice", Role::Researcher);
    call(
        &kv,
        &admin,
        "POST",
        "",
        json!({"name": "Acme", "slug": "acme"}),
    )
    .unwrap();
    call(&kv, &admin, "PATCH", "/1", json!({"is_active": false})).unwrap();
    call(
        &kv,
        &admin,
        "POST",
        "/1/teams",
        json!({"name": "ML", "slug": "ml"}),
    )
    .unwrap();
    call(
        &kv,
        &admin,
        "POST",
        "/1/teams/1/members",
        json!({"user_id": "alice"}),
    )
    .unwrap();
    call(
        &kv,
        &admin,
        "DELETE",
        "/1/teams/1/members/alice",
        Value::Null,
    )
    .unwrap();
    call(&kv, &admin, "DELETE", "/1/members/alice", Value::Null).unwrap();
    call(&kv, &admin, "DELETE", "/1/teams/1", Value::Null).unwrap();
    call(&kv, &admin, "DELETE", "/1", Value::Null).unwrap();
    let raw = format!("{:?}", kv.keys());
    let kinds: Vec<String> = kv
        .keys()
        .iter()
        .filter(|k| k.starts_with("ev:0"))
        .filter_map(|k| crate::kernel::kv::get_json::<Value>(&kv, k).unwrap())
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    for kind in [
        "org.created",
        "org.updated",
        "team.created",
        "org.member_added",
        "team.member_added",
        "team.member_removed",
        "org.member_removed",
        "team.deleted",
        "org.deleted",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} in {kinds:?} ({raw})"
        );
    }
}
