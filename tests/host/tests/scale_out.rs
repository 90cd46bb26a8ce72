//! Several instances of one installation on one shared Redis: two test hosts
//! ("replicas") serve the same app from the same Redis, and requests are
//! spread over both, as behind a load balancer. What must hold is what holds
//! on one instance: one job per idempotency key, no lost job update, one
//! first admin, exact spend reservations — and a Redis restart loses nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cloudtuner_testhost::{App, TestResponse};
use common::{RedisServer, SUBMIT, TestApp, add_trainers, job, post_json};
use fake_replicate::{FakeReplicate, Fault, FaultKind, Outcome, Script, signing};
use serde_json::{Value, json};

const PREFIX: &str = "shop:";

/// One fake Replicate, one Redis, two replicas of the app on it.
struct Cluster {
    fake: FakeReplicate,
    redis: RedisServer,
    replicas: Vec<common::AppAgainst>,
}

impl Cluster {
    async fn start() -> Self {
        Self::start_on(RedisServer::start()).await
    }

    async fn start_on(redis: RedisServer) -> Self {
        let fake = FakeReplicate::start().await;
        add_trainers(&fake);
        let mut replicas = Vec::new();
        for _ in 0..2 {
            replicas.push(
                TestApp::builder()
                    .redis(&redis, PREFIX)
                    .start_against(&fake)
                    .await,
            );
        }
        Cluster {
            fake,
            redis,
            replicas,
        }
    }

    /// The replica the load balancer picks for request `i`.
    fn app(&self, i: usize) -> &App {
        &self.replicas[i % self.replicas.len()].app
    }
}

/// Runs `n` requests at once, request `i` on replica `i % 2`.
async fn race<F, Fut>(c: &Cluster, n: usize, request: F) -> Vec<TestResponse>
where
    F: Fn(App, usize) -> Fut,
    Fut: Future<Output = TestResponse> + Send + 'static,
{
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(request(c.app(i).clone(), i)))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn statuses(rs: &[TestResponse]) -> BTreeMap<u16, usize> {
    rs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.status).or_insert(0) += 1;
        m
    })
}

/// Every job the list shows, paging through it on replica `i`.
async fn all_listed(app: &App) -> (Vec<String>, u64) {
    let mut ids = Vec::new();
    let mut total = 0;
    loop {
        let path = format!("/api/cloud/jobs?limit=100&offset={}", ids.len());
        let r = app.request("GET", &path, &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        total = body["total"].as_u64().unwrap_or(total);
        let page: Vec<String> = body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap().to_string())
            .collect();
        if page.is_empty() {
            return (ids, total);
        }
        ids.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_prediction_for_100_racing_submits_with_one_key_over_two_replicas() {
    let c = Cluster::start().await;
    // The provider answers slowly, so the racers overlap while the first runs.
    c.fake.fault(Fault::new(
        Some("POST"),
        "/v1/predictions",
        FaultKind::Latency(std::time::Duration::from_millis(300)),
        1,
    ));
    let body = json!({"config": {"--max_train_steps": 10}, "idempotency_key": "ci-build-42"});
    let rs = race(&c, 100, move |app, _| {
        let body = body.clone();
        async move { post_json(&app, SUBMIT, &body).await }
    })
    .await;
    let codes = statuses(&rs);
    assert_eq!(codes.get(&201), Some(&1), "{codes:?}");
    assert!(
        codes.keys().all(|s| [200, 201, 409].contains(s)),
        "only replays and in-progress answers besides the one job: {codes:?}"
    );
    let ids: BTreeSet<_> = rs
        .iter()
        .filter_map(|r| r.json()["job_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(c.fake.prediction_ids().len(), 1, "exactly one prediction");
    // Both replicas see the one job, and only it.
    for app in [c.app(0), c.app(1)] {
        let (listed, total) = all_listed(app).await;
        assert_eq!((listed.len(), total), (1, 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_submits_over_two_replicas_are_all_listed_once() {
    let c = Cluster::start().await;
    let rs = race(&c, 200, |app, i| async move {
        post_json(
            &app,
            SUBMIT,
            &json!({"config": {"--max_train_steps": 10, "run": i}}),
        )
        .await
    })
    .await;
    assert_eq!(statuses(&rs), BTreeMap::from([(201, 200)]));
    let submitted: BTreeSet<String> = rs
        .iter()
        .map(|r| r.json()["job_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(submitted.len(), 200);
    for app in [c.app(0), c.app(1)] {
        let (listed, total) = all_listed(app).await;
        assert_eq!(total, 200);
        assert_eq!(listed.len(), 200, "every job listed");
        let unique: BTreeSet<String> = listed.into_iter().collect();
        assert_eq!(unique, submitted, "no duplicates, none missing");
    }
    assert_eq!(c.fake.prediction_ids().len(), 200);
    // Everything lives in the Redis, under the installation's prefix.
    let keys = c.redis.keys(PREFIX);
    assert!(keys.len() > 200, "{} keys", keys.len());
    assert!(c.redis.keys("job:").is_empty(), "no key outside the prefix");
}

/// A webhook for `pid`'s job as Replicate signs it, with `logs` so far.
fn signed(
    c: &Cluster,
    pid: &str,
    status: &str,
    logs: &str,
    msg: &str,
) -> (Vec<(String, String)>, String) {
    let mut p = c.fake.prediction(pid).unwrap();
    p["status"] = json!(status);
    p["logs"] = json!(logs);
    let body = p.to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sig = signing::sign(&c.fake.webhook_secret(), msg, ts, body.as_bytes()).unwrap();
    let headers = vec![
        ("webhook-id".to_string(), msg.to_string()),
        ("webhook-timestamp".to_string(), ts.to_string()),
        ("webhook-signature".to_string(), sig),
    ];
    (headers, body)
}

async fn post_webhook(
    app: &App,
    id: &str,
    headers: &[(String, String)],
    body: String,
) -> TestResponse {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.anonymous()
        .request(
            "POST",
            &format!("/api/cloud/webhooks/replicate?job={id}"),
            &h,
            body,
        )
        .await
}

const ORDER: [&str; 3] = ["queued", "running", "cancelled"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_webhooks_and_a_cancel_over_two_replicas_lose_no_update() {
    let c = Cluster::start().await;
    c.fake.push_script(Script::training(
        600,
        50,
        100,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    let id = common::submit(c.app(0), &json!({"config": {"--max_train_steps": 50}})).await;
    let pid = job(c.app(1), &id).await["metadata"]["prediction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let webhooks: Vec<_> = (1..=50)
        .map(|step| {
            let logs: String = (1..=step)
                .map(|s| format!("step {s}/50 loss={:.3}\n", 1.0 / s as f64))
                .collect();
            signed(&c, &pid, "processing", &logs, &format!("msg_{step}"))
        })
        .collect();
    // Someone watches the job's status all along, on either replica.
    let watcher = {
        let apps = [c.app(0).clone(), c.app(1).clone()];
        let id = id.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..40 {
                let r = apps[i % 2]
                    .request("GET", &format!("/api/cloud/jobs/{id}"), &[], "")
                    .await;
                seen.push(
                    r.json()["job"]["status"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                );
            }
            seen
        })
    };
    let cancel_at = 25;
    let hooks = webhooks.clone();
    let id2 = id.clone();
    let rs = race(&c, 51, move |app, i| {
        let id = id2.clone();
        let hook = (i != cancel_at).then(|| hooks[i.min(49)].clone());
        async move {
            match hook {
                None => {
                    app.request("POST", &format!("/api/cloud/jobs/{id}/cancel"), &[], "")
                        .await
                }
                Some((h, body)) => post_webhook(&app, &id, &h, body).await,
            }
        }
    })
    .await;
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    let seen = watcher.await.unwrap();
    let ranks: Vec<usize> = seen
        .iter()
        .map(|s| {
            ORDER
                .iter()
                .position(|o| o == s)
                .unwrap_or_else(|| panic!("status {s}"))
        })
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "the status never goes back: {seen:?}"
    );
    assert_eq!(job(c.app(0), &id).await["status"], "cancelled");
    // Every webhook that was answered is remembered in the job (the same
    // compare-and-swap that applied it): a redelivery of any is a duplicate.
    let sent: Vec<usize> = (0..51)
        .filter(|i| *i != cancel_at)
        .map(|i| i.min(49))
        .collect();
    for i in sent.into_iter().collect::<BTreeSet<_>>() {
        let (h, body) = webhooks[i].clone();
        let r = post_webhook(c.app(i + 1), &id, &h, body).await;
        assert_eq!(
            r.json()["status"],
            "duplicate",
            "webhook {i} was lost: {}",
            r.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_first_admin_setups_over_two_replicas_make_one_admin() {
    let c = Cluster::start().await;
    let rs = race(&c, 20, |app, i| async move {
        app.anonymous()
            .request(
                "POST",
                "/api/cloud/auth/setup",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {}", common::ADMIN_TOKEN)),
                ],
                json!({"username": format!("admin{i}"), "password": common::PASSWORD}).to_string(),
            )
            .await
    })
    .await;
    assert_eq!(statuses(&rs), BTreeMap::from([(201, 1), (409, 19)]));
    let users = c
        .app(1)
        .request("GET", "/api/cloud/auth/users", &[], "")
        .await
        .json();
    let admins: Vec<&Value> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["role"] == "admin")
        .collect();
    assert_eq!(admins.len(), 1, "{users}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_limit_lets_exactly_what_fits_through_two_replicas() {
    let c = Cluster::start().await;
    c.fake.set_default_script(Script::training(
        5,
        3,
        100,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    // One job reserves 100 steps × 2.7 s × the H100 rate; the limit fits seven.
    let est: f64 = 100.0 * 2.7 * 0.001525;
    let r = c
        .app(0)
        .request(
            "PUT",
            "/api/cloud/providers/replicate",
            &[],
            json!({"cost_limit_enabled": true, "cost_limit_amount": est * 7.5, "cost_limit_action": "block", "cost_limit_period": "daily"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rs = race(&c, 30, |app, _| async move {
        post_json(&app, SUBMIT, &json!({"config": {"--max_train_steps": 100}})).await
    })
    .await;
    assert_eq!(statuses(&rs), BTreeMap::from([(201, 7), (402, 23)]));
    assert_eq!(c.fake.prediction_ids().len(), 7);
    let status = c
        .app(1)
        .request("GET", "/api/cloud/cost-limit/status", &[], "")
        .await
        .json();
    let reserved = status["current_spend"].as_f64().unwrap();
    assert!(
        (reserved - (est * 7.0 * 100.0).round() / 100.0).abs() < 0.011,
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing_and_requests_fail_cleanly_while_it_is_down() {
    let mut c = Cluster::start_on(RedisServer::start_persistent()).await;
    let first = common::submit(c.app(0), &json!({"config": {"run": 1}})).await;

    c.redis.stop();
    let r = post_json(c.app(1), SUBMIT, &json!({"config": {"run": "while down"}})).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("cannot be reached"), "{message}");
    assert!(
        !message.contains("Error"),
        "in words, not debug text: {message}"
    );
    let health = c.app(0).request("GET", "/api/cloud/health", &[], "").await;
    assert_eq!(health.status, 503);
    assert_eq!(health.json()["store"], "redis");
    assert_eq!(health.json()["checks"][0]["status"], "unhealthy");
    let ready = c
        .app(1)
        .request("GET", "/api/cloud/health/ready", &[], "")
        .await;
    assert_eq!(ready.status, 503, "not ready while the store is down");
    assert!(
        ready.json()["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be reached")
    );
    let live = c
        .app(1)
        .request("GET", "/api/cloud/health/live", &[], "")
        .await;
    assert_eq!(live.status, 200, "alive all the same: no restart loop");
    let predictions_while_down = c.fake.prediction_ids().len();
    assert_eq!(predictions_while_down, 1, "nothing reached the provider");

    c.redis.restart();
    let second = common::submit(c.app(1), &json!({"config": {"run": 2}})).await;
    for app in [c.app(0), c.app(1)] {
        let (listed, total) = all_listed(app).await;
        let listed: BTreeSet<_> = listed.into_iter().collect();
        assert_eq!(total, 2);
        assert_eq!(listed, BTreeSet::from([first.clone(), second.clone()]));
    }
    let health = c.app(1).request("GET", "/api/cloud/health", &[], "").await;
    assert_eq!(health.status, 200, "{}", health.text());
}

#[tokio::test]
async fn a_redis_the_manifest_does_not_allow_is_refused_by_name() {
    let redis = RedisServer::start();
    // redis_url points elsewhere than redis_host allows.
    let t = TestApp::builder()
        .redis(&redis, PREFIX)
        .var("redis_host", "10.0.0.1:6379")
        .start()
        .await;
    let r = t.app.request("GET", "/api/cloud/jobs", &[], "").await;
    assert_eq!(r.status, 500, "{}", r.text());
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("redis_host"), "{message}");
    assert!(redis.keys("").is_empty(), "nothing written");
}
