//! `/api/cloud/auth/users` (admin): `GET` lists users, `POST {"username",
//! "password", "role"}` creates one.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::auth::users::UserStore;
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST"])?;
    let admin = call.principal_with(Permission::AdminUsers)?;
    let users = UserStore::new(&call.kv);
    if call.is("GET") {
        let list: Vec<Value> = users.list()?.iter().map(|u| u.to_api()).collect();
        return Ok(json(200, &j!({"users": list, "total": list.len()})));
    }
    let user = users.create_from_body(&call.json()?, call.now_ms)?;
    users.event(
        &admin.id,
        "user.created",
        &user,
        j!({"role": user.role.as_str()}),
        call.now_ms,
    );
    Ok(json(201, &j!({"success": true, "user": user.to_api()})))
}
