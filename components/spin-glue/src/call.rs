//! One request as a component handles it: the method checked, the store
//! open, the caller resolved on demand, and the request's parts decoded.

use cloudtuner_domain::auth::credentials::{self, Credentials};
use cloudtuner_domain::auth::principal::{Permission, Principal};
use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::http::{param, parse_query};
use cloudtuner_domain::providers::settings::{ProviderSettings, StoredSettings};
use serde_json::Value;
use spin_sdk::http::Request;

use crate::audit;
use crate::kv::AppKv;
use crate::settings::{self, variable};

/// 405 with `Allow` unless the request's method is one of `methods` (for
/// routes that need no store: the UI and the API documents).
pub fn allow_methods(req: &Request, methods: &[&str]) -> Result<(), ApiError> {
    let method = req.method().to_string();
    if methods.iter().any(|m| m.eq_ignore_ascii_case(&method)) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(&method, methods))
    }
}

/// The route pattern Spin matched (`spin-matched-route`, e.g.
/// `/api/cloud/providers/:provider/token`), for a component that serves
/// several routes and must pick its methods before [`Call::new`].
pub fn matched_route(req: &Request) -> String {
    req.header("spin-matched-route")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

pub struct Call<'a> {
    pub req: &'a Request,
    pub kv: AppKv,
    /// One clock reading per request, so every step agrees on "now".
    pub now_ms: u64,
}

impl<'a> Call<'a> {
    /// Refuses methods the route does not serve (405 with `Allow`), then
    /// opens the key-value store.
    pub fn new(req: &'a Request, methods: &[&str]) -> Result<Self, ApiError> {
        allow_methods(req, methods)?;
        Self::any_method(req)
    }

    /// For a route that answers every method itself (the S3 endpoint).
    pub fn any_method(req: &'a Request) -> Result<Self, ApiError> {
        audit::forget();
        Ok(Call {
            req,
            kv: AppKv::open()?,
            now_ms: now_ms(),
        })
    }

    /// The method, upper case (`GET`, `POST`, ...).
    pub fn method(&self) -> String {
        self.req.method().to_string()
    }

    pub fn is(&self, method: &str) -> bool {
        self.method().eq_ignore_ascii_case(method)
    }

    /// The request's credentials (API key header, bearer token, session cookie).
    pub fn credentials(&self) -> Credentials {
        Credentials::from_headers(|name| self.header(name))
    }

    /// The caller, or `None` when anonymous; a bad credential is a 401.
    /// The caller is remembered for the request, so that a 403 this request
    /// answers is audited ([`crate::reply::respond`]).
    pub fn caller(&self) -> Result<Option<Principal>, ApiError> {
        let admin_token = variable("admin_token");
        let caller = credentials::authenticate(
            &self.kv,
            &self.credentials(),
            admin_token.as_deref(),
            self.now_ms,
        )?;
        if let Some(p) = &caller {
            audit::remember(p, &self.method(), self.req.path());
        }
        Ok(caller)
    }

    /// The caller; anonymous requests get a 401 that says how to authenticate.
    /// A request signed in by the cookie alone that changes something must be
    /// JSON (415 otherwise: see [`Credentials::check_cookie_request`]).
    pub fn principal(&self) -> Result<Principal, ApiError> {
        let p = self
            .caller()?
            .ok_or_else(|| credentials::unauthorized(credentials::HOW_TO_AUTHENTICATE))?;
        self.credentials().check_cookie_request(
            &self.method(),
            self.header("content-type").as_deref(),
            self.req.body().len(),
        )?;
        Ok(p)
    }

    /// The caller, who must hold `permission` (403 otherwise, audited as
    /// every 403 is).
    pub fn principal_with(&self, permission: Permission) -> Result<Principal, ApiError> {
        let p = self.principal()?;
        p.require(permission)?;
        Ok(p)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.req
            .header(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// Every header, names lower-cased, with `host` restored from the URI's
    /// authority: wasi-http keeps `Host` out of the guest's headers (a
    /// forbidden header), but signatures such as SigV4 cover it.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = self
            .req
            .headers()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if !headers.iter().any(|(k, _)| k == "host")
            && let Some(authority) = authority(self.req.uri())
        {
            headers.push(("host".into(), authority.to_string()));
        }
        headers
    }

    /// The `:name` segment Spin matched (`spin-path-match-<name>`).
    pub fn path_param(&self, name: &str) -> Result<String, ApiError> {
        self.header(&format!("spin-path-match-{name}"))
            .ok_or_else(|| ApiError::bad_request(format!("missing path parameter {name}")))
    }

    /// The decoded query parameters.
    pub fn query(&self) -> Vec<(String, String)> {
        parse_query(self.req.query())
    }

    /// One query parameter's first value.
    pub fn query_param(&self, name: &str) -> Option<String> {
        param(&self.query(), name).map(str::to_string)
    }

    pub fn body(&self) -> &[u8] {
        self.req.body()
    }

    /// The body as JSON (at most [`MAX_JSON_BODY`] bytes), or a 400
    /// `invalid_json` that says why.
    pub fn json(&self) -> Result<Value, ApiError> {
        self.json_within(MAX_JSON_BODY)
    }

    /// [`Call::json`], or `Value::Null` for an empty (or blank) body: for
    /// routes SimpleTuner's CLI calls without one (approve with no reason,
    /// `add-member`, `channel-test`, the pre-submit cost estimate).
    pub fn json_or_null(&self) -> Result<Value, ApiError> {
        if self.req.body().iter().all(u8::is_ascii_whitespace) {
            Ok(Value::Null)
        } else {
            self.json()
        }
    }

    /// [`Call::json`] for a route that legitimately takes up to `max_bytes`:
    /// 413 `payload_too_large` beyond; 415 `unsupported_media_type` unless
    /// declared JSON when no header credential is sent (anonymous or cookie:
    /// a form another site posts must not be read as JSON).
    pub fn json_within(&self, max_bytes: usize) -> Result<Value, ApiError> {
        let body = self.req.body();
        if body.len() > max_bytes {
            return Err(too_large(body.len(), max_bytes));
        }
        if !self.credentials().sent_by_header()
            && !credentials::is_json_content_type(self.header("content-type").as_deref())
        {
            return Err(credentials::json_required());
        }
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                400,
                "invalid_json",
                format!("request body is not JSON: {e}"),
            )
        })
    }

    /// Provider settings: the variables, overridden by what an admin stored.
    pub fn provider_settings(&self) -> ProviderSettings {
        settings::provider(&self.kv)
    }

    /// What an admin stored, and the provider settings it makes, in one read.
    pub fn settings(&self) -> Result<(StoredSettings, ProviderSettings), ApiError> {
        settings::stored_and_provider(&self.kv)
    }

    /// The session cookie for a new session (Secure when served over https).
    pub fn session_cookie(&self, token: &str, max_age_secs: u64) -> String {
        let https = self
            .header("spin-full-url")
            .is_some_and(|u| u.starts_with("https://"))
            || self.header("x-forwarded-proto").as_deref() == Some("https");
        format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
            credentials::SESSION_COOKIE,
            if https { "; Secure" } else { "" }
        )
    }
}

/// The most JSON a route reads unless it says otherwise (every JSON body
/// here is a form or a config: kilobytes).
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// 413 `payload_too_large`, in words.
fn too_large(len: usize, max: usize) -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!(
            "the request body is {len} bytes; this route accepts at most {max} bytes ({} KiB) of JSON",
            max / 1024
        ),
    )
    .with_detail("max_bytes", max)
}

/// `host[:port]` of `scheme://host[:port]/path`.
fn authority(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}
