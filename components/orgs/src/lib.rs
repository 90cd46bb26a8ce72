//! `/api/orgs` and `/api/orgs/...`: organizations, teams and their members
//! (SimpleTuner's routes). All logic is in `cloudtuner_domain::auth::orgs::api`.

use cloudtuner_domain::auth::orgs::api::{OrgRequest, handle as orgs};
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::Value;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST", "PATCH", "DELETE"])?;
    let p = call.principal()?;
    // SimpleTuner's CLI sends no body with `add-member` (and a JSON content type).
    let body = if call.body().iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        call.json()?
    };
    let method = call.method();
    let request = OrgRequest {
        method: &method,
        rest: req.path().strip_prefix("/api/orgs").unwrap_or_default(),
        include_inactive: call
            .query_param("include_inactive")
            .is_some_and(|v| matches!(v.as_str(), "true" | "1")),
        body,
        now_ms: call.now_ms,
    };
    let (status, answer) = orgs(&call.kv, &p, &request)?;
    Ok(json(status, &answer))
}
