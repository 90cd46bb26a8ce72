//! `/api/cloud/auth/setup`: `GET` says whether the first admin is still to be
//! created; `POST {"username", "password"}` creates it exactly once (409 after)
//! and signs it in.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::users::{SESSION_TTL_MS, UserStore, login};
use cloudtuner_spin::{SpinKv, json, json_body, require_method, respond, session_cookie};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET", "POST"])?;
        let kv = SpinKv::open_default()?;
        let users = UserStore::new(&kv);
        if req.method().to_string() == "GET" {
            let needs = users.needs_setup()?;
            return Ok(json(200, &j!({"needs_setup": needs, "has_admin": !needs})));
        }
        let body: Value = json_body(&req)?;
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (username, password) = (field("username"), field("password"));
        let now = now_ms();
        let admin = users.setup_first_admin(&username, &password, now)?;
        let (_, session) = login(&kv, &username, &password, false, now)?;
        let mut resp = json(
            201,
            &j!({
                "success": true,
                "user": admin.to_api(),
                "token": session.token,
                "expires_in": SESSION_TTL_MS / 1000,
            }),
        );
        resp.set_header(
            "set-cookie",
            session_cookie(&req, &session.token, SESSION_TTL_MS / 1000),
        );
        Ok(resp)
    })())
}
