//! `/api/cloud/auth/users/{id}` (admin): `GET`, `PATCH {"role"?, "password"?,
//! "disabled"?}`, `DELETE` (an admin cannot delete or demote themself).

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::auth::users::UserStore;
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "PATCH", "DELETE"])?;
    let p = call.principal_with(Permission::AdminUsers)?;
    let id = call.path_param("id")?;
    let users = UserStore::new(&call.kv);
    match call.method().as_str() {
        "GET" => Ok(json(200, &j!({"user": users.load(&id)?.to_api()}))),
        "DELETE" => {
            users.remove(&p.id, &id)?;
            Ok(json(200, &j!({"success": true, "id": id})))
        }
        _ => {
            let body = call.json()?;
            let creds = call.credentials();
            let user = users.patch(&p.id, &id, &body, creds.session_token(), call.now_ms)?;
            Ok(json(200, &j!({"success": true, "user": user.to_api()})))
        }
    }
}
