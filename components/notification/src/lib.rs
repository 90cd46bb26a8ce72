//! `DELETE /api/cloud/notifications/{id}`: stop sending to a URL.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::notify;
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
    let p = call.principal_with(Permission::JobViewOwn)?;
    let id = call.path_param("id")?;
    notify::delete(&call.kv, &p, &id)?;
    Ok(json(200, &j!({"success": true, "id": id})))
}
