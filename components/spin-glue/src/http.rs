//! Outbound HTTP through Spin as the domain's [`HttpClient`], counted
//! against the installation's hourly budget when one is set.

use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::http::{
    HttpClient, HttpRequest, HttpResponse, Method, TransportError,
};
use cloudtuner_domain::kernel::outbound_budget::{self, Budget, Budgeted, Meter, Purpose};
use spin_sdk::http::{ErrorCode, Request, Response, SendError};

use crate::kv::AppKv;
use crate::settings::variable;

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
            // The SDK reports a connection the host refused or dropped while the
            // body was being written as a stream error (`StreamError::Closed`),
            // without the cause: say what happened, never the debug text.
            Err(SendError::Io(_)) => Err(TransportError::Failed(format!(
                "the connection closed while the request was being sent ({host})"
            ))),
            Err(_) => Err(TransportError::Failed(format!(
                "the request or its answer could not be read ({host})"
            ))),
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

/// Outbound HTTP counted against the hour's budget
/// (`outbound_requests_per_hour`, see
/// [`cloudtuner_domain::kernel::outbound_budget`]); without the variable it
/// is [`SpinHttp`] alone and touches no store.
pub type BudgetedHttp = Budgeted<SpinHttp, AppKv>;

/// The hourly budget the component's variables set, if any.
pub fn hourly_budget() -> Option<Budget> {
    Budget::from_variable(variable("outbound_requests_per_hour").as_deref())
}

/// The client for `purpose`. A user action is refused up front (503 with
/// `Retry-After`) when the hour's whole budget is spent, so it never stops
/// half-way; background work is refused request by request past its share.
/// The counter lives in its own store handle, opened only when a budget is
/// set (so `spin up` without one pays nothing).
pub fn http(purpose: Purpose) -> Result<BudgetedHttp, ApiError> {
    let Some(budget) = hourly_budget() else {
        return Ok(Budgeted::new(SpinHttp, None));
    };
    let kv = match AppKv::open() {
        Ok(kv) => kv,
        // Background work without a store to count in goes on uncounted:
        // the store's outage is reported where the work needs the store.
        Err(_) if purpose == Purpose::Background => return Ok(Budgeted::new(SpinHttp, None)),
        Err(e) => return Err(e),
    };
    if purpose == Purpose::User {
        outbound_budget::user_gate(&kv, budget, now_ms())?;
    }
    Ok(Budgeted::new(
        SpinHttp,
        Some(Meter {
            kv,
            budget,
            purpose,
        }),
    ))
}

/// [`http`] for background work (sync, refresh-on-read, webhooks,
/// notifications, status page), which is never refused up front.
pub fn background_http() -> BudgetedHttp {
    http(Purpose::Background).unwrap_or_else(|_| Budgeted::new(SpinHttp, None))
}
