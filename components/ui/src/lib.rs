//! `/...`: the web UI. Files under `static/` are embedded at build time
//! (`build.rs`) and served with their content type, a content-hash ETag (304 on
//! `If-None-Match`), `Cache-Control: no-cache` (always revalidate, so a new
//! build shows at once) and a strict Content-Security-Policy: no inline
//! script or style, nothing from other origins. Unknown `/api/...` paths get
//! the API's JSON 404 instead of a page.

use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_spin::{Outcome, allow_methods, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

pub struct Asset {
    pub path: &'static str,
    pub body: &'static [u8],
    pub content_type: &'static str,
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let path = req.path();
    if path.starts_with("/api/") {
        return Err(
            ApiError::not_found(format!("no API route at {path}")).with_detail("docs", "/docs")
        );
    }
    allow_methods(req, &["GET", "HEAD"])?;
    let asset = find(path).ok_or_else(|| ApiError::not_found(format!("no page at {path}")))?;
    let fresh = req
        .header("if-none-match")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut resp = Response::builder();
    resp.status(if fresh { 304 } else { 200 })
        .header("etag", asset.etag)
        .header("cache-control", "no-cache")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY");
    if fresh {
        return Ok(resp.build());
    }
    Ok(resp
        .header("content-type", asset.content_type)
        .body(asset.body.to_vec())
        .build())
}
