//! `/api/cloud/notifications`: `GET` your notification URLs, `POST {"url",
//! "events"?, "allow_private"?}` registers one and returns its signing
//! secret once (Standard Webhooks `whsec_...`).

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::notify;
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST"])?;
    let p = call.principal_with(Permission::JobViewOwn)?;
    if call.is("GET") {
        let subs: Vec<Value> = notify::list_for(&call.kv, &p.id)?
            .iter()
            .map(|s| s.to_api())
            .collect();
        return Ok(json(200, &j!({"notifications": subs, "total": subs.len()})));
    }
    let (sub, secret) = notify::create(&call.kv, &p, &call.json()?, call.now_ms)?;
    let mut out = sub.to_api();
    out["secret"] = j!(secret);
    Ok(json(
        201,
        &j!({"notification": out, "message": "Store the secret now: it is not shown again."}),
    ))
}
