//! `GET/PUT /api/cloud/providers/{provider}` (alias `.../{provider}/config`),
//! admin only: default profile, version override, prices, cost limits, public
//! URL and the write-only Replicate token; and `PUT/DELETE
//! .../{provider}/token`, the token alone as SimpleTuner's CLI sets it.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::providers::settings::{
    StoredSettings, known_provider, record_change, update,
};
use cloudtuner_domain::providers::token;
use cloudtuner_spin::{Call, Outcome, allow_methods, json, matched_route, respond, variable};
use serde_json::Value;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let token_route = matched_route(req).ends_with("/token");
    let methods: &[&str] = if token_route {
        &["PUT", "DELETE"]
    } else {
        &["GET", "PUT", "PATCH"]
    };
    allow_methods(req, methods)?;
    let call = Call::any_method(req)?;
    let admin = call.principal_with(Permission::AdminConfig)?;
    known_provider(&call.path_param("provider")?)?;
    if token_route {
        let (answer, kind) = if call.is("DELETE") {
            (token::delete(&call.kv)?, "settings.token_deleted")
        } else {
            (token::put(&call.kv, &call.json()?)?, "settings.token_set")
        };
        record_change(&call.kv, &admin.id, kind, &Value::Null, call.now_ms);
        return Ok(json(200, &answer));
    }
    let variable_token = variable("replicate_api_token").is_some();
    let settings = if call.is("GET") {
        StoredSettings::load(&call.kv)?
    } else {
        let patch = call.json()?;
        let saved = update(&call.kv, &patch)?;
        record_change(&call.kv, &admin.id, "settings.changed", &patch, call.now_ms);
        saved
    };
    Ok(json(200, &settings.to_api(variable_token)))
}
