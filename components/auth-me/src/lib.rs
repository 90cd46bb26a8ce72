//! `GET /api/cloud/auth/me`: who the caller is, with effective permissions.

use cloudtuner_spin::{Call, Outcome, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    Ok(json(200, &call.principal()?.to_api()))
}
