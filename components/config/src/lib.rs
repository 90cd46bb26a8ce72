//! `GET/PUT/DELETE /api/cloud/configs/{name}`: one saved training config
//! (`config` + `dataloader_config`) that submit can load by name.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::configs::{ConfigStore, validate_name};
use cloudtuner_domain::error::ApiError;
use cloudtuner_spin::{
    SpinKv, json, json_body, path_param, require_method, require_permission, require_principal,
    respond,
};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        "config_not_found",
        format!("no saved config named {name:?}"),
    )
}

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET", "PUT", "DELETE"])?;
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        let name = path_param(&req, "name")?;
        validate_name(&name)?;
        let store = ConfigStore::new(&kv);
        let method = req.method().to_string();
        // Configs live in the caller's own namespace: `.own` permissions.
        let needed = match method.as_str() {
            "GET" => "config.view",
            "DELETE" => "config.delete.own",
            _ if store.get(&principal.id, &name)?.is_some() => "config.edit.own",
            _ => "config.create",
        };
        require_permission(&principal, needed)?;
        match method.as_str() {
            "GET" => {
                let c = store
                    .get(&principal.id, &name)?
                    .ok_or_else(|| not_found(&name))?;
                Ok(json(200, &j!({"config": c.to_api()})))
            }
            "DELETE" => {
                if !store.delete(&principal.id, &name)? {
                    return Err(not_found(&name));
                }
                Ok(json(200, &j!({"success": true, "name": name})))
            }
            _ => {
                let body: Value = json_body(&req)?;
                let obj = body.as_object().ok_or_else(|| {
                    ApiError::new(400, "invalid_json", "body must be a JSON object")
                })?;
                if let Some(k) = obj
                    .keys()
                    .find(|k| !["config", "dataloader_config"].contains(&k.as_str()))
                {
                    return Err(ApiError::bad_request(format!(
                        "unknown field {k:?}; expected config, dataloader_config"
                    )));
                }
                let config = obj.get("config").cloned().unwrap_or(Value::Null);
                let dataloader = obj
                    .get("dataloader_config")
                    .cloned()
                    .unwrap_or_else(|| j!([]));
                let (saved, created) =
                    store.put(&principal.id, &name, config, dataloader, now_ms())?;
                Ok(json(
                    if created { 201 } else { 200 },
                    &j!({"config": saved.to_api(), "created": created}),
                ))
            }
        }
    })())
}
