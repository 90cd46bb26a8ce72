//! `POST /api/cloud/jobs/{id}/cancel`: cancels at Replicate (a 404 there counts
//! as done); 409 for jobs that already finished.

use cloudtuner_domain::jobs::lifecycle::cancel;
use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_spin::{Call, Outcome, Purpose, http, json, respond};
use serde_json::json as j;
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
    let store = JobStore::new(&call.kv);
    let settings = call.provider_settings();
    let job = cancel(
        &store,
        &http(Purpose::User)?,
        &settings,
        &principal,
        &id,
        call.now_ms,
    )
    .await?;
    Ok(json(
        200,
        &j!({"success": true, "job_id": id, "status": job.status.as_str(), "job": job.to_api(call.now_ms)}),
    ))
}
