//! Outbound HTTP through Spin as the domain's [`HttpClient`].

use cloudtuner_domain::kernel::http::{
    HttpClient, HttpRequest, HttpResponse, Method, TransportError,
};
use spin_sdk::http::{ErrorCode, Request, Response, SendError};

/// Outbound HTTP through Spin (subject to `allowed_outbound_hosts`).
pub struct SpinHttp;

impl HttpClient for SpinHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match request.method {
            Method::Get => spin_sdk::http::Method::Get,
            Method::Post => spin_sdk::http::Method::Post,
            Method::Put => spin_sdk::http::Method::Put,
            Method::Delete => spin_sdk::http::Method::Delete,
        };
        let mut builder = Request::builder();
        builder.method(method).uri(request.url);
        for (k, v) in request.headers {
            builder.header(k, v);
        }
        builder.body(request.body);
        let result: Result<Response, SendError> = spin_sdk::http::send(builder.build()).await;
        match result {
            Ok(resp) => Ok(HttpResponse {
                status: *resp.status(),
                headers: resp
                    .headers()
                    .map(|(k, v)| (k.to_string(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                body: resp.into_body(),
            }),
            Err(SendError::Http(ErrorCode::HttpRequestDenied)) => Err(TransportError::Denied),
            Err(e) => Err(TransportError::Failed(e.to_string())),
        }
    }
}
