//! `GET /api/cloud/configs`: the caller's saved training configs.

use cloudtuner_domain::configs::ConfigStore;
use cloudtuner_spin::{
    SpinKv, json, require_method, require_permission, require_principal, respond,
};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET"])?;
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        require_permission(&principal, "config.view")?;
        let configs = ConfigStore::new(&kv).list(&principal.id)?;
        let items: Vec<_> = configs.iter().map(|c| c.to_api()).collect();
        Ok(json(200, &j!({"configs": items, "total": items.len()})))
    })())
}
