//! `GET /api/cloud/providers`: the provider list with hardware profiles and prices.

use cloudtuner_domain::providers::provider_list;
use cloudtuner_spin::{json, require_method, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET"])?;
        let configured = variable("replicate_api_token").is_some();
        Ok(json(200, &provider_list(configured)))
    })())
}
