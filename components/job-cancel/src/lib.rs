//! `POST /api/cloud/jobs/{id}/cancel`: cancels at Replicate (a 404 there counts
//! as done); 409 for jobs that already finished.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::jobs::JobStore;
use cloudtuner_domain::lifecycle::cancel;
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
        require_method(&req, &["POST"])?;
        let id = path_param(&req, "id")?;
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        let store = JobStore::new(&kv);
        let now = now_ms();
        let job = cancel(
            &store,
            &SpinHttp,
            &provider_settings(&kv),
            &principal,
            &id,
            now,
        )
        .await?;
        Ok(json(
            200,
            &j!({"success": true, "job_id": id, "status": job.status.as_str(), "job": job.to_api(now)}),
        ))
    };
    respond(run.await)
}
