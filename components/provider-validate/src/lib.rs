//! `GET /api/cloud/providers/replicate/validate`: asks Replicate who the
//! configured token belongs to. The token never leaves this component except in
//! the Authorization header to Replicate.

use cloudtuner_domain::replicate::{DEFAULT_API_BASE, ReplicateClient, validation_body};
use cloudtuner_spin::{
    SpinHttp, SpinKv, json, require_method, require_permission, require_principal, variable,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let allowed = require_method(&req, &["GET", "POST"])
        .and_then(|()| SpinKv::open_default())
        .and_then(|kv| require_principal(&req, &kv))
        .and_then(|p| require_permission(&p, "admin.config"));
    if let Err(e) = allowed {
        return cloudtuner_spin::error(&e);
    }
    let token = variable("replicate_api_token").unwrap_or_default();
    let base = variable("replicate_api_base").unwrap_or_else(|| DEFAULT_API_BASE.to_string());
    let result = match ReplicateClient::new(&SpinHttp, &base, &token) {
        Ok(client) => client.account().await,
        Err(e) => Err(e),
    };
    // An invalid token is an answer, not a failure of this endpoint: 200 with
    // `valid: false` (SimpleTuner's contract), so the UI can show the reason.
    json(200, &validation_body(&result))
}
