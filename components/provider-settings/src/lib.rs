//! `GET/PUT /api/cloud/providers/{provider}` (alias `.../{provider}/config`),
//! admin only: default profile, version override, prices, cost limits, public
//! URL and the write-only Replicate token.

use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::settings::{StoredSettings, update};
use cloudtuner_spin::{
    SpinKv, json, json_body, path_param, require_method, require_permission, require_principal,
    respond, variable,
};
use serde_json::Value;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET", "PUT", "PATCH"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        require_permission(&p, "admin.config")?;
        let provider = path_param(&req, "provider")?;
        if provider != "replicate" {
            return Err(ApiError::new(
                404,
                "unknown_provider",
                format!("no provider {provider:?}; available: replicate"),
            ));
        }
        let variable_token = variable("replicate_api_token").is_some();
        if req.method().to_string() == "GET" {
            return Ok(json(
                200,
                &StoredSettings::load(&kv)?.to_api(variable_token),
            ));
        }
        let patch: Value = json_body(&req)?;
        Ok(json(200, &update(&kv, &patch)?.to_api(variable_token)))
    })())
}
