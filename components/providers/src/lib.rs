//! `GET /api/cloud/providers`: the provider list with hardware profiles and prices.

use cloudtuner_domain::providers::provider_list;
use cloudtuner_spin::{
    SpinKv, json, provider_settings, require_method, require_principal, respond,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET"])?;
        let kv = SpinKv::open_default()?;
        require_principal(&req, &kv)?;
        // Configured by the variable or by a token an admin stored in settings.
        let configured = !provider_settings(&kv).token.trim().is_empty();
        Ok(json(200, &provider_list(configured)))
    })())
}
