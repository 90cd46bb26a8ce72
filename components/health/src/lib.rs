//! `GET /api/cloud/health`: liveness plus a key-value round trip; and the
//! probes for load balancers and SpinKube: `/health/live` (no store access)
//! and `/health/ready` (the store answers and a provider token is set).

use cloudtuner_domain::health;
use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_domain::kernel::kv::KvStore;
use cloudtuner_spin::{AppKv, Outcome, allow_methods, json, provider_settings, respond};
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
    let path = req.path();
    if path.ends_with("/health/live") {
        return Ok(json(200, &health::liveness()));
    }
    // Opened here rather than by `Call`, so a store that cannot be reached
    // (a shared Redis that is down) is reported, not turned into an error.
    let kv = AppKv::open();
    if path.ends_with("/health/ready") {
        let store = kv
            .as_ref()
            .map(|k| k as &dyn KvStore)
            .map_err(|e| e.message.clone());
        let token = kv
            .as_ref()
            .is_ok_and(|k| !provider_settings(k).token.is_empty());
        let report = health::readiness(store, token);
        return Ok(json(if report.healthy { 200 } else { 503 }, &report.body));
    }
    let components = health::component_ids(MANIFEST);
    let report = match kv {
        Ok(kv) => health::check(&kv, kv.backend(), &components, now_ms()),
        // The store this build would have opened (the Fermyon Cloud build's
        // SQLite is not "embedded"), with what failed in the message.
        Err(e) => health::store_unreachable(
            &e.message,
            AppKv::configured_backend(),
            &components,
            now_ms(),
        ),
    };
    Ok(json(if report.healthy { 200 } else { 503 }, &report.body))
}
