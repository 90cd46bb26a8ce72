//! `POST /api/cloud/jobs/submit?provider=replicate`: submit a training job.
//! Local datasets are read from the read-only `/datasets` mount. A submit an
//! approval rule holds is answered 202 and waits (`jobs::approvals::gate`).

use cloudtuner_domain::jobs::approvals::gate;
use cloudtuner_domain::jobs::submit::submit;
use cloudtuner_spin::{Call, Outcome, SubmitInputs, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["POST"])?;
    let principal = call.principal()?;
    let inputs = SubmitInputs::load(&call)?;
    let provider = call.query_param("provider");
    let ctx = inputs.context(&call, &principal);
    if let Some(held) = gate(&ctx, provider.as_deref(), call.body())? {
        return Ok(json(held.status, &held.body));
    }
    let out = submit(&ctx, provider.as_deref(), call.body()).await;
    Ok(json(out.status, &out.body))
}
