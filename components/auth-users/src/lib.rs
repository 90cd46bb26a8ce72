//! `/api/cloud/auth/users` (admin): `GET` lists users, `POST {"username",
//! "password", "role"}` creates one.

use cloudtuner_domain::auth::Role;
use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::users::UserStore;
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
        require_permission(&p, "admin.users")?;
        let users = UserStore::new(&kv);
        if req.method().to_string() == "GET" {
            let list: Vec<Value> = users.list()?.iter().map(|u| u.to_api()).collect();
            return Ok(json(200, &j!({"users": list, "total": list.len()})));
        }
        let body: Value = json_body(&req)?;
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let role_name = body
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("researcher");
        let role = Role::parse(role_name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown role {role_name:?}; use viewer, researcher, lead or admin"
            ))
        })?;
        let user = users.create(&field("username"), &field("password"), role, now_ms())?;
        Ok(json(201, &j!({"success": true, "user": user.to_api()})))
    })())
}
