//! `/api/cloud/storage/...`: the S3-compatible endpoint (path-style) that
//! trainers upload weights to with per-job credentials and users download
//! from. All S3 logic is in `cloudtuner_domain::s3api`.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::s3api::{Context, S3Request, handle as s3};
use cloudtuner_spin::{SpinKv, authenticate, provider_settings, variable};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// Default largest object: 2 GiB (LoRAs are 20–500 MB; full fine-tunes more).
const DEFAULT_MAX_OBJECT_MB: u64 = 2048;

#[http_component]
fn handle(req: Request) -> Response {
    let kv = match SpinKv::open_default() {
        Ok(kv) => kv,
        Err(e) => return cloudtuner_spin::error(&e),
    };
    // Session or API key, for downloads; S3 signatures are checked in s3api.
    // A bad session/API key here is simply "no user".
    let user = authenticate(&req, &kv).ok().flatten();
    let max_object = variable("storage_max_object_mb")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MAX_OBJECT_MB)
        .saturating_mul(1024 * 1024);
    let ctx = Context {
        kv: &kv,
        now_ms: now_ms(),
        max_object,
        user,
        public_url: provider_settings(&kv).public_url,
    };
    let mut headers: Vec<(String, String)> = req
        .headers()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // wasi-http keeps `Host` out of the guest's headers (a forbidden header);
    // SigV4 signs it, so restore it from the request's authority.
    if !headers.iter().any(|(k, _)| k == "host")
        && let Some(authority) = authority(req.uri())
    {
        headers.push(("host".into(), authority.to_string()));
    }
    let s3_request = S3Request {
        method: req.method().to_string(),
        raw_path: req.path().to_string(),
        raw_query: req.query().to_string(),
        headers,
        body: req.into_body(),
    };
    let out = s3(&ctx, &s3_request);
    let mut resp = Response::builder();
    resp.status(out.status);
    resp.header("cache-control", "no-store");
    for (k, v) in &out.headers {
        resp.header(k.as_str(), v.as_str());
    }
    resp.body(out.body).build()
}

/// `host[:port]` of `scheme://host[:port]/path`.
fn authority(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}
