//! `GET /api/cloud/replicate/status`: Replicate's public status page summary
//! (what `simpletuner cloud status` shows under "Replicate Status"), for any
//! signed-in caller. The page's origin is the `replicate_status_base`
//! variable, the one outbound host this component may reach.

use cloudtuner_domain::providers::status_page::{DEFAULT_BASE, summary};
use cloudtuner_spin::{Call, Outcome, background_http, json, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    call.principal()?;
    let base = variable("replicate_status_base").unwrap_or_else(|| DEFAULT_BASE.into());
    Ok(json(200, &summary(&background_http(), &base).await))
}
