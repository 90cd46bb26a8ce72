//! `GET /api/cloud/jobs/{id}/outputs`: the files a job uploaded to this server
//! (download to this machine), with download links.

use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::jobs::JobStore;
use cloudtuner_domain::lifecycle::visible_job;
use cloudtuner_domain::s3api::job_outputs;
use cloudtuner_spin::{
    SpinKv, json, path_param, provider_settings, require_method, require_principal, respond,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    let run = || {
        require_method(&req, &["GET"])?;
        let id = path_param(&req, "id")?;
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        let job = visible_job(&JobStore::new(&kv), &principal, &id)?;
        let public_url = provider_settings(&kv).public_url;
        let body = job_outputs(&kv, &job, public_url.as_deref())
            .map_err(|e| ApiError::storage(e.to_string()))?;
        Ok(json(200, &body))
    };
    respond(run())
}
