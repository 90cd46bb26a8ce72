//! `GET /api/cloud/jobs/{id}` → `{"job": {...}}` (refreshed from Replicate when
//! stale) and `DELETE /api/cloud/jobs/{id}` (terminal jobs only).

use cloudtuner_domain::jobs::lifecycle::{delete, refresh, visible_job};
use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_spin::{Call, Outcome, background_http, json, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "DELETE"])?;
    let id = call.path_param("id")?;
    let principal = call.principal()?;
    let store = JobStore::new(&call.kv);
    if call.is("DELETE") {
        return Ok(json(200, &delete(&store, &principal, &id, call.now_ms)?));
    }
    let job = visible_job(&store, &principal, &id)?;
    // A finished job is never refreshed: its read is the record alone (no
    // settings read).
    let (job, refresh_error) = if job.status.is_terminal() {
        (job, None)
    } else {
        let settings = call.provider_settings();
        refresh(&store, &background_http(), &settings, job, call.now_ms).await
    };
    Ok(json(
        200,
        &j!({"job": job.to_api_detail(call.now_ms), "refresh_error": refresh_error}),
    ))
}
