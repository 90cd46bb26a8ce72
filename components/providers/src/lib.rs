//! `GET /api/cloud/providers`: the provider list with hardware profiles and this
//! installation's prices (admin overrides applied).

use cloudtuner_spin::{
    SpinKv, json, require_method, require_principal, respond, stored_and_provider_settings,
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
        let (stored, settings) = stored_and_provider_settings(&kv)?;
        let configured = !settings.token.trim().is_empty();
        Ok(json(200, &stored.provider_list(configured)))
    })())
}
