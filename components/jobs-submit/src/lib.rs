//! `POST /api/cloud/jobs/submit?provider=replicate`: submit a training job.
//! Local datasets are read from the read-only `/datasets` mount.

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
    let out = submit(
        &inputs.context(&call, &principal),
        provider.as_deref(),
        call.body(),
    )
    .await;
    Ok(json(out.status, &out.body))
}
