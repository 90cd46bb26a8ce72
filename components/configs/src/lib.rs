//! `GET /api/cloud/configs`: the caller's saved training configs.

use cloudtuner_domain::configs::ConfigStore;
use cloudtuner_domain::error::ApiError;
use cloudtuner_spin::{SpinKv, json, principal, require_method, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET"])?;
        let principal = principal(&req)?;
        if !principal.has("config.view") {
            return Err(ApiError::new(
                403,
                "permission_denied",
                "Permission denied: config.view",
            ));
        }
        let kv = SpinKv::open_default()?;
        let configs = ConfigStore::new(&kv).list(&principal.id)?;
        let items: Vec<_> = configs.iter().map(|c| c.to_api()).collect();
        Ok(json(200, &j!({"configs": items, "total": items.len()})))
    })())
}
