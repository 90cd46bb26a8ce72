//! `GET /api/cloud/health`: liveness plus a key-value round trip.

use cloudtuner_domain::health;
use cloudtuner_spin::{Call, Outcome, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

/// The component ids of this app, read from the manifest at build time.
const MANIFEST: &str = include_str!("../../../spin.toml");

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "HEAD"])?;
    let components = health::component_ids(MANIFEST);
    let report = health::check(&call.kv, &components, call.now_ms);
    Ok(json(if report.healthy { 200 } else { 503 }, &report.body))
}
