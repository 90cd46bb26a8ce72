//! `GET /api/cloud/jobs/{id}/logs[?offset=N][&tail=N]` → `{"job_id", "logs", ...}`.
//! `next_offset` lets a client fetch only what is new next time.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::http::param;
use cloudtuner_domain::jobs::JobStore;
use cloudtuner_domain::lifecycle::{refresh, visible_job};
use cloudtuner_spin::{
    SpinHttp, SpinKv, json, path_param, provider_settings, query, require_method,
    require_principal, respond,
};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

fn number(params: &[(String, String)], name: &str) -> Result<Option<usize>, ApiError> {
    param(params, name)
        .map(|v| {
            v.parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!("`{name}` must be a non-negative integer"))
            })
        })
        .transpose()
}

#[http_component]
async fn handle(req: Request) -> Response {
    let run = async {
        require_method(&req, &["GET"])?;
        let id = path_param(&req, "id")?;
        let params = query(&req);
        let (offset, tail) = (number(&params, "offset")?, number(&params, "tail")?);
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        let store = JobStore::new(&kv);
        let job = visible_job(&store, &principal, &id)?;
        let (job, refresh_error) =
            refresh(&store, &SpinHttp, &provider_settings(&kv), job, now_ms()).await;
        let slice = store.logs(&id)?.slice(offset, tail);
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
    };
    respond(run.await)
}
