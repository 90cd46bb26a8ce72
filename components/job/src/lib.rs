//! `GET /api/cloud/jobs/{id}` → `{"job": {...}}` (refreshed from Replicate when
//! stale) and `DELETE /api/cloud/jobs/{id}` (terminal jobs only).

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::jobs::JobStore;
use cloudtuner_domain::lifecycle::{delete, refresh, visible_job};
use cloudtuner_spin::{
    SpinHttp, SpinKv, json, path_param, provider_settings, require_method, require_principal,
    respond,
};
use serde_json::json as j;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let run = async {
        require_method(&req, &["GET", "DELETE"])?;
        let id = path_param(&req, "id")?;
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        let store = JobStore::new(&kv);
        if req.method().to_string() == "DELETE" {
            return Ok(json(200, &delete(&store, &principal, &id, now_ms())?));
        }
        let job = visible_job(&store, &principal, &id)?;
        let now = now_ms();
        let (job, refresh_error) =
            refresh(&store, &SpinHttp, &provider_settings(&kv), job, now).await;
        Ok(json(
            200,
            &j!({"job": job.to_api_detail(now), "refresh_error": refresh_error}),
        ))
    };
    respond(run.await)
}
