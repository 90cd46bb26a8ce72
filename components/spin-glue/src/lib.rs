//! Everything a component needs from Spin, behind the domain's traits.
//! Components call [`respond`]/[`json`]/[`error`] and the adapters below and
//! contain no logic of their own.

use cloudtuner_domain::auth::Principal;
use cloudtuner_domain::authn::{self, Credentials};
use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
use cloudtuner_domain::kv::{KvError, KvStore};
use cloudtuner_domain::lifecycle::{DEFAULT_REFRESH_AFTER_MS, ProviderSettings};
use cloudtuner_domain::replicate::DEFAULT_API_BASE;
use cloudtuner_domain::settings::StoredSettings;
use serde_json::Value;
use spin_sdk::http::{ErrorCode, Request, Response, SendError};
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue;
use std::cell::{OnceCell, RefCell};

/// Spin's `default` key-value store: plain operations through
/// `fermyon:spin/key-value`, atomics through `wasi:keyvalue` on the same store.
pub struct SpinKv {
    store: Store,
    bucket: OnceCell<keyvalue::store::Bucket>,
    /// The CAS handle opened by the last `read_for_swap`, used by `swap`.
    cas: RefCell<Option<(String, keyvalue::atomics::Cas)>>,
}

impl SpinKv {
    pub fn open_default() -> Result<Self, ApiError> {
        Store::open_default()
            .map(|store| SpinKv {
                store,
                bucket: OnceCell::new(),
                cas: RefCell::new(None),
            })
            .map_err(|e| ApiError::storage(format!("cannot open the key-value store: {e}")))
    }

    fn bucket(&self) -> Result<&keyvalue::store::Bucket, KvError> {
        if let Some(b) = self.bucket.get() {
            return Ok(b);
        }
        let b = keyvalue::store::open("default").map_err(|e| KvError(format!("{e:?}")))?;
        Ok(self.bucket.get_or_init(|| b))
    }
}

fn kv_err(e: spin_sdk::key_value::Error) -> KvError {
    KvError(e.to_string())
}

impl KvStore for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.store.get(key).map_err(kv_err)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.store.set(key, value).map_err(kv_err)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.store.delete(key).map_err(kv_err)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.store.exists(key).map_err(kv_err)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        keyvalue::atomics::increment(self.bucket()?, key, delta)
            .map_err(|e| KvError(format!("{e:?}")))
    }
    fn read_for_swap(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let cas = keyvalue::atomics::Cas::new(self.bucket()?, key)
            .map_err(|e| KvError(format!("{e:?}")))?;
        let current = cas.current().map_err(|e| KvError(format!("{e:?}")))?;
        *self.cas.borrow_mut() = Some((key.to_string(), cas));
        Ok(current)
    }
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        let handle = self.cas.borrow_mut().take();
        match (seen, handle) {
            (Some(_), Some((k, cas))) if k == key => match keyvalue::atomics::swap(cas, new) {
                Ok(()) => Ok(true),
                Err(keyvalue::atomics::CasError::CasFailed(_)) => Ok(false),
                Err(keyvalue::atomics::CasError::StoreError(e)) => Err(KvError(format!("{e:?}"))),
            },
            (Some(_), _) => Err(KvError(format!("swap of {key} without read_for_swap"))),
            (None, _) => self.set(key, new).map(|()| true),
        }
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

/// The request's credentials (API key header, bearer token, session cookie).
pub fn credentials(req: &Request) -> Credentials {
    Credentials::from_headers(|name| {
        req.header(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    })
}

/// The caller, or `None` when anonymous; a bad credential is a 401.
pub fn authenticate(req: &Request, kv: &SpinKv) -> Result<Option<Principal>, ApiError> {
    let admin_token = variable("admin_token");
    authn::authenticate(kv, &credentials(req), admin_token.as_deref(), now_unix_ms())
}

/// The caller; anonymous requests get a 401 that says how to authenticate.
pub fn require_principal(req: &Request, kv: &SpinKv) -> Result<Principal, ApiError> {
    authenticate(req, kv)?.ok_or_else(|| authn::unauthorized(authn::HOW_TO_AUTHENTICATE))
}

/// 403 unless the principal holds `permission`.
pub fn require_permission(p: &Principal, permission: &str) -> Result<(), ApiError> {
    if p.has(permission) {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            "permission_denied",
            format!("Permission denied: {permission}"),
        )
        .with_detail("required_permission", permission))
    }
}

/// The session cookie for a new session (Secure when served over https).
pub fn session_cookie(req: &Request, token: &str, max_age_secs: u64) -> String {
    let https = req
        .header("spin-full-url")
        .and_then(|v| v.as_str())
        .is_some_and(|u| u.starts_with("https://"))
        || req
            .header("x-forwarded-proto")
            .and_then(|v| v.as_str())
            .is_some_and(|p| p == "https");
    format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        authn::SESSION_COOKIE,
        if https { "; Secure" } else { "" }
    )
}

/// Provider settings: the component's variables, overridden by what an admin
/// stored (`PUT /api/cloud/providers/replicate`: token, public URL).
pub fn provider_settings(kv: &SpinKv) -> ProviderSettings {
    match StoredSettings::load(kv) {
        Ok(stored) => stored.apply_to(variable_settings()),
        Err(_) => variable_settings(),
    }
}

/// Both at once, from one read of the stored settings: what an admin stored,
/// and the provider settings it makes with the variables.
pub fn stored_and_provider_settings(
    kv: &SpinKv,
) -> Result<(StoredSettings, ProviderSettings), ApiError> {
    let stored = StoredSettings::load(kv)?;
    let provider = stored.apply_to(variable_settings());
    Ok((stored, provider))
}

fn variable_settings() -> ProviderSettings {
    ProviderSettings {
        api_base: variable("replicate_api_base").unwrap_or_else(|| DEFAULT_API_BASE.to_string()),
        token: variable("replicate_api_token").unwrap_or_default(),
        public_url: variable("public_url"),
        refresh_after_ms: variable("refresh_after_ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_REFRESH_AFTER_MS),
    }
}

/// The admin-set provider settings (defaults when none are stored).
pub fn stored_settings(kv: &SpinKv) -> Result<StoredSettings, ApiError> {
    StoredSettings::load(kv)
}

/// The decoded query parameters of a request.
pub fn query(req: &Request) -> Vec<(String, String)> {
    cloudtuner_domain::http::parse_query(req.query())
}

/// The `:name` segment Spin matched (`spin-path-match-<name>`).
pub fn path_param(req: &Request, name: &str) -> Result<String, ApiError> {
    req.header(&format!("spin-path-match-{name}"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request(format!("missing path parameter {name}")))
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
    if e.status == 401 {
        resp.set_header("www-authenticate", "Bearer realm=\"cloudtuner\"");
    }
    if let Some(allowed) = e.details.get("allowed").and_then(Value::as_array) {
        let allow: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        resp.set_header("allow", allow.join(", "));
    }
    resp
}

/// The request body as JSON, or a 400 `invalid_json` that says why.
pub fn json_body(req: &Request) -> Result<Value, ApiError> {
    serde_json::from_slice(req.body()).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("request body is not JSON: {e}"),
        )
    })
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
