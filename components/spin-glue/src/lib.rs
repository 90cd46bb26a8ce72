//! Everything a component needs from Spin, behind the domain's traits.
//! Components call [`respond`]/[`json`]/[`error`] and the adapters below and
//! contain no logic of their own.

use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
use cloudtuner_domain::kv::{KvError, KvStore};
use serde_json::Value;
use spin_sdk::http::{ErrorCode, Request, Response, SendError};
use spin_sdk::key_value::Store;

/// Spin's `default` key-value store.
pub struct SpinKv(Store);

impl SpinKv {
    pub fn open_default() -> Result<Self, ApiError> {
        Store::open_default()
            .map(SpinKv)
            .map_err(|e| ApiError::storage(format!("cannot open the key-value store: {e}")))
    }
}

fn kv_err(e: spin_sdk::key_value::Error) -> KvError {
    KvError(e.to_string())
}

impl KvStore for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get(key).map_err(kv_err)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.0.set(key, value).map_err(kv_err)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.0.delete(key).map_err(kv_err)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.0.exists(key).map_err(kv_err)
    }
}

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

/// A component variable, `None` when undefined or empty.
pub fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

pub fn json(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(body.to_string())
        .build()
}

pub fn error(e: &ApiError) -> Response {
    let mut resp = json(e.status, &e.body());
    if let Some(allowed) = e.details.get("allowed").and_then(Value::as_array) {
        let allow: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        resp.set_header("allow", allow.join(", "));
    }
    resp
}

/// Turns a handler's result into a response; errors get the standard shape.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| error(&e))
}

/// Refuses methods a route does not serve, with 405 and `allow`.
pub fn require_method(req: &Request, allowed: &[&str]) -> Result<(), ApiError> {
    let method = req.method().to_string();
    if allowed.iter().any(|m| m.eq_ignore_ascii_case(&method)) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(&method, allowed))
    }
}

/// Milliseconds since the Unix epoch (WASI wall clock).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
