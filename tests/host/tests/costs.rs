//! Cost: per-profile job cost, provider settings, warn/block limits with
//! reservations under a race, and spend/metrics that add up.

mod common;

use common::{SUBMIT, TestApp, post_json};
use fake_replicate::{FakeReplicate, Outcome, Script};
use serde_json::{Value, json};

async fn put_settings(
    app: &cloudtuner_testhost::App,
    body: Value,
) -> cloudtuner_testhost::TestResponse {
    app.request(
        "PUT",
        "/api/cloud/providers/replicate",
        &[],
        body.to_string(),
    )
    .await
}

/// Lets the fake's script run out (scripts here last under a minute of fake
/// time, so jobs still finish "today" for the daily metrics).
async fn finish(app: &cloudtuner_testhost::App, fake: &FakeReplicate, id: &str) -> Value {
    fake.advance(60);
    app.request("GET", &format!("/api/cloud/jobs/{id}"), &[], "")
        .await
        .json()["job"]
        .clone()
}

#[tokio::test]
async fn an_h100x8_job_costs_eight_h100s_times_predict_time() {
    let t = TestApp::builder().start().await;
    let (fake, app) = (&t.fake, &t.app);
    fake.push_script(Script::training(
        5,
        3,
        10,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    let r = post_json(
        app,
        SUBMIT,
        &json!({"config": {"--max_train_steps": 3}, "hardware_profile": "h100-x8"}),
    )
    .await;
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    let job = finish(app, fake, &id).await;
    let predict = fake
        .prediction(job["metadata"]["prediction_id"].as_str().unwrap())
        .unwrap()["metrics"]["predict_time"]
        .as_f64()
        .unwrap();
    let expected = predict * 8.0 * 0.001525;
    assert!(
        (job["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-5,
        "{} vs {expected}",
        job["cost_usd"]
    );
    assert!(
        job["cost_usd"].as_f64().unwrap() > predict * 0.000972222 * 10.0,
        "not the L40S rate"
    );
}

#[tokio::test]
async fn provider_settings_round_trip_without_the_token_and_the_token_is_used() {
    let t = TestApp::builder()
        .vars(&[("replicate_api_token", "")])
        .start()
        .await;
    let (fake, app) = (&t.fake, &t.app);
    // No token anywhere: submit says so.
    assert_eq!(
        post_json(app, SUBMIT, &json!({"config": {"a": 1}}))
            .await
            .status,
        503
    );
    let r = put_settings(app, json!({"api_token": fake_replicate::DEFAULT_TOKEN, "hardware_profile": "l40s-x2", "cost_limit_amount": 25})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains(fake_replicate::DEFAULT_TOKEN));
    let got = app
        .request("GET", "/api/cloud/providers/replicate/config", &[], "")
        .await;
    let cfg = &got.json()["config"];
    assert_eq!(cfg["api_token"]["configured"], true);
    assert_eq!(
        cfg["api_token"]["last4"],
        &fake_replicate::DEFAULT_TOKEN[fake_replicate::DEFAULT_TOKEN.len() - 4..]
    );
    assert_eq!(
        (
            cfg["hardware_profile"].as_str(),
            cfg["cost_limit_amount"].as_f64()
        ),
        (Some("l40s-x2"), Some(25.0))
    );
    assert!(!got.text().contains(fake_replicate::DEFAULT_TOKEN));
    // The stored token and default profile are what a submit uses.
    let r = post_json(app, SUBMIT, &json!({"config": {"a": 1}})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let create = fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/v1/predictions")
        .unwrap();
    assert!(
        create.json().unwrap()["version"]
            .as_str()
            .unwrap()
            .starts_with("simpletuner/advanced-trainer-l40s-x2:")
    );
    // Unknown fields are named, not dropped.
    let r = put_settings(app, json!({"s3_delivery": {"bucket": "x"}})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("s3_delivery")
    );
    assert_eq!(
        app.request("GET", "/api/cloud/providers/modal", &[], "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn block_explains_itself_warn_warns_and_a_20_way_race_lets_through_only_what_fits() {
    let t = TestApp::builder().start().await;
    let (fake, app) = (&t.fake, &t.app);
    fake.set_default_script(Script::training(
        5,
        3,
        100,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    // One job: 100 steps × 2.7 s × H100 rate = $0.41175 reserved.
    let body = json!({"config": {"--max_train_steps": 100}});
    let est: f64 = 100.0 * 2.7 * 0.001525;
    let r = put_settings(app, json!({"cost_limit_enabled": true, "cost_limit_amount": est * 5.5, "cost_limit_action": "block", "cost_limit_period": "daily"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move { post_json(&app, SUBMIT, &body).await })
        })
        .collect();
    let mut ok = 0;
    let mut blocked = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => ok += 1,
            402 => blocked.push(r.json()),
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert_eq!(ok, 5, "exactly the five jobs that fit pass");
    assert_eq!(blocked[0]["error"], "cost_limit_exceeded");
    let message = blocked[0]["message"].as_str().unwrap();
    assert!(
        message.contains("limit") && message.contains(&format!("${:.2}", est * 5.5)),
        "{message}"
    );
    assert_eq!(fake.prediction_ids().len(), 5);
    let status = app
        .request("GET", "/api/cloud/cost-limit/status", &[], "")
        .await
        .json();
    assert!(
        (status["current_spend"].as_f64().unwrap() - (est * 5.0 * 100.0).round() / 100.0).abs()
            < 0.011,
        "{status}"
    );
    assert_eq!(status["is_warning"], true);
    // Warn mode: the sixth passes, with the warning.
    put_settings(app, json!({"cost_limit_action": "warn"})).await;
    let r = post_json(app, SUBMIT, &body).await;
    assert_eq!(r.status, 201);
    assert!(
        r.json()["cost_limit_warning"]
            .as_str()
            .unwrap()
            .starts_with("Spending limit exceeded"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn spend_and_metrics_report_what_the_jobs_cost() {
    let t = TestApp::builder().start().await;
    let (fake, datasets, app) = (&t.fake, &t.datasets, &t.app);
    // Replicate's clock a day ahead of ours (as it is for a few minutes around
    // every midnight UTC while this test advances the fake): the jobs still
    // count today, with the durations Replicate reports.
    fake.advance(86_400);
    put_settings(
        app,
        json!({"cost_limit_enabled": true, "cost_limit_amount": 1000}),
    )
    .await;
    let mut costs = 0.0;
    for (i, outcome) in [
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
        Outcome::Failed {
            error: "boom".into(),
        },
    ]
    .into_iter()
    .enumerate()
    {
        fake.push_script(Script::training(5, 3, 10, outcome));
        let r = post_json(
            app,
            SUBMIT,
            &json!({"config": {"n": i}, "hardware_profile": "l40s"}),
        )
        .await;
        let job = finish(app, fake, r.json()["job_id"].as_str().unwrap()).await;
        costs += job["cost_usd"].as_f64().unwrap();
    }
    let status = app
        .request("GET", "/api/cloud/metrics/cost-limit", &[], "")
        .await
        .json();
    assert!(
        (status["current_spend"].as_f64().unwrap() - costs).abs() < 0.011,
        "{status} vs {costs}"
    );
    assert_eq!(status["window_type"], "calendar (UTC)");
    let m = app
        .request("GET", "/api/metrics?days=7", &[], "")
        .await
        .json();
    assert!(
        (m["total_cost"].as_f64().unwrap() - costs).abs() < 0.011,
        "{m}"
    );
    assert_eq!(m["job_count"], 2);
    assert_eq!(
        (
            m["jobs_by_status"]["completed"].as_u64(),
            m["jobs_by_status"]["failed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let today = m["cost_by_day"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["total_jobs"], 2);
    assert_eq!(m["cost_by_day"].as_array().unwrap().len(), 7);
    assert_eq!(
        app.request("GET", "/api/metrics?days=0", &[], "")
            .await
            .status,
        400
    );
    // The estimate learns from history once a job completed on the profile.
    let e = post_json(
        app,
        "/api/cloud/cost-estimate",
        &json!({"config": {"--max_train_steps": 3}, "hardware_profile": "l40s"}),
    )
    .await
    .json();
    assert_eq!(e["basis"], "history", "{e}");
    let e = post_json(
        app,
        "/api/cloud/cost-estimate",
        &json!({"config": {"--max_train_steps": 1000}, "hardware_profile": "h100"}),
    )
    .await
    .json();
    assert_eq!(e["basis"], "typical");
    assert!(e["low_usd"].as_f64().unwrap() < e["estimated_cost_usd"].as_f64().unwrap());
    // With a dataloader, the estimate previews the upload (counted, not zipped).
    let cats = datasets.path().join("cats");
    std::fs::create_dir_all(&cats).unwrap();
    std::fs::write(cats.join("1.png"), [7u8; 1000]).unwrap();
    std::fs::write(cats.join("1.txt"), b"a cat").unwrap();
    std::fs::write(cats.join(".env"), b"SECRET=1").unwrap();
    let e = post_json(
        app,
        "/api/cloud/cost-estimate",
        &json!({"config": {"--max_train_steps": 10},
                "dataloader_config": [{"id": "cats", "instance_data_dir": "/datasets/cats"}]}),
    )
    .await
    .json();
    assert_eq!(e["upload"]["files"], 2, "{e}");
    assert_eq!(e["upload"]["bytes"], 1005);
    assert_eq!(e["upload"]["skipped"], 1);
    let e = post_json(
        app,
        "/api/cloud/cost-estimate",
        &json!({"config": {"--max_train_steps": 10},
                "dataloader_config": [{"id": "dogs", "instance_data_dir": "/datasets/dogs"}]}),
    )
    .await
    .json();
    assert!(e["upload_error"].as_str().unwrap().contains("dogs"), "{e}");
    assert!(e["estimated_cost_usd"].as_f64().is_some());
}

/// Issue 14, defect 1: a job finished under a weekly limit still counts after
/// the limit switches to daily (or monthly, or per user): every window counts it.
#[tokio::test]
async fn spend_survives_a_change_of_the_limit_period() {
    let t = TestApp::builder().start().await;
    let (fake, app) = (&t.fake, &t.app);
    let r = put_settings(
        app,
        json!({"cost_limit_enabled": true, "cost_limit_amount": 1000, "cost_limit_period": "weekly"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    fake.push_script(Script::training(
        5,
        3,
        10,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    let r = post_json(
        app,
        SUBMIT,
        &json!({"config": {"--max_train_steps": 3}, "hardware_profile": "h100-x8"}),
    )
    .await;
    let job = finish(app, fake, r.json()["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed");
    let cost = job["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0);
    for (period, scope) in [
        ("daily", "global"),
        ("monthly", "global"),
        ("weekly", "user"),
        ("daily", "user"),
    ] {
        // A limit just above what was spent: the warning must fire on the real spend.
        let r = put_settings(
            app,
            json!({"cost_limit_period": period, "cost_limit_scope": scope,
                   "cost_limit_amount": cost * 1.1}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let status = app
            .request("GET", "/api/cloud/metrics/cost-limit", &[], "")
            .await
            .json();
        assert!(
            (status["current_spend"].as_f64().unwrap() - cost).abs() < 0.006,
            "{period}/{scope}: {status} vs {cost}"
        );
        assert_eq!(status["is_warning"], true, "{period}/{scope}: {status}");
    }
}

/// Issue 14, item 5: a job's deadline goes to Replicate as `Cancel-After`, the
/// job records it, ends named `deadline_exceeded`, and reserves its worst case;
/// Replicate's own time limit is named `provider_timeout` and explained.
#[tokio::test]
async fn deadlines_reach_replicate_and_name_how_a_job_ended() {
    let t = TestApp::builder().start().await;
    let (fake, app) = (&t.fake, &t.app);
    // A training far longer than its 2-minute deadline.
    fake.push_script(Script::training(5, 1000, 10, Outcome::Aborted));
    let r = post_json(
        app,
        SUBMIT,
        &json!({"config": {"--max_train_steps": 1000}, "hardware_profile": "l40s",
                "max_runtime_minutes": 2}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    // The reservation is the deadline's worst case: 2 minutes of an L40S.
    let status = app
        .request("GET", "/api/cloud/metrics/cost-limit", &[], "")
        .await
        .json();
    let worst = 120.0 * 0.000_972_222;
    assert!(
        (status["current_spend"].as_f64().unwrap() - worst).abs() < 0.006,
        "{status} vs {worst}"
    );
    let job = common::job(app, &id).await;
    assert_eq!(job["max_runtime_minutes"], 2);
    assert!(job["deadline_at"].is_string(), "{job}");
    fake.advance(121);
    let job = common::job(app, &id).await;
    assert_eq!(
        job["status"], "cancelled",
        "Replicate stopped it at Cancel-After: {job}"
    );
    assert_eq!(job["error"], "deadline_exceeded", "{job}");
    assert!(
        job["error_message"]
            .as_str()
            .unwrap()
            .contains("max_runtime_minutes = 2"),
        "{job}"
    );

    // Replicate's own 30-minute limit.
    fake.push_script(Script::training(
        5,
        3,
        10,
        Outcome::Failed {
            error: "Prediction timed out".into(),
        },
    ));
    let r = post_json(app, SUBMIT, &json!({"config": {"--max_train_steps": 3}})).await;
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    let job = finish(app, fake, &id).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"], "provider_timeout", "{job}");
    let message = job["error_message"].as_str().unwrap();
    assert!(
        message.contains("30 minutes") && message.contains("checkpoint"),
        "{message}"
    );
    // Read again, it still says so.
    assert_eq!(common::job(app, &id).await["error_message"], message);

    // An installation default applies to jobs that set none; bad values are refused.
    let r = put_settings(app, json!({"max_runtime_minutes": 90})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    fake.push_script(Script::stuck());
    let r = post_json(app, SUBMIT, &json!({"config": {"--max_train_steps": 3}})).await;
    let job = common::job(app, r.json()["job_id"].as_str().unwrap()).await;
    assert_eq!(job["max_runtime_minutes"], 90);
    for bad in [json!(0), json!(-5), json!(1.5), json!("10"), json!(20000)] {
        let r = post_json(
            app,
            SUBMIT,
            &json!({"config": {"--max_train_steps": 3}, "max_runtime_minutes": bad}),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_max_runtime");
    }
    let r = put_settings(app, json!({"max_runtime_minutes": "soon"})).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Issue 14, item 6: the Prometheus exposition counts what happened, in the
/// text format a scraper reads, for admins and keys scoped to `metrics.view`.
#[tokio::test]
async fn prometheus_metrics_count_jobs_spend_syncs_and_webhooks() {
    let t = TestApp::builder().start().await;
    let (fake, app) = (&t.fake, &t.app);
    fake.push_script(Script::training(
        5,
        3,
        10,
        Outcome::Succeeded {
            output: json!("https://x/y.tar"),
        },
    ));
    let r = post_json(app, SUBMIT, &json!({"config": {"--max_train_steps": 3}})).await;
    let done = finish(app, fake, r.json()["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    fake.push_script(Script::stuck());
    post_json(app, SUBMIT, &json!({"config": {"--max_train_steps": 3}})).await;
    let r = app
        .request(
            "POST",
            "/api/cloud/webhooks/replicate?job=x",
            &[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", "1"),
                ("webhook-signature", "v1,bad"),
            ],
            "{}",
        )
        .await;
    assert!(r.status >= 400, "{}", r.text());
    let r = app.request("POST", "/api/cloud/jobs/sync", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = app.request("GET", "/api/metrics/prometheus", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("cloudtuner_submits_total"), 2.0);
    assert_eq!(
        value(r#"cloudtuner_jobs_finished_total{provider="replicate",status="completed"}"#),
        1.0
    );
    assert_eq!(
        value(r#"cloudtuner_jobs_active{provider="replicate",status="queued"}"#),
        1.0
    );
    assert_eq!(
        value(r#"cloudtuner_webhooks_total{result="rejected"}"#),
        1.0
    );
    assert_eq!(value("cloudtuner_sync_passes_total"), 1.0);
    assert!(value("cloudtuner_sync_provider_requests_total") >= 1.0);
    let month = value(r#"cloudtuner_spend_usd{window="month"}"#);
    assert!(
        month >= done["cost_usd"].as_f64().unwrap() - 1e-6,
        "{month}"
    );
    assert!(
        text.contains("# TYPE cloudtuner_spend_usd gauge\n"),
        "{text}"
    );

    // A key scoped to metrics.view scrapes; a researcher does not.
    let anon = app.anonymous();
    // Setup is the admin token's to do on a server that has one.
    let r = post_json(
        app,
        "/api/cloud/auth/setup",
        &json!({"username": "root", "password": common::PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let admin = anon.with_header(
        "authorization",
        &format!("Bearer {}", r.json()["token"].as_str().unwrap()),
    );
    let r = post_json(
        &admin,
        "/api/cloud/auth/api-keys",
        &json!({"name": "prometheus", "scoped_permissions": ["metrics.view"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    let scraper = app
        .anonymous()
        .with_header("authorization", &format!("Bearer {key}"));
    let r = scraper
        .request("GET", "/api/metrics/prometheus", &[], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = scraper.request("GET", "/api/cloud/jobs", &[], "").await;
    assert_eq!(r.status, 403, "the key can do nothing else: {}", r.text());
}
