//! `/api/cloud/auth/setup`: `GET` says whether the first admin is still to be
//! created; `POST {"username", "password"}` creates it exactly once (409 after)
//! and signs it in. With an `admin_token` configured, only a `POST` carrying it
//! (`Authorization: Bearer <admin_token>`) may (403 otherwise). SimpleTuner's
//! CLI names the same things `GET /api/auth/setup/status`,
//! `POST /api/auth/setup/first-admin` (its `email` and `display_name` are not
//! kept: users here have neither) and `GET /api/users/meta/auth-status`.

use cloudtuner_domain::auth::login::{LoginRequest, login};
use cloudtuner_domain::auth::sessions::SESSION_TTL_MS;
use cloudtuner_domain::auth::setup_status;
use cloudtuner_domain::auth::users::UserStore;
use cloudtuner_spin::{Call, Outcome, json, matched_route, respond, variable};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let route = matched_route(req);
    let methods: &[&str] = match route.as_str() {
        "/api/auth/setup/status" | "/api/users/meta/auth-status" => &["GET"],
        "/api/auth/setup/first-admin" => &["POST"],
        _ => &["GET", "POST"],
    };
    let call = Call::new(req, methods)?;
    let users = UserStore::new(&call.kv);
    if route == "/api/users/meta/auth-status" {
        return Ok(json(200, &setup_status::auth_status(&users)?));
    }
    let admin_token = variable("admin_token");
    if call.is("GET") {
        return Ok(json(
            200,
            &setup_status::setup(&users, admin_token.as_deref())?,
        ));
    }
    // Once done, setup answers 409 to everyone, as before.
    if users.needs_setup()? {
        setup_status::check_may_set_up(admin_token.as_deref(), &call.credentials())?;
    }
    let form = LoginRequest::from_body(&call.json()?);
    let admin = users.setup_first_admin(&form.username, &form.password, call.now_ms)?;
    let (_, session) = login(&call.kv, &form.username, &form.password, false, call.now_ms)?;
    let mut resp = json(
        201,
        &j!({
            "success": true,
            "user": admin.to_api(),
            "token": session.token,
            "expires_in": SESSION_TTL_MS / 1000,
        }),
    );
    let cookie = call.session_cookie(&session.token, SESSION_TTL_MS / 1000);
    resp.set_header("set-cookie", cookie);
    Ok(resp)
}
