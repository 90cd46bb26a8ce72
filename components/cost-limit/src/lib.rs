//! `GET /api/cloud/metrics/cost-limit` (alias `/api/cloud/cost-limit/status`):
//! the configured limit and the real spend of the current window.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::costs::limit_status;
use cloudtuner_spin::{SpinKv, json, require_method, require_principal, respond, stored_settings};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        let s = stored_settings(&kv)?;
        Ok(json(200, &limit_status(&kv, &s, &p.id, now_ms())?))
    })())
}
