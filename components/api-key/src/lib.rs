//! `DELETE /api/cloud/auth/api-keys/{id}` (alias `/api/auth/api-keys/{id}`):
//! revokes a key (own with `api.keys.own`, any with `api.keys.all`).

use cloudtuner_domain::apikeys;
use cloudtuner_domain::clock::now_ms;
use cloudtuner_spin::{SpinKv, json, path_param, require_method, require_principal, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["DELETE"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        let id = path_param(&req, "id")?;
        let key = apikeys::revoke(&kv, &p, &id)?;
        Ok(json(
            200,
            &j!({"success": true, "key_info": key.to_api(now_ms())}),
        ))
    })())
}
