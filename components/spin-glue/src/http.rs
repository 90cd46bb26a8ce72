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
        let host = host_of(&request.url).to_string();
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
            Err(SendError::Http(code)) => Err(TransportError::Failed(in_words(&code, &host))),
            Err(e) => Err(TransportError::Failed(e.to_string())),
        }
    }
}

/// `host[:port]` of a URL, for messages.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// What went wrong, for a person: the network failure and the host, never
/// the runtime's debug text (`ErrorCode::DnsError(DnsErrorPayload { .. })`).
fn in_words(code: &ErrorCode, host: &str) -> String {
    let what = match code {
        ErrorCode::DnsError(_) | ErrorCode::DnsTimeout => "could not resolve the host name",
        ErrorCode::DestinationNotFound => "the host was not found",
        ErrorCode::ConnectionRefused => "the connection was refused",
        ErrorCode::ConnectionTimeout => "the connection timed out",
        ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => "the request timed out",
        ErrorCode::ConnectionTerminated => "the connection was closed before an answer",
        ErrorCode::DestinationUnavailable => "the host is unreachable",
        ErrorCode::DestinationIpProhibited | ErrorCode::DestinationIpUnroutable => {
            "the host's address is blocked or unroutable"
        }
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => "the TLS handshake failed",
        ErrorCode::ConnectionLimitReached => "too many open connections",
        _ => "the request failed",
    };
    format!("{what} ({host})")
}
