//! Submit's branches against a scripted Replicate: created, replayed, a lost
//! create answer, a 429 waited out, a 5xx, a cost limit and a bad dataset —
//! each checked for what it leaves behind (job, idempotency key, spend).

use std::cell::{Cell, RefCell};

use serde_json::{Value, json};

use super::*;
use crate::billing::limits::limit_status;
use crate::jobs::store::ListQuery;
use crate::kernel::counting::CountingKv;
use crate::kernel::http::Method;
use crate::kernel::kv::KvError;
use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};
use crate::providers::catalog::{DEFAULT_PROFILE, find_profile};
use crate::providers::settings::LimitAction;

const NOW: u64 = 1_800_000_000_000;

/// A store that goes down (every call fails as an unreachable Redis does)
/// from the first write whose value contains `trip` (every `|`-separated
/// part of it), until brought back.
#[derive(Default)]
struct FaultyKv {
    inner: CountingKv,
    trip: RefCell<Option<&'static str>>,
    down: Cell<bool>,
}

impl std::ops::Deref for FaultyKv {
    type Target = CountingKv;
    fn deref(&self) -> &CountingKv {
        &self.inner
    }
}

impl FaultyKv {
    fn check(&self, value: Option<&[u8]>) -> Result<(), KvError> {
        // `trip`'s parts (split at `|`) must all be in the value.
        let trips = |trip: &str| {
            value.is_some_and(|v| {
                let v = String::from_utf8_lossy(v);
                trip.split('|').all(|part| v.contains(part))
            })
        };
        if self.trip.borrow().is_some_and(trips) {
            self.down.set(true);
        }
        if self.down.get() {
            return Err(KvError::unavailable(
                "the shared Redis at redis://127.0.0.1:1 cannot be reached (SET: Connection refused)",
            ));
        }
        Ok(())
    }
}

impl KvStore for FaultyKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.check(None)?;
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.check(Some(value))?;
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.check(None)?;
        self.inner.delete(key)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.check(None)?;
        self.inner.exists(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.check(None)?;
        self.inner.increment(key, delta)
    }
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        self.check(Some(new))?;
        self.inner.swap(key, seen, new)
    }
    fn read_for_swap(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.check(None)?;
        self.inner.read_for_swap(key)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.check(None)?;
        self.inner.get_many(keys)
    }
}

struct World {
    kv: FaultyKv,
    http: ScriptedHttp,
    settings: ProviderSettings,
    principal: Principal,
    stored: StoredSettings,
    datasets: tempfile::TempDir,
}

impl World {
    /// A Replicate whose trainer model has a version and whose creates
    /// answer `create` in turn.
    fn new(create: Vec<Reply>) -> Self {
        let http = ScriptedHttp::new();
        let model = find_profile(DEFAULT_PROFILE).unwrap().model();
        http.on(
            Method::Get,
            &format!("/v1/models/{model}"),
            vec![Reply::Json(200, json!({"latest_version": {"id": "v1"}}))],
        );
        http.on(Method::Post, "/v1/predictions", create);
        World {
            kv: FaultyKv::default(),
            http,
            settings: ProviderSettings {
                api_base: "http://replicate.test".into(),
                token: "r8_test".into(),
                public_url: None,
                refresh_after_ms: 5_000,
            },
            principal: Principal::admin("alice"),
            stored: StoredSettings::default(),
            datasets: tempfile::tempdir().unwrap(),
        }
    }

    fn submit(&self, body: Value) -> Submitted {
        let ctx = SubmitContext {
            kv: &self.kv,
            http: &self.http,
            settings: &self.settings,
            principal: &self.principal,
            hf_token: None,
            datasets_root: self.datasets.path(),
            stored: &self.stored,
            now_ms: NOW,
        };
        block_on(submit(&ctx, Some("replicate"), body.to_string().as_bytes()))
    }

    fn jobs(&self) -> Vec<Job> {
        let q = ListQuery {
            limit: 100,
            ..Default::default()
        };
        let store = JobStore::new(&self.kv);
        let listed = store.list(&q).unwrap().0;
        listed
            .iter()
            .map(|s| store.get(&s.job_id).unwrap().expect("a listed job exists"))
            .collect()
    }

    fn creates(&self) -> usize {
        self.http.count(Method::Post, "/v1/predictions")
    }

    fn spend(&self) -> f64 {
        limit_status(&self.kv, &self.stored, "alice", NOW).unwrap()["current_spend"]
            .as_f64()
            .unwrap()
    }
}

fn created() -> Reply {
    Reply::Json(201, json!({"id": "p1", "status": "starting"}))
}

fn body(key: &str) -> Value {
    json!({"config": {"--max_train_steps": 10}, "idempotency_key": key})
}

#[test]
fn a_submit_creates_one_prediction_and_a_replay_returns_its_job() {
    let w = World::new(vec![created()]);
    let first = w.submit(body("k"));
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["status"], "queued");
    let again = w.submit(body("k"));
    assert_eq!(again.status, 200);
    assert_eq!(again.body["idempotent_hit"], true);
    assert_eq!(again.body["job_id"], first.body["job_id"]);
    assert_eq!(w.creates(), 1);
    assert_eq!(w.jobs()[0].prediction_id.as_deref(), Some("p1"));
}

#[test]
fn a_lost_create_answer_keeps_the_job_for_the_sync_and_replays_it() {
    let w = World::new(vec![Reply::Lost]);
    let r = w.submit(body("k"));
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["success"], false);
    let job = &w.jobs()[0];
    assert_eq!(r.body["job_id"], job.job_id.as_str());
    assert_eq!(job.status, JobStatus::Pending, "not failed: it may exist");
    assert!(job.input_sha256.is_some(), "the sync adopts it by input");
    let again = w.submit(body("k"));
    assert_eq!(
        (again.status, &again.body["job_id"]),
        (200, &r.body["job_id"])
    );
    assert_eq!(w.creates(), 1, "a retry never creates a second prediction");
}

#[test]
fn a_429_is_waited_out_and_the_create_retried() {
    let w = World::new(vec![
        Reply::Status(429, vec![("retry-after", "0")]),
        created(),
    ]);
    let r = w.submit(body("k"));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(w.creates(), 2);
}

#[test]
fn a_provider_error_fails_the_job_and_frees_the_key() {
    let w = World::new(vec![Reply::Json(500, json!({"detail": "boom"})), created()]);
    let r = w.submit(body("k"));
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (502, Some("provider_error"))
    );
    assert_eq!(w.jobs()[0].status, JobStatus::Failed);
    assert_eq!(w.spend(), 0.0, "a failed job settles at its real cost");
    // Nothing was created, so the same key runs afresh.
    let again = w.submit(body("k"));
    assert_eq!(again.status, 201, "{}", again.body);
    assert_ne!(again.body["job_id"], r.body["job_id"]);
    assert_eq!(w.jobs().len(), 2);
}

#[test]
fn a_blocking_cost_limit_gives_back_the_key_and_the_spend() {
    let mut w = World::new(vec![created()]);
    w.stored.cost_limit_enabled = true;
    w.stored.cost_limit_amount = Some(0.01);
    w.stored.cost_limit_action = LimitAction::Block;
    let r = w.submit(body("k"));
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (402, Some("cost_limit_exceeded"))
    );
    assert!(w.jobs().is_empty());
    assert_eq!(w.spend(), 0.0);
    assert_eq!(w.creates(), 0);
    w.stored.cost_limit_enabled = false;
    assert_eq!(w.submit(body("k")).status, 201, "the key was released");
}

#[test]
fn a_bad_dataset_is_refused_before_anything_is_written() {
    let w = World::new(vec![created()]);
    let mut b = body("k");
    b["dataloader_config"] = json!([{"id": "cats", "instance_data_dir": "/home/me/cats"}]);
    let r = w.submit(b);
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_dataset"))
    );
    assert!(w.jobs().is_empty());
    assert!(w.http.requests().is_empty(), "no provider call");
    assert_eq!(w.spend(), 0.0);
    assert_eq!(w.submit(body("k")).status, 201, "the key was released");
}

/// What a submit asks of the store (as Spin's embedded store's calls):
/// - the estimate's duration statistics (1 read) and the spend reservation
///   in its day, week and month, everyone's and the caller's (6 increments,
///   so a limit whose period changes later still counts this job);
/// - the job listed: a slot from each scope's head (2 CAS edits of 2 calls),
///   the active set (1 edit), the record (1 write), then, once it exists,
///   its count in each scope's head and its entry in each page (4 edits);
/// - the upload signing key and the cached trainer version (2 reads);
/// - the intent completed, then the prediction applied (2 record edits),
///   which relists it: a page and a head per scope (4 edits);
/// - whether anyone subscribed to its notifications (1 read), and which
///   notification channels hear of it: the user's and their teams' (2 reads);
/// - the Prometheus submit counter (1 increment);
/// - quotas: the submitter's teams and organization and the quota list (3
///   reads), and the job's place in the submitter's five quota counters (5
///   increments; a team and an organization add five each);
/// - the event log: its head advanced and the entry written (3 calls).
///
/// An idempotency key adds its creation (3 calls on the embedded store, one
/// `SET NX` on Redis) and two writes: the job it names before the provider
/// call, and that it is done after.
#[test]
fn a_submit_costs_a_known_number_of_store_operations() {
    let w = World::new(vec![created(), created(), created()]);
    // The first submit also looks the trainer's version up and caches it.
    assert_eq!(w.submit(body("warm")).status, 201);
    for (key, most) in [(None, 51), (Some("k2"), 56)] {
        w.kv.reset();
        let mut b = body(key.unwrap_or_default());
        if key.is_none() {
            b.as_object_mut().unwrap().remove("idempotency_key");
        }
        let before = w.http.requests().len();
        assert_eq!(w.submit(b).status, 201);
        assert_eq!(w.http.requests().len() - before, 1, "one provider call");
        assert!(
            w.kv.total() <= most,
            "{key:?}: {:?}\n{}",
            w.kv.ops(),
            w.kv.trace().join("\n")
        );
    }
}

/// What every answer to a store outage must be: 503 `storage_unavailable`,
/// words and a retry hint, no Rust debug text.
fn assert_outage_answer(r: &Submitted) {
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{}",
        r.body
    );
    assert_eq!(r.body["details"]["retry_after_secs"], 5, "{}", r.body);
    let message = r.body["message"].as_str().unwrap();
    for debug in ["{", "Kind", "KvError", "Store("] {
        assert!(!message.contains(debug), "{message}");
    }
}

#[test]
fn a_store_outage_after_the_create_answers_503_naming_the_training_and_the_sync_adopts_it() {
    let w = World::new(vec![created()]);
    // The store goes down as the created prediction is being recorded.
    *w.kv.trip.borrow_mut() = Some("\"prediction_id\":\"p1\"");
    let r = w.submit(body("k"));
    assert_outage_answer(&r);
    let job_id = r.body["job_id"]
        .as_str()
        .expect("the job is named")
        .to_string();
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.contains("p1") && message.contains(&job_id),
        "{message}"
    );
    assert_eq!(r.body["details"]["prediction_id"], "p1");
    assert_eq!(w.creates(), 1);

    // The store is back: the key names the job (never a second prediction),
    // and the next sync adopts the prediction into it.
    *w.kv.trip.borrow_mut() = None;
    w.kv.down.set(false);
    let again = w.submit(body("k"));
    assert_eq!(again.status, 409, "still in progress: {}", again.body);
    let sent = w
        .http
        .requests()
        .into_iter()
        .rfind(|q| q.url.ends_with("/v1/predictions"));
    let input = serde_json::from_slice::<Value>(&sent.unwrap().body).unwrap()["input"].clone();
    let model = find_profile(DEFAULT_PROFILE).unwrap().model();
    w.http.on(
        Method::Get,
        "/v1/predictions",
        vec![Reply::Json(
            200,
            json!({"results": [{"id": "p1", "status": "starting",
            "model": model, "input": input, "created_at": "2027-01-15T08:00:00Z"}],
            "next": null}),
        )],
    );
    let store = JobStore::new(&w.kv);
    let report = block_on(crate::jobs::sync::run(
        &store,
        &w.http,
        &w.settings,
        25,
        NOW + 1000,
    ));
    assert_eq!(report.adopted, 1, "{:?}", report.errors);
    let job = store.get(&job_id).unwrap().unwrap();
    assert_eq!(job.prediction_id.as_deref(), Some("p1"));
    let replay = w.submit(body("k"));
    assert_eq!(
        (replay.status, replay.body["job_id"].as_str()),
        (200, Some(job_id.as_str()))
    );
    assert_eq!(
        w.creates(),
        1,
        "one training, however often the client retried"
    );
}

#[test]
fn a_store_outage_before_the_create_sends_nothing_and_answers_503() {
    // Down as the intent (the input's hash) is recorded, or as the key is
    // made to name its job: either way Replicate is never asked.
    for trip in [
        "\"input_sha256\":\"",
        "\"state\":\"in_progress\"|\"job_id\":\"",
    ] {
        let w = World::new(vec![created()]);
        *w.kv.trip.borrow_mut() = Some(trip);
        let r = w.submit(body("k"));
        assert_outage_answer(&r);
        assert_eq!(w.creates(), 0, "{trip}: nothing at the provider");
    }
}
