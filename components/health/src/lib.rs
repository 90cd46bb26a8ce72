//! `GET /api/cloud/health`: liveness plus a key-value round trip.

use cloudtuner_domain::health;
use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_spin::{AppKv, Outcome, allow_methods, json, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

/// The component ids of this app, read from the manifest at build time.
const MANIFEST: &str = include_str!("../../../spin.toml");

fn run(req: &Request) -> Outcome {
    allow_methods(req, &["GET", "HEAD"])?;
    let components = health::component_ids(MANIFEST);
    // Opened here rather than by `Call`, so a store that cannot be reached
    // (a shared Redis that is down) is reported as unhealthy, not as an error.
    let report = match AppKv::open() {
        Ok(kv) => health::check(&kv, kv.backend(), &components, now_ms()),
        Err(e) => {
            let store = if variable("redis_url").is_some() {
                "redis"
            } else {
                "embedded"
            };
            health::store_unreachable(&e.message, store, &components, now_ms())
        }
    };
    Ok(json(if report.healthy { 200 } else { 503 }, &report.body))
}
