//! `GET /api/metrics?days=N` (alias `/api/cloud/metrics`): totals, jobs by
//! status and cost by day — the caller's own unless `job.view.all`.
//! `GET /api/metrics/prometheus`: installation-wide numbers for a Prometheus
//! scraper (admins, or an API key scoped to `metrics.view`).

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::billing::metrics::{metrics, parse_days};
use cloudtuner_domain::jobs::prometheus::{CONTENT_TYPE, exposition};
use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_spin::{Call, Outcome, json, matched_route, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    if matched_route(&req).ends_with("/prometheus") {
        respond(prometheus(&req))
    } else {
        respond(run(&req))
    }
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    let p = call.principal_with(Permission::JobViewOwn)?;
    let days = parse_days(call.query_param("days").as_deref())?;
    let scope = (!p.has(Permission::JobViewAll)).then_some(p.id.as_str());
    let active = JobStore::new(&call.kv).active_counts(scope)?;
    Ok(json(
        200,
        &metrics(&call.kv, scope, &active, days, call.now_ms)?,
    ))
}

fn prometheus(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    call.principal_with(Permission::MetricsView)?;
    let active = JobStore::new(&call.kv).active_counts(None)?;
    let text = exposition(&call.kv, &active, call.now_ms)?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", CONTENT_TYPE)
        .header("cache-control", "no-store")
        .body(text)
        .build())
}
