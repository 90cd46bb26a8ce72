//! `/api/cloud/notifications`: `GET` your notification URLs, `POST {"url",
//! "events"?, "allow_private"?}` registers one and returns its signing
//! secret once (Standard Webhooks `whsec_...`).

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::notify;
use cloudtuner_spin::{
    SpinKv, json, json_body, require_method, require_permission, require_principal, respond,
};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET", "POST"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        require_permission(&p, "job.view.own")?;
        if req.method().to_string() == "GET" {
            let subs: Vec<Value> = notify::list_for(&kv, &p.id)?
                .iter()
                .map(|s| s.to_api())
                .collect();
            return Ok(json(200, &j!({"notifications": subs, "total": subs.len()})));
        }
        let body: Value = json_body(&req)?;
        let (sub, secret) = notify::create(&kv, &p, &body, now_ms())?;
        let mut out = sub.to_api();
        out["secret"] = j!(secret);
        Ok(json(
            201,
            &j!({"notification": out, "message": "Store the secret now: it is not shown again."}),
        ))
    })())
}
