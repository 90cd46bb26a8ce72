//! The chain, its retention, and counted noise.

use super::*;
use crate::kernel::kv::MemoryKv;

fn ev<'a>(kind: &'a str, actor: &'a str, owner: Option<&'a str>) -> NewEvent<'a> {
    NewEvent {
        kind,
        actor,
        target: Some("t1"),
        owner,
        detail: json!({}),
    }
}

#[test]
fn entries_chain_list_newest_first_and_verify() {
    let kv = MemoryKv::default();
    for i in 0..5 {
        record(&kv, ev("job.submitted", "alice", Some("alice")), 1_000 + i);
    }
    record(&kv, ev("auth.login", "bob", None), 2_000);
    let page = list(
        &kv,
        &EventQuery {
            limit: 4,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [6, 5, 4, 3]);
    assert_eq!(page["next_before"], 3);
    let rest = list(
        &kv,
        &EventQuery {
            limit: 4,
            before: Some(3),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    assert!(rest["next_before"].is_null());
    // Alice sees her own events, not Bob's sign-in.
    let mine = list(
        &kv,
        &EventQuery {
            limit: 50,
            ..Default::default()
        },
        Some("alice"),
    )
    .unwrap();
    assert_eq!(mine["events"].as_array().unwrap().len(), 5);
    let kinds = list(
        &kv,
        &EventQuery {
            limit: 50,
            kind: Some("auth".into()),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(kinds["events"].as_array().unwrap().len(), 1);
    assert_eq!(verify(&kv).unwrap()["valid"], true);
}

#[test]
fn a_changed_entry_breaks_the_chain_where_it_was_changed() {
    let kv = MemoryKv::default();
    for i in 0..4 {
        record(&kv, ev("job.cancelled", "bob", Some("bob")), i);
    }
    let key = entry_key(2);
    let mut e: Entry = kv::get_json(&kv, &key).unwrap().unwrap();
    e.actor = "mallory".into();
    kv::set_json(&kv, &key, &e).unwrap();
    let v = verify(&kv).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["seq"], 2, "{v}");
    // Rewriting its hash too is caught by the next entry.
    e.hash = e.digest();
    kv::set_json(&kv, &key, &e).unwrap();
    let v = verify(&kv).unwrap();
    assert_eq!(v["problems"][0]["seq"], 3, "{v}");
}

#[test]
fn only_the_newest_entries_are_kept() {
    let kv = MemoryKv::default();
    for i in 0..KEPT + 10 {
        record(&kv, ev("job.submitted", "a", None), i);
    }
    assert!(kv.get(&entry_key(10)).unwrap().is_none());
    assert!(kv.get(&entry_key(11)).unwrap().is_some());
    let v = verify(&kv).unwrap();
    assert_eq!(
        (v["valid"].as_bool(), v["checked"].as_u64()),
        (Some(true), Some(KEPT))
    );
    assert_eq!(
        (v["complete"].as_bool(), v["dropped"].as_u64()),
        (Some(false), Some(10))
    );
    assert!(v["verified"].as_str().unwrap().contains("#11"), "{v}");
}

#[test]
fn anonymous_noise_is_counted_and_never_evicts_the_chain() {
    let kv = MemoryKv::default();
    record(&kv, ev("job.submitted", "alice", Some("alice")), 1_000);
    let huge = "x".repeat(100_000);
    for i in 0..(KEPT + 50) {
        record(
            &kv,
            NewEvent {
                kind: "webhook.rejected",
                actor: ANONYMOUS,
                target: Some(&huge),
                owner: None,
                detail: json!({"reason": huge, "n": i}),
            },
            2_000 + i,
        );
    }
    let all = list(
        &kv,
        &EventQuery {
            limit: 50,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(all["events"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["events"][0]["type"], "job.submitted");
    let agg = &all["aggregates"][0];
    assert_eq!(
        (agg["type"].as_str(), agg["count"].as_u64()),
        (Some("webhook.rejected"), Some(KEPT + 50))
    );
    assert_eq!(agg["samples"].as_array().unwrap().len(), 3);
    assert!(
        agg.to_string().len() < 4 * (MAX_FIELD_CHARS + 100) + 500,
        "bounded"
    );
    let v = verify(&kv).unwrap();
    assert_eq!(
        (
            v["valid"].as_bool(),
            v["complete"].as_bool(),
            v["checked"].as_u64()
        ),
        (Some(true), Some(true), Some(1))
    );
    // Alice sees her own event and no noise.
    let mine = list(
        &kv,
        &EventQuery {
            limit: 50,
            ..Default::default()
        },
        Some("alice"),
    )
    .unwrap();
    assert_eq!(mine["aggregates"].as_array().unwrap().len(), 0);
}

#[test]
fn every_stored_field_is_bounded() {
    let kv = MemoryKv::default();
    let long = "é".repeat(10_000);
    record(
        &kv,
        NewEvent {
            kind: "auth.login",
            actor: &long,
            target: Some(&long),
            owner: Some(&long),
            detail: json!({"username": long, "list": vec![1; 1000]}),
        },
        1,
    );
    let e: Entry = kv::get_json(&kv, &entry_key(1)).unwrap().unwrap();
    assert_eq!(e.actor.chars().count(), MAX_FIELD_CHARS + 1);
    assert!(serde_json::to_string(&e).unwrap().len() < 4 * MAX_DETAIL_BYTES);
    assert_eq!(verify(&kv).unwrap()["valid"], true);
}
