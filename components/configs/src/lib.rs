//! `GET /api/cloud/configs`: the caller's saved training configs.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::jobs::configs::ConfigStore;
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    let principal = call.principal_with(Permission::ConfigView)?;
    let configs = ConfigStore::new(&call.kv).list(&principal.id)?;
    let items: Vec<_> = configs.iter().map(|c| c.to_api()).collect();
    Ok(json(200, &j!({"configs": items, "total": items.len()})))
}
