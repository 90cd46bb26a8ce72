//! `GET /api/cloud/providers`: the provider list with hardware profiles and prices.

use cloudtuner_domain::providers::provider_list;
use cloudtuner_spin::{SpinKv, json, require_method, require_principal, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET"])?;
        require_principal(&req, &SpinKv::open_default()?)?;
        let configured = variable("replicate_api_token").is_some();
        Ok(json(200, &provider_list(configured)))
    })())
}
