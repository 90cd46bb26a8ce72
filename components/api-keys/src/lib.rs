//! `/api/cloud/auth/api-keys` (alias `/api/auth/api-keys`): `GET` lists the
//! caller's keys (`?all=true` with `api.keys.all`), `POST {"name",
//! "expires_days"?, "scoped_permissions"?}` creates one and shows it once.

use cloudtuner_domain::apikeys::{self, ApiKey};
use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::http::param;
use cloudtuner_domain::users::UserStore;
use cloudtuner_spin::{
    SpinKv, json, json_body, query, require_method, require_permission, require_principal, respond,
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
        let now = now_ms();
        if req.method().to_string() == "GET" {
            require_permission(&p, "api.keys.own")?;
            let all = param(&query(&req), "all") == Some("true");
            let keys: Vec<ApiKey> = if all {
                require_permission(&p, "api.keys.all")?;
                let mut keys = Vec::new();
                for u in UserStore::new(&kv).list()? {
                    keys.extend(apikeys::list_for(&kv, &u.id)?);
                }
                keys
            } else {
                apikeys::list_for(&kv, &p.id)?
            };
            let items: Vec<Value> = keys.iter().map(|k| k.to_api(now)).collect();
            return Ok(json(200, &j!({"api_keys": items, "total": items.len()})));
        }
        let body: Value = json_body(&req)?;
        let (key, record) = apikeys::create(&kv, &p, &body, now)?;
        Ok(json(
            201,
            &j!({
                "key": key,
                "key_info": record.to_api(now),
                "message": "Store this key now: it is not shown again.",
            }),
        ))
    })())
}
