//! `GET /api/cloud/health`: liveness plus a key-value round trip.

use cloudtuner_domain::health;
use cloudtuner_spin::{SpinKv, json, require_method, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// The component ids of this app, read from the manifest at build time.
const MANIFEST: &str = include_str!("../../../spin.toml");

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET", "HEAD"])?;
        let kv = SpinKv::open_default()?;
        let components = cloudtuner_domain::health::component_ids(MANIFEST);
        let report = health::check(&kv, &components, cloudtuner_spin::now_unix_ms());
        Ok(json(if report.healthy { 200 } else { 503 }, &report.body))
    })())
}
