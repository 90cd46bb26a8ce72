//! `GET/PUT /api/cloud/providers/{provider}` (alias `.../{provider}/config`),
//! admin only: default profile, version override, prices, cost limits, public
//! URL and the write-only Replicate token.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::providers::settings::{StoredSettings, known_provider, update};
use cloudtuner_spin::{Call, Outcome, json, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "PUT", "PATCH"])?;
    call.principal_with(Permission::AdminConfig)?;
    known_provider(&call.path_param("provider")?)?;
    let variable_token = variable("replicate_api_token").is_some();
    let settings = if call.is("GET") {
        StoredSettings::load(&call.kv)?
    } else {
        update(&call.kv, &call.json()?)?
    };
    Ok(json(200, &settings.to_api(variable_token)))
}
