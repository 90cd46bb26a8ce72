//! `POST /api/cloud/auth/logout`: revokes the session this request carries and
//! clears the cookie.

use cloudtuner_domain::auth::login::logout;
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["POST"])?;
    call.principal()?;
    let revoked = match call.credentials().session_token() {
        Some(token) => {
            logout(&call.kv, token)?;
            true
        }
        None => false,
    };
    let mut resp = json(200, &j!({"success": true, "session_revoked": revoked}));
    resp.set_header("set-cookie", call.session_cookie("", 0));
    Ok(resp)
}
