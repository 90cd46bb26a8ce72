//! The scheduled sync, with three entry points: `POST /api/cloud/jobs/sync`
//! (a user with `job.sync`), the sync token (`sync_token`, for schedulers
//! that cannot sign in: `GET|POST /api/cloud/jobs/sync?token=<sync_token>`
//! as Akamai's `spin aka cron` sends it, or `Authorization: Bearer
//! <sync_token>` from CI), and the `fermyon:spin-cron` export
//! `handle-cron-event` (for `spin up -f spin-cron.toml` with the trigger-cron
//! plugin). A pass takes what the hour's outbound budget leaves background
//! work (`outbound_requests_per_hour`) and reports it.

use cloudtuner_domain::auth::credentials::{HOW_TO_AUTHENTICATE, unauthorized};
use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::jobs::approvals::decide::expire_due;
use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_domain::jobs::sync::{self, scheduled_pass};
use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::sync_token::{self, Presented};
use cloudtuner_spin::{AppKv, Call, Outcome, background_http, json, respond, variable};
use serde_json::Value;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST"])?;
    match presented_token(&call) {
        Presented::Valid => {}
        // A wrong token is refused as a missing credential is (no hint
        // whether a token is configured).
        Presented::Wrong => return Err(unauthorized(HOW_TO_AUTHENTICATE)),
        // A GET runs the sync only with the token: a user's GET (a link, a
        // prefetch, a cookie sent cross-site) must not start one.
        Presented::None if call.is("GET") => {
            return Err(unauthorized(
                "GET runs the sync only with the sync token (?token=<sync_token>); users POST",
            ));
        }
        Presented::None => {
            call.principal_with(Permission::JobSync)?;
        }
    }
    Ok(json(200, &pass(&call.kv).await))
}

/// What the request shows of the sync token (never logged, never echoed).
fn presented_token(call: &Call) -> Presented {
    let raw = variable("sync_token");
    let configured = sync_token::configured(raw.as_deref());
    if configured.is_none() && raw.is_some() {
        eprintln!(
            "sync: sync_token is shorter than {} characters and is ignored",
            sync_token::MIN_LEN
        );
    }
    sync_token::check(
        configured,
        call.query_param("token").as_deref(),
        call.credentials().bearer.as_deref(),
    )
}

/// One sync pass over the store, from any entry point: the pass's request
/// budget is the smaller of `sync_request_budget` and what the hour's
/// outbound budget leaves background work; the report says which.
async fn pass(kv: &AppKv) -> Value {
    let settings = cloudtuner_spin::provider_settings(kv);
    let retention_days = variable("retention_days");
    let configured = sync::budget(variable("sync_request_budget").as_deref());
    let http = background_http();
    let now = now_ms();
    let budget = http
        .remaining(now)
        .map_or(configured, |left| configured.min(left as usize));
    let store = JobStore::new(kv);
    let report = scheduled_pass(
        &store,
        &http,
        &settings,
        retention_days.as_deref(),
        budget,
        now,
    )
    .await;
    let mut body = report.to_json();
    // Held submits past their time are expired here too (issue 27, item 4).
    body["approvals_expired"] = expire_due(kv, now).unwrap_or(0).into();
    if let Some(usage) = http.usage(now_ms()) {
        let mut outbound = usage.to_json();
        outbound["limited_pass"] = (budget < configured).into();
        body["outbound_budget"] = outbound;
    }
    body
}

/// The cron entry point has no request: it opens the store itself.
async fn cron_pass() -> Result<Value, ApiError> {
    Ok(pass(&AppKv::open()?).await)
}

mod cron {
    wit_bindgen::generate!({
        path: "../../wit/spin-cron.wit",
        world: "spin-cron",
    });

    struct Cron;

    impl Guest for Cron {
        fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
            match spin_sdk::http::run(super::cron_pass()) {
                Ok(report) => {
                    println!("sync: {report}");
                    Ok(())
                }
                Err(e) => Err(Error::Other(e.message)),
            }
        }
    }

    export!(Cron);
}
