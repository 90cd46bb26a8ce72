//! `POST /api/cloud/jobs/submit?provider=replicate`: submit a training job.
//! Local datasets are read from the read-only `/datasets` mount.

use std::path::Path;

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::datasets::GUEST_MOUNT;
use cloudtuner_domain::http::param;
use cloudtuner_domain::submit::{SubmitContext, submit};
use cloudtuner_spin::{
    SpinHttp, SpinKv, error, json, query, require_method, require_principal,
    stored_and_provider_settings, variable,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let ready = require_method(&req, &["POST"])
        .and_then(|()| SpinKv::open_default())
        .and_then(|kv| require_principal(&req, &kv).map(|p| (p, kv)));
    let (principal, kv) = match ready {
        Ok(x) => x,
        Err(e) => return error(&e),
    };
    let (stored, settings) = match stored_and_provider_settings(&kv) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let params = query(&req);
    let hf_token = variable("hf_token").filter(|t| !t.trim().is_empty());
    let ctx = SubmitContext {
        kv: &kv,
        http: &SpinHttp,
        settings: &settings,
        principal: &principal,
        hf_token: hf_token.as_deref(),
        datasets_root: Path::new(GUEST_MOUNT),
        stored: &stored,
        now_ms: now_ms(),
    };
    let out = submit(&ctx, param(&params, "provider"), req.body()).await;
    json(out.status, &out.body)
}
