//! `POST /api/cloud/webhooks/replicate?job=<id>` (alias `/api/webhooks/replicate`):
//! Replicate's signed prediction events. No user auth — the Standard Webhooks
//! signature is checked before anything is read or written.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::http::param;
use cloudtuner_domain::webhooks::{SignedHeaders, receive};
use cloudtuner_spin::{SpinHttp, SpinKv, json, provider_settings, query, require_method, respond};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

fn header(req: &Request, name: &str) -> Option<String> {
    req.header(name)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

#[http_component]
async fn handle(req: Request) -> Response {
    let run = async {
        require_method(&req, &["POST"])?;
        let kv = SpinKv::open_default()?;
        let headers = SignedHeaders {
            id: header(&req, "webhook-id"),
            timestamp: header(&req, "webhook-timestamp"),
            signature: header(&req, "webhook-signature"),
        };
        let params = query(&req);
        let body = receive(
            &kv,
            &SpinHttp,
            &provider_settings(&kv),
            &headers,
            param(&params, "job"),
            req.body(),
            now_ms(),
        )
        .await?;
        Ok(json(200, &body))
    };
    respond(run.await)
}
