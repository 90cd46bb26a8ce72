//! `GET /api/cloud/jobs/{id}/logs[?offset=N][&tail=N]` → `{"job_id", "logs", ...}`.
//! `next_offset` lets a client fetch only what is new next time.

use cloudtuner_domain::jobs::lifecycle::{refresh, visible_job};
use cloudtuner_domain::jobs::store::{JobStore, LogQuery};
use cloudtuner_spin::{Call, Outcome, SpinHttp, json, respond};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    let id = call.path_param("id")?;
    let query = LogQuery::parse(&call.query())?;
    let principal = call.principal()?;
    let store = JobStore::new(&call.kv);
    let job = visible_job(&store, &principal, &id)?;
    let settings = call.provider_settings();
    let (job, refresh_error) = refresh(&store, &SpinHttp, &settings, job, call.now_ms).await;
    let slice = store.logs(&id)?.slice(query.offset, query.tail);
    Ok(json(
        200,
        &j!({
            "job_id": id,
            "status": job.status.as_str(),
            "logs": slice.text,
            "offset": slice.offset,
            "next_offset": slice.next_offset,
            "truncated": slice.truncated,
            "refresh_error": refresh_error,
        }),
    ))
}
