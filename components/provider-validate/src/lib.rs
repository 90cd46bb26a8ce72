//! `GET /api/cloud/providers/replicate/validate`: asks Replicate who the
//! configured token belongs to. The token never leaves this component except in
//! the Authorization header to Replicate.

use cloudtuner_domain::replicate::{ReplicateClient, validation_body};
use cloudtuner_spin::{
    SpinHttp, SpinKv, json, provider_settings, require_method, require_permission,
    require_principal,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let allowed = require_method(&req, &["GET", "POST"])
        .and_then(|()| SpinKv::open_default())
        .and_then(|kv| {
            require_principal(&req, &kv)
                .and_then(|p| require_permission(&p, "admin.config"))
                .map(|()| kv)
        });
    let kv = match allowed {
        Ok(kv) => kv,
        Err(e) => return cloudtuner_spin::error(&e),
    };
    // The token an admin stored in settings wins over the variable, as for jobs.
    let settings = provider_settings(&kv);
    let result = match ReplicateClient::new(&SpinHttp, &settings.api_base, &settings.token) {
        Ok(client) => client.account().await,
        Err(e) => Err(e),
    };
    // An invalid token is an answer, not a failure of this endpoint: 200 with
    // `valid: false` (SimpleTuner's contract), so the UI can show the reason.
    json(200, &validation_body(&result))
}
