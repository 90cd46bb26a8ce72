//! `/api/cloud/auth/api-keys` (alias `/api/auth/api-keys`): `GET` lists the
//! caller's keys (`?all=true` with `api.keys.all`), `POST {"name",
//! "expires_days"?, "scoped_permissions"?}` creates one and shows it once.

use cloudtuner_domain::auth::api_keys;
use cloudtuner_domain::auth::principal::Permission;
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
    let p = call.principal()?;
    if call.is("GET") {
        p.require(Permission::ApiKeysOwn)?;
        let all = call.query_param("all").as_deref() == Some("true");
        let keys = api_keys::list_visible(&call.kv, &p, all)?;
        let items: Vec<Value> = keys.iter().map(|k| k.to_api(call.now_ms)).collect();
        return Ok(json(200, &j!({"api_keys": items, "total": items.len()})));
    }
    let (key, record) = api_keys::create(&call.kv, &p, &call.json()?, call.now_ms)?;
    Ok(json(
        201,
        &j!({
            "key": key,
            "key_info": record.to_api(call.now_ms),
            "message": "Store this key now: it is not shown again.",
        }),
    ))
}
