//! `GET /api/cloud/auth/me`: who the caller is, with effective permissions.

use cloudtuner_domain::auth::KNOWN_PERMISSIONS;
use cloudtuner_spin::{SpinKv, json, require_method, require_principal, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        let effective: Vec<&str> = KNOWN_PERMISSIONS
            .iter()
            .copied()
            .filter(|perm| p.has(perm))
            .collect();
        Ok(json(
            200,
            &j!({
                "id": p.id,
                "username": p.username,
                "role": p.role.as_str(),
                "is_admin": p.is_admin(),
                "auth_method": p.method,
                "scoped_permissions": p.scopes,
                "permissions": effective,
            }),
        ))
    })())
}
