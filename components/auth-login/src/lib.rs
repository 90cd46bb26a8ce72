//! `POST /api/cloud/auth/login {"username", "password", "remember_me"?}` → a
//! session token (body, for `Authorization: Bearer`) and an HttpOnly cookie
//! (for the UI). Repeated failures lock the username for a while (429).

use cloudtuner_domain::auth::login::{LoginRequest, login};
use cloudtuner_domain::kernel::clock::rfc3339;
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
    let form = LoginRequest::from_body(&call.json()?);
    let (user, session) = login(
        &call.kv,
        &form.username,
        &form.password,
        form.remember_me,
        call.now_ms,
    )?;
    let ttl = (session.expires_ms - call.now_ms) / 1000;
    let mut resp = json(
        200,
        &j!({
            "success": true,
            "token": session.token,
            "expires_at": rfc3339(session.expires_ms),
            "user": user.to_api(),
        }),
    );
    resp.set_header("set-cookie", call.session_cookie(&session.token, ttl));
    Ok(resp)
}
