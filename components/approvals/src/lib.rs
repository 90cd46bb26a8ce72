//! `/api/approvals` and `/api/approvals/...`: approval rules and the
//! requests they open (SimpleTuner's routes). All logic is in
//! `cloudtuner_domain::jobs::approvals::api`. Approving runs the held submit
//! as the submitter, so this component has the submit's inputs (provider
//! settings, outbound HTTP to Replicate, the read-only `/datasets` mount).

use cloudtuner_domain::jobs::approvals::api::{
    ApprovalsRequest, handle as approvals, needs_submit,
};
use cloudtuner_domain::jobs::submit::SubmitContext;
use cloudtuner_spin::{BudgetedHttp, Call, Outcome, SubmitInputs, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST", "PATCH", "PUT", "DELETE"])?;
    let p = call.principal()?;
    // SimpleTuner's CLI approves with no body when no reason is given.
    let body = call.json_or_null()?;
    let method = call.method();
    let rest = req
        .path()
        .strip_prefix("/api/approvals")
        .unwrap_or_default();
    let query = call.query();
    let request = ApprovalsRequest {
        method: &method,
        rest,
        query: &query,
        body,
        now_ms: call.now_ms,
    };
    // Only an approval runs a submit: other routes need no provider inputs
    // (and keep working when the hour's outbound budget is spent).
    let (status, answer) = if needs_submit(&method, rest) {
        let inputs = SubmitInputs::load(&call)?;
        let ctx = inputs.context(&call, &p);
        approvals(&call.kv, &p, &request, Some(&ctx)).await?
    } else {
        approvals(&call.kv, &p, &request, None::<&SubmitContext<BudgetedHttp>>).await?
    };
    Ok(json(status, &answer))
}
