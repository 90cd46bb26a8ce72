//! `POST /api/cloud/jobs/submit?provider=replicate`: submit a training job.
//! Local datasets are read from the read-only `/datasets` mount.

use std::path::Path;

use cloudtuner_domain::jobs::datasets::GUEST_MOUNT;
use cloudtuner_domain::jobs::submit::{SubmitContext, submit};
use cloudtuner_spin::{Call, Outcome, SpinHttp, json, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["POST"])?;
    let principal = call.principal()?;
    let (stored, settings) = call.settings()?;
    let hf_token = variable("hf_token");
    let ctx = SubmitContext {
        kv: &call.kv,
        http: &SpinHttp,
        settings: &settings,
        principal: &principal,
        hf_token: hf_token.as_deref(),
        datasets_root: Path::new(GUEST_MOUNT),
        stored: &stored,
        now_ms: call.now_ms,
    };
    let provider = call.query_param("provider");
    let out = submit(&ctx, provider.as_deref(), call.body()).await;
    Ok(json(out.status, &out.body))
}
