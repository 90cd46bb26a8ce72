//! The follow loop's decisions, and its promise under every interleaving of
//! the end's writes: a follower that reads between any two writes of the
//! webhook, the refresh or the sync ends on `done` only after the job's last
//! lines. The writers run against a store that keeps a copy of itself after
//! every single write; a follower then reads the job from one copy and its
//! logs from the same or any later one (a poll reads them in that order).

use std::cell::RefCell;

use serde_json::{Value, json};

use super::*;
use crate::jobs::lifecycle::apply_prediction;
use crate::jobs::provider_tests::{NOW, SECRET, settings};
use crate::jobs::store::tests::job;
use crate::kernel::http::Method;
use crate::kernel::kv::{KvError, KvStore, MemoryKv};
use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};
use crate::kernel::signing::{SignedHeaders, sign};

const BEFORE: &str = "step 1/3\nstep 2/3\n";
const FINAL: &str = "step 1/3\nstep 2/3\nstep 3/3\nsaved\n";
const PREDICTION: &str = "/v1/predictions/p1";

/// Every key and value in a store at one moment.
type Snapshot = Vec<(String, Vec<u8>)>;

/// A store that keeps a copy of everything in it after every write, and
/// holds one compare-and-swap at a time as Spin's does (a `read_for_swap`
/// replaces the one before it), so a swap nested in another is caught.
#[derive(Default)]
struct Recording {
    inner: MemoryKv,
    copies: RefCell<Vec<Snapshot>>,
    guarded: RefCell<Option<(String, Option<Vec<u8>>)>>,
}

impl Recording {
    fn copy(&self) {
        let all = self
            .inner
            .keys()
            .into_iter()
            .filter_map(|k| self.inner.get(&k).ok().flatten().map(|v| (k, v)))
            .collect();
        self.copies.borrow_mut().push(all);
    }

    /// The store as it was after each write (and before the first).
    fn states(&self) -> Vec<MemoryKv> {
        self.copies
            .borrow()
            .iter()
            .map(|all| {
                let kv = MemoryKv::default();
                for (k, v) in all {
                    kv.set(k, v).unwrap();
                }
                kv
            })
            .collect()
    }
}

impl KvStore for Recording {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.inner.set(key, value)?;
        self.copy();
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.inner.delete(key)?;
        self.copy();
        Ok(())
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.inner.exists(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let n = self.inner.increment(key, delta)?;
        self.copy();
        Ok(n)
    }
    fn read_for_swap(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let current = self.inner.get(key)?;
        *self.guarded.borrow_mut() = Some((key.to_string(), current.clone()));
        Ok(current)
    }
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        if let Some(seen) = seen {
            match self.guarded.borrow_mut().take() {
                Some((k, s)) if k == key && s.as_deref() == Some(seen) => {}
                _ => {
                    return Err(KvError::new(format!(
                        "swap of {key} without a matching read_for_swap"
                    )));
                }
            }
        }
        let swapped = self.inner.swap(key, seen, new)?;
        if swapped {
            self.copy();
        }
        Ok(swapped)
    }
}

/// A running job `j1` (prediction `p1`) with its first two lines stored,
/// last refreshed at `refreshed_ms`; the recording starts here.
fn running(refreshed_ms: u64) -> Recording {
    let kv = Recording::default();
    let mut j = job("j1", "alice");
    j.status = JobStatus::Running;
    j.prediction_id = Some("p1".into());
    j.refreshed_ms = Some(refreshed_ms);
    let store = JobStore::new(&kv.inner);
    store.create(&mut j).unwrap();
    store.set_logs("j1", BEFORE).unwrap();
    kv.copy();
    kv
}

fn ended(logs: Option<&str>) -> Value {
    let mut p = json!({"id": "p1", "status": "succeeded"});
    if let Some(logs) = logs {
        p["logs"] = json!(logs);
    }
    p
}

/// Every follower that reads the job after write `i` and its logs after
/// write `j >= i`: if it ends, it sent every line first. The last state ends.
fn assert_every_interleaving_ends_with_the_last_lines(kv: &Recording) {
    let states = kv.states();
    assert!(states.len() > 2, "the writer wrote");
    for (i, for_job) in states.iter().enumerate() {
        let Some(read) = JobStore::new(for_job).get("j1").unwrap() else {
            continue;
        };
        for (j, for_logs) in states.iter().enumerate().skip(i) {
            let mut f = Follower::new("j1", 0, 25, NOW);
            let poll = f.after_status(&JobStore::new(for_logs), &read, NOW + 2_000);
            if poll.end {
                let want = format!(
                    "{}{}",
                    line_events(&StoredLogs::keep_tail(FINAL).slice(None, None), true).text,
                    done_event(JobStatus::Completed)
                );
                assert_eq!(poll.text, want, "job read after write {i}, logs after {j}");
            }
        }
    }
    let last = states.last().unwrap();
    let read = JobStore::new(last).get("j1").unwrap().unwrap();
    let poll = Follower::new("j1", 0, 25, NOW).after_status(&JobStore::new(last), &read, NOW);
    assert!(poll.end, "the finished job ends the stream: {}", poll.text);
}

#[test]
fn a_webhook_that_ends_the_job_never_ends_a_follower_before_its_last_lines() {
    let kv = running(NOW);
    let http = ScriptedHttp::new();
    http.on(
        Method::Get,
        "/v1/webhooks/default/secret",
        vec![Reply::Json(200, json!({"key": SECRET}))],
    );
    let body = ended(Some(FINAL)).to_string();
    let ts = NOW / 1000;
    let headers = SignedHeaders {
        id: Some("msg_end".into()),
        timestamp: Some(ts.to_string()),
        signature: Some(format!(
            "v1,{}",
            sign(SECRET, "msg_end", ts, body.as_bytes()).unwrap()
        )),
    };
    let r = block_on(crate::jobs::webhooks::receive(
        &kv,
        &http,
        &settings(),
        &headers,
        Some("j1"),
        body.as_bytes(),
        NOW,
    ))
    .unwrap();
    assert_eq!(r["status"], "received");
    assert_every_interleaving_ends_with_the_last_lines(&kv);
}

#[test]
fn a_refresh_that_sees_the_end_never_ends_a_follower_before_its_last_lines() {
    let kv = running(0);
    let http = ScriptedHttp::new();
    http.on(
        Method::Get,
        PREDICTION,
        vec![Reply::Json(200, ended(Some(FINAL)))],
    );
    let store = JobStore::new(&kv);
    let j = store.get("j1").unwrap().unwrap();
    let (after, error) = block_on(refresh(&store, &http, &settings(), j, NOW));
    assert_eq!((after.status, error), (JobStatus::Completed, None));
    assert_every_interleaving_ends_with_the_last_lines(&kv);
}

#[test]
fn a_job_the_sync_ended_from_a_list_item_is_followed_until_its_logs_arrive() {
    let kv = running(NOW);
    let store = JobStore::new(&kv);
    // The sync's list pass: the end, without logs.
    store
        .update::<()>("j1", |j| {
            apply_prediction(j, &ended(None), NOW);
            Ok(())
        })
        .unwrap();
    assert!(store.get("j1").unwrap().unwrap().logs_pending);
    // Its later refresh (or a reader's) fetches them.
    let http = ScriptedHttp::new();
    http.on(
        Method::Get,
        PREDICTION,
        vec![Reply::Json(200, ended(Some(FINAL)))],
    );
    let j = store.get("j1").unwrap().unwrap();
    let (after, _) = block_on(refresh(&store, &http, &settings(), j, NOW + 1_000));
    assert!(!after.logs_pending);
    assert_every_interleaving_ends_with_the_last_lines(&kv);
}

#[test]
fn an_older_answer_never_replaces_the_final_logs() {
    let kv = running(0);
    let store = JobStore::new(&kv);
    store.set_logs("j1", FINAL).unwrap();
    store.set_logs("j1", BEFORE).unwrap();
    assert_eq!(store.logs("j1").unwrap().text, FINAL);
}

/// Polls `j1` on `kv` at `at` (Replicate scripted by `http`).
fn poll_at(f: &mut Follower, kv: &MemoryKv, http: &ScriptedHttp, at: u64) -> Poll {
    block_on(f.poll(&JobStore::new(kv), http, &settings(), at))
}

#[test]
fn a_follower_sends_new_lines_then_keeps_alive_then_asks_to_reconnect() {
    let kv = running(NOW + 60_000);
    let http = ScriptedHttp::new();
    let mut f = Follower::new("j1", 0, 25, NOW);
    let first = poll_at(&mut f, &kv.inner, &http, NOW);
    assert_eq!(
        (first.text.as_str(), first.end),
        ("id: 9\ndata: step 1/3\n\nid: 18\ndata: step 2/3\n\n", false)
    );
    let quiet = poll_at(&mut f, &kv.inner, &http, NOW + KEEPALIVE_MS - 1);
    assert_eq!((quiet.text.as_str(), quiet.end), ("", false));
    let alive = poll_at(&mut f, &kv.inner, &http, NOW + KEEPALIVE_MS);
    assert_eq!((alive.text.as_str(), alive.end), (KEEPALIVE, false));
    let up = poll_at(&mut f, &kv.inner, &http, NOW + 25_000);
    assert!(up.end);
    assert_eq!(up.text, reconnect_event(18, 25));
    assert_eq!(
        http.requests().len(),
        0,
        "the job was fresh: no provider call"
    );
}

#[test]
fn a_follower_of_a_deleted_job_ends_and_an_unreachable_store_ends_quietly() {
    let kv = MemoryKv::default();
    let http = ScriptedHttp::new();
    let mut f = Follower::new("j1", 0, 25, NOW);
    assert_eq!(poll_at(&mut f, &kv, &http, NOW), Poll::end(DELETED_EVENT));
    kv.set("job:j1", b"not json").unwrap();
    assert_eq!(poll_at(&mut f, &kv, &http, NOW), Poll::end(""));
}

#[test]
fn pending_final_logs_are_awaited_only_until_the_stream_is_up() {
    let kv = running(NOW);
    let store = JobStore::new(&kv.inner);
    store
        .update::<()>("j1", |j| {
            apply_prediction(j, &ended(None), NOW);
            Ok(())
        })
        .unwrap();
    let http = ScriptedHttp::new();
    http.on(
        Method::Get,
        PREDICTION,
        vec![Reply::Json(503, json!({"detail": "down"}))],
    );
    let mut f = Follower::new("j1", 0, 25, NOW);
    let waiting = poll_at(&mut f, &kv.inner, &http, NOW + 1_000);
    assert!(!waiting.end, "{}", waiting.text);
    assert!(!waiting.text.contains("event: done"), "{}", waiting.text);
    let up = poll_at(&mut f, &kv.inner, &http, NOW + 25_000);
    assert!(up.end);
    assert!(
        up.text.ends_with(&done_event(JobStatus::Completed)),
        "{}",
        up.text
    );
}
