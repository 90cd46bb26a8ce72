//! `POST /api/cloud/auth/logout`: revokes the session this request carries and
//! clears the cookie.

use cloudtuner_domain::users::logout;
use cloudtuner_spin::{
    SpinKv, credentials, json, require_method, require_principal, respond, session_cookie,
};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["POST"])?;
        let kv = SpinKv::open_default()?;
        require_principal(&req, &kv)?;
        let revoked = match credentials(&req).session_token() {
            Some(token) => {
                logout(&kv, token)?;
                true
            }
            None => false,
        };
        let mut resp = json(200, &j!({"success": true, "session_revoked": revoked}));
        resp.set_header("set-cookie", session_cookie(&req, "", 0));
        Ok(resp)
    })())
}
