//! Responses: JSON bodies, and the standard error shape with the headers
//! HTTP gives each error status.

use cloudtuner_domain::kernel::error::ApiError;
use serde_json::Value;
use spin_sdk::http::Response;

use crate::audit;

/// What a component's `run` returns: its response, or the error to render.
pub type Outcome = Result<Response, ApiError>;

/// Turns a handler's outcome into the response; errors get the standard shape.
/// Every 403 goes out through here or [`render_error`], where it is audited
/// ([`crate::audit`]).
pub fn respond(outcome: Outcome) -> Response {
    match outcome {
        Ok(mut resp) => {
            if *resp.status() == 403 {
                audit::denied(serde_json::from_slice(resp.body()).ok().as_ref());
            }
            if *resp.status() == 503 && resp.header("retry-after").is_none() {
                retry_after_from_body(&mut resp);
            }
            resp
        }
        Err(e) => render_error(&e),
    }
}

/// A 503 rendered by its route (a submit's flat body, say) still tells the
/// client when to retry: `Retry-After` from the body's
/// `details.retry_after_secs`.
fn retry_after_from_body(resp: &mut Response) {
    let secs = serde_json::from_slice::<Value>(resp.body())
        .ok()
        .and_then(|b| {
            b.pointer("/details/retry_after_secs")
                .and_then(Value::as_u64)
        });
    if let Some(secs) = secs {
        resp.set_header("retry-after", secs.to_string());
    }
}

/// A JSON response; `body` is serialised straight to bytes (a JSON value or
/// any `Serialize` view).
pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
    json_bytes(
        status,
        serde_json::to_vec(body).expect("a response body serialises"),
    )
}

/// A JSON response from a body already serialised.
pub fn json_bytes(status: u16, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body)
        .build()
}

/// `{"error", "message", "details"?}` with `WWW-Authenticate` on 401, `Allow`
/// on 405 and `Retry-After` when the error says how long to wait.
pub fn render_error(e: &ApiError) -> Response {
    let body = e.body();
    if e.status == 403 {
        audit::denied(Some(&body));
    }
    let mut resp = json(e.status, &body);
    if e.status == 401 {
        resp.set_header("www-authenticate", "Bearer realm=\"cloudtuner\"");
    }
    if let Some(allowed) = e.details.get("allowed").and_then(Value::as_array) {
        let allow: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        resp.set_header("allow", allow.join(", "));
    }
    if let Some(secs) = e.details.get("retry_after_secs").and_then(Value::as_u64) {
        resp.set_header("retry-after", secs.to_string());
    }
    resp
}
