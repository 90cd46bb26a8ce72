//! `POST /api/cloud/cost-estimate {"config" | "config_name_to_load",
//! "hardware_profile"?}`: an estimate with a range, from max steps and this
//! installation's seconds/step for the profile (or published typical figures).
//! With `dataloader_config`, also the upload summary (datasets, files, bytes).

use std::path::Path;

use cloudtuner_domain::jobs::datasets::GUEST_MOUNT;
use cloudtuner_domain::jobs::estimate::cost_estimate;
use cloudtuner_spin::{Call, Outcome, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["POST"])?;
    let p = call.principal()?;
    let body = call.json()?;
    let (stored, _) = call.settings()?;
    let estimate = cost_estimate(&call.kv, &p, &stored, Path::new(GUEST_MOUNT), &body)?;
    Ok(json(200, &estimate))
}
