//! `GET/PUT/DELETE /api/cloud/configs/{name}`: one saved training config
//! (`config` + `dataloader_config`) that submit can load by name; and
//! `GET /api/configs/{name}`, the same config in SimpleTuner's shape.

use cloudtuner_domain::jobs::configs::{ConfigStore, not_found, validate_name};
use cloudtuner_spin::{Call, Outcome, json, matched_route, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let simpletuner_shape = matched_route(req).starts_with("/api/configs/");
    let methods: &[&str] = if simpletuner_shape {
        &["GET"]
    } else {
        &["GET", "PUT", "DELETE"]
    };
    let call = Call::new(req, methods)?;
    let principal = call.principal()?;
    let name = call.path_param("name")?;
    validate_name(&name)?;
    let store = ConfigStore::new(&call.kv);
    let method = call.method();
    principal.require(store.permission_for(&method, &principal.id, &name)?)?;
    match method.as_str() {
        "GET" if simpletuner_shape => Ok(json(
            200,
            &store.load(&principal.id, &name)?.to_simpletuner(),
        )),
        "GET" => Ok(json(
            200,
            &j!({"config": store.load(&principal.id, &name)?.to_api()}),
        )),
        "DELETE" => {
            if !store.delete(&principal.id, &name)? {
                return Err(not_found(&name));
            }
            Ok(json(200, &j!({"success": true, "name": name})))
        }
        _ => {
            let (saved, created) =
                store.put_body(&principal.id, &name, &call.json()?, call.now_ms)?;
            Ok(json(
                if created { 201 } else { 200 },
                &j!({"config": saved.to_api(), "created": created}),
            ))
        }
    }
}
