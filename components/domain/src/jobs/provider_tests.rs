//! The lifecycle against a scripted Replicate: refresh on read, cancel, the
//! signed webhook receiver and the sync's adoption of a prediction whose
//! create answer was lost — the failure branches each leaves a job in.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::principal::Principal;
use crate::jobs::lifecycle::{cancel, refresh};
use crate::jobs::record::{Job, JobStatus};
use crate::jobs::store::JobStore;
use crate::jobs::store::tests::job;
use crate::jobs::sync;
use crate::jobs::webhooks::receive;
use crate::kernel::http::Method;
use crate::kernel::kv::MemoryKv;
use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};
use crate::kernel::signing::{SignedHeaders, sign};
use crate::providers::settings::ProviderSettings;

pub(crate) const NOW: u64 = 1_800_000_000_000;
pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Provider settings against a scripted Replicate (shared with the webhook tests).
pub(crate) fn settings() -> ProviderSettings {
    ProviderSettings {
        api_base: "http://replicate.test".into(),
        token: "r8_test".into(),
        public_url: None,
        refresh_after_ms: 5_000,
    }
}

/// A queued job with prediction `p1`, stored.
fn queued(kv: &MemoryKv) -> Job {
    let mut j = job("j1", "alice");
    j.status = JobStatus::Queued;
    j.prediction_id = Some("p1".into());
    JobStore::new(kv).create(&mut j).unwrap();
    j
}

#[test]
fn a_refresh_that_fails_reports_it_and_leaves_the_job_alone() {
    let kv = MemoryKv::default();
    let j = queued(&kv);
    let http = ScriptedHttp::new();
    http.on(
        Method::Get,
        "/v1/predictions/p1",
        vec![
            Reply::Json(503, json!({"detail": "down"})),
            Reply::Json(200, json!({"id": "p1", "status": "succeeded"})),
        ],
    );
    let store = JobStore::new(&kv);
    let (after, error) = block_on(refresh(&store, &http, &settings(), j.clone(), NOW));
    assert!(error.is_some_and(|e| e.contains("Replicate")));
    assert_eq!(after.status, JobStatus::Queued);
    assert_eq!(store.get("j1").unwrap().unwrap().status, JobStatus::Queued);
    let (after, error) = block_on(refresh(&store, &http, &settings(), j, NOW));
    assert_eq!((after.status, error), (JobStatus::Completed, None));
}

#[test]
fn a_prediction_replicate_no_longer_has_counts_as_cancelled() {
    let kv = MemoryKv::default();
    queued(&kv);
    let http = ScriptedHttp::new();
    http.on(
        Method::Post,
        "/v1/predictions/p1/cancel",
        vec![Reply::Json(404, json!({"detail": "not found"}))],
    );
    let store = JobStore::new(&kv);
    let p = Principal::admin("alice");
    let cancelled = block_on(cancel(&store, &http, &settings(), &p, "j1", NOW)).unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let again = block_on(cancel(&store, &http, &settings(), &p, "j1", NOW)).unwrap_err();
    assert_eq!((again.status, again.code), (409, "invalid_job_state"));
    assert_eq!(http.count(Method::Post, "/v1/predictions/p1/cancel"), 1);
}

fn signed(id: &str, body: &str) -> SignedHeaders {
    let ts = NOW / 1000;
    SignedHeaders {
        id: Some(id.into()),
        timestamp: Some(ts.to_string()),
        signature: Some(format!(
            "v1,{}",
            sign(SECRET, id, ts, body.as_bytes()).unwrap()
        )),
    }
}

#[test]
fn webhooks_need_the_account_signature_and_never_move_a_job_back() {
    let kv = MemoryKv::default();
    queued(&kv);
    let http = ScriptedHttp::new();
    http.on(
        Method::Get,
        "/v1/webhooks/default/secret",
        vec![Reply::Json(200, json!({"key": SECRET}))],
    );
    let store = JobStore::new(&kv);
    let done = json!({"id": "p1", "status": "succeeded", "logs": "step 10/10"}).to_string();
    let mut forged = signed("msg_1", &done);
    forged.signature = Some("v1,AAAA".into());
    let e = block_on(receive(
        &kv,
        &http,
        &settings(),
        &forged,
        Some("j1"),
        done.as_bytes(),
        NOW,
    ))
    .unwrap_err();
    assert_eq!(e.status, 401);
    assert_eq!(store.get("j1").unwrap().unwrap().status, JobStatus::Queued);
    let ok = block_on(receive(
        &kv,
        &http,
        &settings(),
        &signed("msg_1", &done),
        Some("j1"),
        done.as_bytes(),
        NOW,
    ))
    .unwrap();
    assert_eq!(ok["status"], "received");
    assert_eq!(store.logs("j1").unwrap().text, "step 10/10");
    // A late "processing" is acknowledged as stale and changes nothing.
    let late = json!({"id": "p1", "status": "processing", "logs": "step 3"}).to_string();
    let r = block_on(receive(
        &kv,
        &http,
        &settings(),
        &signed("msg_2", &late),
        Some("j1"),
        late.as_bytes(),
        NOW,
    ))
    .unwrap();
    assert_eq!(
        (r["status"].as_str(), r["job_status"].as_str()),
        (Some("stale"), Some("completed"))
    );
    assert_eq!(store.logs("j1").unwrap().text, "step 10/10");
    // The secret was fetched once for the forged event and cached after.
    assert_eq!(http.count(Method::Get, "/v1/webhooks/default/secret"), 1);
}

#[test]
fn the_sync_adopts_a_prediction_whose_create_answer_was_lost() {
    let kv = MemoryKv::default();
    let input = json!({"config_json": "{}"});
    let mut orphan = job("j2", "alice");
    orphan.input_sha256 = Some(hex::encode(Sha256::digest(input.to_string().as_bytes())));
    orphan.created_ms = NOW;
    JobStore::new(&kv).create(&mut orphan).unwrap();
    let http = ScriptedHttp::new();
    http.on(
        Method::Get,
        "/v1/predictions",
        vec![Reply::Json(
            200,
            json!({"results": [
                {"id": "other", "model": "someone/else", "input": input, "status": "processing"},
                {"id": "p9", "model": "simpletuner/advanced-trainer-h100", "input": input, "status": "processing"},
            ], "next": null}),
        )],
    );
    let report = block_on(sync::run(
        &JobStore::new(&kv),
        &http,
        &settings(),
        sync::DEFAULT_BUDGET,
        NOW,
    ));
    assert_eq!(report.adopted, 1, "{:?}", report.errors);
    let adopted = JobStore::new(&kv).get("j2").unwrap().unwrap();
    assert_eq!(adopted.prediction_id.as_deref(), Some("p9"));
    assert_eq!(adopted.status, JobStatus::Running);
}

#[test]
fn a_job_whose_submit_died_before_replicate_fails_and_frees_its_reservation() {
    let kv = MemoryKv::default();
    let stored = crate::providers::settings::StoredSettings::default();
    let crate::billing::limits::Check::Allowed { reservation, .. } =
        crate::billing::limits::reserve(&kv, &stored, "alice", 5.0, NOW).unwrap()
    else {
        panic!("no limit set")
    };
    let spent = || {
        crate::billing::limits::global_spend_usd(
            &kv,
            crate::providers::settings::Period::Daily,
            NOW,
        )
        .unwrap()
    };
    assert_eq!(spent(), 5.0);
    // Recorded, then nothing: no input hash, no prediction (it died zipping).
    let mut stalled = job("j3", "alice");
    stalled.status = JobStatus::Uploading;
    stalled.created_ms = NOW;
    stalled.reservation = Some(reservation);
    JobStore::new(&kv).create(&mut stalled).unwrap();
    let http = ScriptedHttp::new();
    let pass = |now| {
        block_on(sync::run(
            &JobStore::new(&kv),
            &http,
            &settings(),
            sync::DEFAULT_BUDGET,
            now,
        ))
    };
    // Too young to judge: a submit may still be running.
    assert_eq!(pass(NOW + 60_000).abandoned, 0);
    assert_eq!(
        JobStore::new(&kv).get("j3").unwrap().unwrap().status,
        JobStatus::Uploading
    );
    let report = pass(NOW + sync::ADOPT_WINDOW_MS);
    assert_eq!(report.abandoned, 1, "{:?}", report.errors);
    let failed = JobStore::new(&kv).get("j3").unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error_message.unwrap().contains("submit it again"));
    assert_eq!(spent(), 0.0, "the reservation was given back");
    assert!(JobStore::new(&kv).active().unwrap().is_empty());
    assert!(http.requests().is_empty(), "nothing to ask Replicate");
}
