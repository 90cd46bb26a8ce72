//! `/api/cloud/storage/...`: the S3-compatible endpoint (path-style) that
//! trainers upload weights to with per-job credentials and users download
//! from. All S3 logic is in `cloudtuner_domain::storage::s3`.

use cloudtuner_domain::jobs::store::JobStore;
use cloudtuner_domain::storage::datasets::Limits;
use cloudtuner_domain::storage::s3::{self, Context, S3Request};
use cloudtuner_spin::{Call, Outcome, respond, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(mut req: Request) -> Response {
    // The body is moved, never copied: it may be as large as an object.
    let body = std::mem::take(req.body_mut());
    respond(run(&req, body))
}

fn run(req: &Request, body: Vec<u8>) -> Outcome {
    let call = Call::any_method(req)?;
    // Session or API key, for downloads; S3 signatures are checked in the
    // domain. A bad session/API key here is simply "no user".
    let user = call.caller().ok().flatten();
    let jobs = JobStore::new(&call.kv);
    let ctx = Context {
        kv: &call.kv,
        jobs: &jobs,
        now_ms: call.now_ms,
        max_object: s3::max_object_bytes(variable("storage_max_object_mb").as_deref()),
        user,
        public_url: call.provider_settings().public_url,
        dataset_limits: Limits::from_variables(
            variable("dataset_quota_mb").as_deref(),
            variable("dataset_max_files").as_deref(),
        ),
    };
    let s3_request = S3Request {
        method: call.method(),
        raw_path: req.path().to_string(),
        raw_query: req.query().to_string(),
        headers: call.headers(),
        body,
    };
    let out = s3::handle(&ctx, &s3_request);
    let mut resp = Response::builder();
    resp.status(out.status);
    resp.header("cache-control", "no-store");
    for (k, v) in &out.headers {
        resp.header(k.as_str(), v.as_str());
    }
    Ok(resp.body(out.body).build())
}
