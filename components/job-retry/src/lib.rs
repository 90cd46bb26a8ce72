//! `POST /api/cloud/jobs/{id}/retry`: re-run a failed or cancelled job as its
//! next attempt (same config snapshot, datasets, hardware and delivery).
//! Local datasets are read again from the read-only `/datasets` mount. A
//! re-run goes through the same approval gate as a submit.

use cloudtuner_domain::jobs::approvals::gate_retry;
use cloudtuner_domain::jobs::retry::retry;
use cloudtuner_spin::{Call, Outcome, SubmitInputs, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["POST"])?;
    let id = call.path_param("id")?;
    let principal = call.principal()?;
    let inputs = SubmitInputs::load(&call)?;
    let key = call.header("idempotency-key");
    let ctx = inputs.context(&call, &principal);
    if let Some(held) = gate_retry(&ctx, &id, key.as_deref(), call.body())? {
        return Ok(json(held.status, &held.body));
    }
    let out = retry(&ctx, &id, key.as_deref(), call.body()).await;
    Ok(json(out.status, &out.body))
}
