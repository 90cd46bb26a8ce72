//! `GET /api/cloud/providers`: the provider list with hardware profiles and this
//! installation's prices (admin overrides applied).

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
    // Configured by the variable or by a token an admin stored in settings.
    let (stored, settings) = call.settings()?;
    let configured = !settings.token.trim().is_empty();
    Ok(json(200, &stored.provider_list(configured)))
}
