//! `POST /api/cloud/webhooks/replicate?job=<id>` (alias `/api/webhooks/replicate`):
//! Replicate's signed prediction events. No user auth — the Standard Webhooks
//! signature is checked before anything is read or written.

use cloudtuner_domain::jobs::webhooks::receive;
use cloudtuner_domain::kernel::signing::SignedHeaders;
use cloudtuner_spin::{Call, Outcome, background_http, json, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    respond(run(&req).await)
}

async fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["POST"])?;
    let headers = SignedHeaders {
        id: call.header("webhook-id"),
        timestamp: call.header("webhook-timestamp"),
        signature: call.header("webhook-signature"),
    };
    let settings = call.provider_settings();
    let job = call.query_param("job");
    let (kv, body, now) = (&call.kv, call.body(), call.now_ms);
    let answer = receive(
        kv,
        &background_http(),
        &settings,
        &headers,
        job.as_deref(),
        body,
        now,
    )
    .await?;
    Ok(json(200, &answer))
}
