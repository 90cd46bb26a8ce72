//! `POST /api/cloud/jobs/{id}/retry`: re-run a failed or cancelled job as its
//! next attempt (same config snapshot, datasets, hardware and delivery).
//! Local datasets are read again from the read-only `/datasets` mount.

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
    let out = retry(
        &inputs.context(&call, &principal),
        &id,
        key.as_deref(),
        call.body(),
    )
    .await;
    Ok(json(out.status, &out.body))
}
