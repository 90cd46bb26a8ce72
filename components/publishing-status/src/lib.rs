//! `GET /api/cloud/publishing/status[?config=<saved config>]`: which delivery
//! path (Hub, external S3, this server, Replicate only) a submit would use, and why.

use cloudtuner_domain::jobs::configs::ConfigStore;
use cloudtuner_domain::jobs::delivery::status;
use cloudtuner_spin::{Call, Outcome, json, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    let principal = call.principal()?;
    let name = call.query_param("config");
    let config = match &name {
        None => None,
        Some(name) => Some(ConfigStore::new(&call.kv).load(&principal.id, name)?.config),
    };
    let public_url = call.provider_settings().public_url;
    let hf_token_set = variable("hf_token").is_some();
    let mut body = status(config.as_ref(), hf_token_set, public_url.as_deref());
    body["config_name"] = serde_json::json!(name);
    Ok(json(200, &body))
}
