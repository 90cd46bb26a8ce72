//! `POST /api/cloud/auth/login {"username", "password", "remember_me"?}` → a
//! session token (body, for `Authorization: Bearer`) and an HttpOnly cookie
//! (for the UI). Repeated failures lock the username for a while (429).

use cloudtuner_domain::clock::{now_ms, rfc3339};
use cloudtuner_domain::users::login;
use cloudtuner_spin::{SpinKv, error, json, json_body, require_method, respond, session_cookie};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["POST"])?;
        let body: Value = json_body(&req)?;
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let remember = body
            .get("remember_me")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let kv = SpinKv::open_default()?;
        let now = now_ms();
        match login(&kv, &field("username"), &field("password"), remember, now) {
            Ok((user, session)) => {
                let ttl = (session.expires_ms - now) / 1000;
                let mut resp = json(
                    200,
                    &j!({
                        "success": true,
                        "token": session.token,
                        "expires_at": rfc3339(session.expires_ms),
                        "user": user.to_api(),
                    }),
                );
                resp.set_header("set-cookie", session_cookie(&req, &session.token, ttl));
                Ok(resp)
            }
            Err(e) if e.status == 429 => {
                let mut resp = error(&e);
                if let Some(secs) = e.details.get("retry_after_secs") {
                    resp.set_header("retry-after", secs.to_string());
                }
                Ok(resp)
            }
            Err(e) => Err(e),
        }
    })())
}
