//! `GET /api/cloud/metrics/cost-limit` (alias `/api/cloud/cost-limit/status`):
//! the configured limit and the real spend of the current window.

use cloudtuner_domain::billing::limits::limit_status;
use cloudtuner_spin::{Call, Outcome, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    let p = call.principal()?;
    let (stored, _) = call.settings()?;
    Ok(json(
        200,
        &limit_status(&call.kv, &stored, &p.id, call.now_ms)?,
    ))
}
