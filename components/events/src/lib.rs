//! `GET /api/cloud/events?type=&actor=&target=&since=&before=&limit=`: the
//! event log, newest first (admins see everything; others the events on
//! their own objects and their own actions), and `GET /api/cloud/events/verify`
//! (admins): the hash chain checked entry by entry.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::kernel::clock::parse_rfc3339_ms;
use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::event_log::{EventQuery, list, verify};
use cloudtuner_spin::{Call, Outcome, json, matched_route, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET"])?;
    if matched_route(req).ends_with("/verify") {
        call.principal_with(Permission::AdminAudit)?;
        return Ok(json(200, &verify(&call.kv)?));
    }
    let p = call.principal()?;
    let viewer = (!p.has(Permission::AdminAudit)).then_some(p.id.as_str());
    Ok(json(200, &list(&call.kv, &query(&call)?, viewer)?))
}

fn query(call: &Call) -> Result<EventQuery, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        call.query_param(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("`{name}` must be a non-negative integer"))
                })
            })
            .transpose()
    };
    let since_ms = call
        .query_param("since")
        .map(|s| {
            parse_rfc3339_ms(&s).or_else(|| s.parse().ok()).ok_or_else(|| {
                ApiError::bad_request(
                    "`since` must be a time such as 2026-12-01T00:00:00Z (or milliseconds since 1970)",
                )
            })
        })
        .transpose()?;
    Ok(EventQuery {
        kind: call.query_param("type"),
        actor: call.query_param("actor"),
        target: call.query_param("target"),
        since_ms,
        before: number("before")?,
        limit: number("limit")?.unwrap_or(50) as usize,
    })
}
