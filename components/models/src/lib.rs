//! `GET /api/cloud/models`: SimpleTuner's model families and flavours, each
//! flavour's base model and the training defaults the UI starts from (the
//! same catalog a submit is checked against).

use cloudtuner_domain::jobs::models;
use cloudtuner_spin::{Call, Outcome, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    call.principal()?;
    Ok(json(200, &models::to_api()))
}
