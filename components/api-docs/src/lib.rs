//! `/openapi.json` and `/docs/...`: the API described by one OpenAPI 3.1
//! document, and a page that renders it (served from here, no CDN).

use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_spin::{Outcome, allow_methods, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

const OPENAPI: &str = include_str!("../assets/openapi.json");
const DOCS_HTML: &str = include_str!("../assets/docs.html");
const DOCS_JS: &str = include_str!("../assets/docs.js");
const DOCS_CSS: &str = include_str!("../assets/docs.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    allow_methods(req, &["GET", "HEAD"])?;
    let (body, content_type) = match req.path() {
        "/openapi.json" => (OPENAPI, "application/json"),
        "/docs" | "/docs/" => (DOCS_HTML, "text/html; charset=utf-8"),
        "/docs/docs.js" => (DOCS_JS, "text/javascript; charset=utf-8"),
        "/docs/docs.css" => (DOCS_CSS, "text/css; charset=utf-8"),
        other => return Err(ApiError::not_found(format!("no document at {other}"))),
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .body(body)
        .build())
}
