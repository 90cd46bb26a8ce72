//! `DELETE /api/cloud/notifications/{id}`: stop sending to a URL.

use cloudtuner_domain::notify;
use cloudtuner_spin::{
    SpinKv, json, path_param, require_method, require_permission, require_principal, respond,
};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["DELETE"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        require_permission(&p, "job.view.own")?;
        let id = path_param(&req, "id")?;
        notify::delete(&kv, &p, &id)?;
        Ok(json(200, &j!({"success": true, "id": id})))
    })())
}
