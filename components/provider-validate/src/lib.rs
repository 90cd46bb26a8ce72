//! `GET /api/cloud/providers/replicate/validate` (and SimpleTuner's CLI name
//! for it, `/api/cloud/replicate/validate`): asks Replicate who the
//! configured token belongs to. The token never leaves this component except in
//! the Authorization header to Replicate.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::providers::replicate::validate;
use cloudtuner_spin::{Call, Outcome, Purpose, http, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST"])?;
    call.principal_with(Permission::AdminConfig)?;
    // The token an admin stored in settings wins over the variable, as for jobs.
    let settings = call.provider_settings();
    // An invalid token is an answer, not a failure of this endpoint: 200 with
    // `valid: false` (SimpleTuner's contract), so the UI can show the reason.
    Ok(json(200, &validate(&http(Purpose::User)?, &settings).await))
}
