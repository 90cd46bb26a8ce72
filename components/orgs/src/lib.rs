//! `/api/orgs` and `/api/orgs/...`: organizations, teams and their members
//! (SimpleTuner's routes), and their quotas. All logic is in
//! `cloudtuner_domain::auth::orgs::api` and `billing::quotas::org_routes`.

use cloudtuner_domain::auth::orgs::api::{OrgRequest, handle as orgs};
use cloudtuner_domain::billing::quotas::org_routes;
use cloudtuner_spin::{Call, Outcome, json, respond};
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
    let body = call.json_or_null()?;
    let method = call.method();
    let rest = req.path().strip_prefix("/api/orgs").unwrap_or_default();
    // An organization's or team's quotas (`auth orgs quotas/set-quota`).
    if let Some(ids) = org_routes::quota_path(rest) {
        let (org, team) = ids?;
        let request = org_routes::OrgQuotaRequest {
            method: &method,
            org,
            team,
            body: &body,
            now_ms: call.now_ms,
        };
        let (status, answer) = org_routes::handle(&call.kv, &p, &request)?;
        return Ok(json(status, &answer));
    }
    let request = OrgRequest {
        method: &method,
        rest,
        include_inactive: call
            .query_param("include_inactive")
            .is_some_and(|v| matches!(v.as_str(), "true" | "1")),
        body,
        now_ms: call.now_ms,
    };
    let (status, answer) = orgs(&call.kv, &p, &request)?;
    Ok(json(status, &answer))
}
