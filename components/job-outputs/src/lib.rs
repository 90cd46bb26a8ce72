//! `GET /api/cloud/jobs/{id}/outputs`: the files a job uploaded to this server
//! (download to this machine), with download links.

use cloudtuner_domain::jobs::lifecycle::visible_job;
use cloudtuner_domain::jobs::outputs::job_outputs;
use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_spin::{Call, Outcome, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    let id = call.path_param("id")?;
    let principal = call.principal()?;
    let job = visible_job(&JobStore::new(&call.kv), &principal, &id)?;
    let public_url = call.provider_settings().public_url;
    Ok(json(
        200,
        &job_outputs(&call.kv, &job, public_url.as_deref())?,
    ))
}
