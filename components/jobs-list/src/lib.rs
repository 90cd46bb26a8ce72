//! `GET /api/cloud/jobs`: the caller's jobs (everyone's with `job.view.all`),
//! newest first, with `limit`, `offset`, `status`, `provider`, `sync_active`.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::jobs::JobStore;
use cloudtuner_domain::listing::{ListParams, list_jobs};
use cloudtuner_spin::{
    SpinHttp, SpinKv, json, provider_settings, query, require_method, require_principal, respond,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let run = async {
        require_method(&req, &["GET"])?;
        let params = ListParams::parse(&query(&req))?;
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        let store = JobStore::new(&kv);
        let body = list_jobs(
            &store,
            &SpinHttp,
            &provider_settings(&kv),
            &principal,
            &params,
            now_ms(),
        )
        .await?;
        Ok(json(200, &body))
    };
    respond(run.await)
}
