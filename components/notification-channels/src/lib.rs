//! `/api/cloud/notifications/{channels,channels/...,history,events,status}`:
//! Slack and signed-webhook notification channels (SimpleTuner's routes).
//! All logic is in `cloudtuner_domain::notify::channels::api`.

use cloudtuner_domain::notify::channels::api::{ChannelRequest, handle as channels};
use cloudtuner_spin::{BudgetedHttp, Call, Outcome, Purpose, http, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST", "PATCH", "DELETE"])?;
    let p = call.principal()?;
    // SimpleTuner's CLI sends no body with `channel-test` (and a JSON content type).
    let body = call.json_or_null()?;
    let method = call.method();
    let query = call.query();
    let settings = call.provider_settings();
    let request = ChannelRequest {
        method: &method,
        rest: req
            .path()
            .strip_prefix("/api/cloud/notifications")
            .unwrap_or_default(),
        query: &query,
        body,
        public_url: settings.public_url.as_deref(),
        now_ms: call.now_ms,
    };
    let user_http = || http(Purpose::User);
    let (status, answer) = channels::<BudgetedHttp, _>(&call.kv, user_http, &p, &request).await?;
    Ok(json(status, &answer))
}
