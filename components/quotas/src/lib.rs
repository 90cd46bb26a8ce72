//! `/api/quotas` and `/api/quotas/...`: quotas, usage and a submit's impact
//! (SimpleTuner's routes). All logic is in `cloudtuner_domain::billing::quotas::api`.

use cloudtuner_domain::billing::quotas::api::{QuotaRequest, handle as quotas};
use cloudtuner_spin::{Call, Outcome, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST", "DELETE"])?;
    let p = call.principal()?;
    // SimpleTuner's pre-submit modal posts cost-estimate with no body.
    let body = call.json_or_null()?;
    let method = call.method();
    let request = QuotaRequest {
        method: &method,
        rest: req.path().strip_prefix("/api/quotas").unwrap_or_default(),
        body,
        estimated_cost: call.query_param("estimated_cost"),
        now_ms: call.now_ms,
    };
    let (status, answer) = quotas(&call.kv, &p, &request)?;
    Ok(json(status, &answer))
}
