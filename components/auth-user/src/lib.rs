//! `/api/cloud/auth/users/{id}` (admin): `GET`, `PATCH {"role"?, "password"?,
//! "disabled"?}`, `DELETE` (an admin cannot delete or demote themself).

use cloudtuner_domain::auth::Role;
use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::secrets::hash_password;
use cloudtuner_domain::users::{UserStore, validate_password};
use cloudtuner_spin::{
    SpinKv, json, json_body, path_param, require_method, require_permission, require_principal,
    respond,
};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

fn not_found(id: &str) -> ApiError {
    ApiError::new(404, "user_not_found", format!("no user {id}"))
}

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET", "PATCH", "DELETE"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        require_permission(&p, "admin.users")?;
        let id = path_param(&req, "id")?;
        let users = UserStore::new(&kv);
        match req.method().to_string().as_str() {
            "GET" => Ok(json(
                200,
                &j!({"user": users.get(&id)?.ok_or_else(|| not_found(&id))?.to_api()}),
            )),
            "DELETE" => {
                if id == p.id {
                    return Err(ApiError::new(
                        409,
                        "cannot_delete_self",
                        "you cannot delete your own account",
                    ));
                }
                if !users.delete(&id)? {
                    return Err(not_found(&id));
                }
                Ok(json(200, &j!({"success": true, "id": id})))
            }
            _ => {
                let body: Value = json_body(&req)?;
                let obj = body
                    .as_object()
                    .ok_or_else(|| ApiError::bad_request("body must be an object"))?;
                if let Some(k) = obj
                    .keys()
                    .find(|k| !["role", "password", "disabled"].contains(&k.as_str()))
                {
                    return Err(ApiError::bad_request(format!("unknown field {k:?}")));
                }
                let role = match obj.get("role") {
                    None => None,
                    Some(v) => Some(v.as_str().and_then(Role::parse).ok_or_else(|| {
                        ApiError::bad_request("role must be viewer, researcher, lead or admin")
                    })?),
                };
                let password = match obj.get("password") {
                    None => None,
                    Some(v) => {
                        let pw = v
                            .as_str()
                            .ok_or_else(|| ApiError::bad_request("password must be a string"))?;
                        validate_password(pw)?;
                        Some(hash_password(pw))
                    }
                };
                let disabled = match obj.get("disabled") {
                    None => None,
                    Some(v) => Some(
                        v.as_bool()
                            .ok_or_else(|| ApiError::bad_request("disabled must be a boolean"))?,
                    ),
                };
                if id == p.id && (disabled == Some(true) || role.is_some_and(|r| r != Role::Admin))
                {
                    return Err(ApiError::new(
                        409,
                        "cannot_demote_self",
                        "you cannot disable or demote your own account",
                    ));
                }
                let now = now_ms();
                let user = users.update(&id, |u| {
                    if let Some(r) = role {
                        u.role = r;
                    }
                    if let Some(h) = &password {
                        u.password_hash = h.clone();
                    }
                    if let Some(d) = disabled {
                        u.disabled = d;
                    }
                    u.updated_ms = now;
                    Ok(())
                })?;
                Ok(json(200, &j!({"success": true, "user": user.to_api()})))
            }
        }
    })())
}
