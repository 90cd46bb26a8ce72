use super::*;
use serde_json::json;

use crate::auth::principal::Role;
use crate::kernel::kv::MemoryKv;

fn setup() -> (MemoryKv, Principal) {
    let kv = MemoryKv::default();
    let u = UserStore::new(&kv)
        .create("alice", "a long enough password", Role::Researcher, 0)
        .unwrap();
    let p = u.principal(AuthMethod::Session, None);
    (kv, p)
}

#[test]
fn keys_are_shown_once_stored_hashed_and_scoped() {
    let (kv, alice) = setup();
    let (key, rec) = create(
        &kv,
        &alice,
        &json!({"name": "ci", "scoped_permissions": ["job.submit", "job.view.own"]}),
        0,
    )
    .unwrap();
    assert!(key.starts_with("stk_") && key.len() == 44);
    assert!(!rec.to_api(0).to_string().contains(&key));
    assert!(!rec.to_api(0).to_string().contains(&rec.key_hash));
    for k in kv.keys() {
        assert!(!String::from_utf8_lossy(&kv.get(&k).unwrap().unwrap()).contains(&key));
    }
    let p = authenticate(&kv, &key, 1).unwrap();
    assert!(
        p.has(Permission::JobSubmit)
            && !p.can(Action::JobCancel, &alice.id)
            && !p.has(Permission::ApiKeysOwn)
    );
    // The scoped key cannot mint keys.
    assert_eq!(
        create(&kv, &p, &json!({"name": "x"}), 1)
            .unwrap_err()
            .status,
        403
    );
    assert_eq!(authenticate(&kv, "stk_nope", 1).unwrap_err().status, 401);
}

#[test]
fn a_key_makes_only_keys_within_its_scopes_and_life_and_they_die_with_it() {
    let kv = MemoryKv::default();
    let admin = UserStore::new(&kv)
        .create("root", "a long enough password", Role::Admin, 0)
        .unwrap()
        .principal(AuthMethod::Session, None);
    let (parent_key, parent) = create(
        &kv,
        &admin,
        &json!({"name": "p", "expires_days": 2, "scoped_permissions": ["api.keys.own"]}),
        0,
    )
    .unwrap();
    let via_key = authenticate(&kv, &parent_key, 1).unwrap();
    // No scopes asked: the maker's. Asked beyond: refused.
    let (child_key, child) =
        create(&kv, &via_key, &json!({"name": "c", "expires_days": 365}), 1).unwrap();
    assert_eq!(child.scoped_permissions, Some(vec!["api.keys.own".into()]));
    assert_eq!(child.expires_ms, parent.expires_ms);
    assert_eq!(child.parent_id.as_deref(), Some(parent.id.as_str()));
    let child_p = authenticate(&kv, &child_key, 2).unwrap();
    assert!(!child_p.has(Permission::AdminUsers));
    let err = create(
        &kv,
        &via_key,
        &json!({"name": "x", "scoped_permissions": ["admin.users"]}),
        2,
    )
    .unwrap_err();
    assert_eq!(err.status, 403);
    let (grandchild_key, _) = create(&kv, &child_p, &json!({"name": "g"}), 3).unwrap();
    // Revoking the first revokes what it made, and what those made.
    revoke(&kv, &admin, &parent.id).unwrap();
    for k in [&child_key, &grandchild_key] {
        assert_eq!(authenticate(&kv, k, 4).unwrap_err().status, 401);
    }
}

#[test]
fn a_user_holds_a_bounded_number_of_live_keys() {
    let (kv, alice) = setup();
    for i in 0..MAX_ACTIVE_KEYS {
        create(&kv, &alice, &json!({"name": format!("k{i}")}), 0).unwrap();
    }
    let err = create(&kv, &alice, &json!({"name": "one more"}), 0).unwrap_err();
    assert_eq!((err.status, err.code), (409, "too_many_api_keys"));
    let first = list_for(&kv, &alice.id).unwrap()[0].id.clone();
    revoke(&kv, &alice, &first).unwrap();
    assert!(create(&kv, &alice, &json!({"name": "one more"}), 0).is_ok());
    assert_eq!(
        revoke_all_for(&kv, &alice.id, &alice.id, 1).unwrap(),
        MAX_ACTIVE_KEYS
    );
}

#[test]
fn scopes_must_be_held_and_keys_expire_and_revoke() {
    let (kv, alice) = setup();
    let err = create(
        &kv,
        &alice,
        &json!({"name": "x", "scoped_permissions": ["job.view.all"]}),
        0,
    )
    .unwrap_err();
    assert_eq!((err.status, err.code), (403, "scope_exceeds_permissions"));
    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "expires_days": 0}),
        json!({"name": "x", "expires_days": 366}),
        json!({"name": "x", "scoped_permissions": ["fly"]}),
        json!({"name": "x", "extra": 1}),
    ] {
        assert_eq!(
            create(&kv, &alice, &bad, 0).unwrap_err().status,
            400,
            "{bad}"
        );
    }
    let (key, rec) = create(&kv, &alice, &json!({"name": "short", "expires_days": 1}), 0).unwrap();
    assert_eq!(
        authenticate(&kv, &key, DAY_MS).unwrap_err().message,
        "the API key is expired"
    );
    let (key2, rec2) = create(&kv, &alice, &json!({"name": "other"}), 0).unwrap();
    let bob = Principal {
        id: "bob".into(),
        ..alice.clone()
    };
    assert_eq!(revoke(&kv, &bob, &rec2.id).unwrap_err().status, 404);
    revoke(&kv, &alice, &rec2.id).unwrap();
    assert_eq!(
        authenticate(&kv, &key2, 1).unwrap_err().message,
        "the API key is revoked"
    );
    assert_eq!(list_for(&kv, &alice.id).unwrap().len(), 2);
    assert_eq!(rec.user_id, alice.id);
}
