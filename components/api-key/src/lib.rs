//! `DELETE /api/cloud/auth/api-keys/{id}` (alias `/api/auth/api-keys/{id}`):
//! revokes a key (own with `api.keys.own`, any with `api.keys.all`).

use cloudtuner_domain::auth::api_keys;
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["DELETE"])?;
    let p = call.principal()?;
    let key = api_keys::revoke(&call.kv, &p, &call.path_param("id")?)?;
    Ok(json(
        200,
        &j!({"success": true, "key_info": key.to_api(call.now_ms)}),
    ))
}
