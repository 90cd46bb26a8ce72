//! `GET /api/cloud/jobs`: the caller's jobs (everyone's with `job.view.all`),
//! newest first, with `limit`, `offset`, `status`, `provider`, `sync_active`.

use cloudtuner_domain::jobs::listing::{ListParams, list_jobs};
use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_spin::{Call, Outcome, background_http, json_bytes, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    let params = ListParams::parse(&call.query())?;
    let principal = call.principal()?;
    let store = JobStore::new(&call.kv);
    let body = list_jobs(
        &store,
        &background_http(),
        || call.provider_settings(),
        &principal,
        &params,
        call.now_ms,
    )
    .await?;
    Ok(json_bytes(200, body.into_json()))
}
