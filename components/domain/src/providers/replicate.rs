//! The Replicate HTTP API client (the subset cloudtuner needs, growing per issue).
//!
//! The token is held here and only ever placed in the `Authorization` header:
//! every error message passes through [`ReplicateClient::redact`].

use serde_json::{Value, json};

use crate::kernel::error::ApiError;
use crate::kernel::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
use crate::providers::settings::ProviderSettings;

pub const DEFAULT_API_BASE: &str = "https://api.replicate.com";
pub const PROVIDER: &str = "replicate";
/// How long one request may spend waiting out 429s.
pub const RETRY_BUDGET_SECS: u64 = 10;

#[derive(Debug, Clone, PartialEq)]
pub enum ReplicateError {
    /// No token configured.
    NotConfigured,
    /// 401/403: the token was refused.
    Unauthorized,
    /// 429, with the server's hint in seconds when it gave one.
    RateLimited { retry_after_secs: Option<u64> },
    /// 5xx.
    Unavailable { status: u16 },
    /// No response: refused by the runtime, or the network failed.
    Transport(TransportError),
    /// A response we did not expect (status and a short, redacted detail).
    Unexpected { status: u16, detail: String },
}

impl ReplicateError {
    pub fn message(&self) -> String {
        match self {
            ReplicateError::NotConfigured => "Replicate API token is not configured: an admin \
                 can add it in Settings (PUT /api/cloud/providers/replicate with api_token), or \
                 set the replicate_api_token application variable (SPIN_VARIABLE_REPLICATE_API_TOKEN)"
                .into(),
            ReplicateError::Unauthorized => {
                "Replicate rejected the API token (401): check replicate_api_token".into()
            }
            ReplicateError::RateLimited { retry_after_secs } => match retry_after_secs {
                Some(s) => format!("Replicate rate limit hit; retry in {s} s"),
                None => "Replicate rate limit hit; retry later".into(),
            },
            ReplicateError::Unavailable { status } => {
                format!("Replicate is unavailable (HTTP {status}); try again later")
            }
            ReplicateError::Transport(TransportError::Denied) => {
                "the runtime refused the request to Replicate: its host is not in the \
                 component's allowed_outbound_hosts"
                    .into()
            }
            ReplicateError::Transport(TransportError::Failed(m)) => {
                format!("could not reach Replicate: {m}")
            }
            ReplicateError::Unexpected { status, detail } => {
                format!("Replicate answered HTTP {status}: {detail}")
            }
        }
    }

    /// The error as this API reports it (502/503 for upstream trouble).
    pub fn to_api_error(&self) -> ApiError {
        let status = match self {
            ReplicateError::NotConfigured => 503,
            ReplicateError::RateLimited { .. } => 503,
            _ => 502,
        };
        let code = match self {
            ReplicateError::NotConfigured => "provider_not_configured",
            ReplicateError::Unauthorized => "provider_auth_failed",
            _ => "provider_error",
        };
        ApiError::new(status, code, self.message()).with_detail("provider", PROVIDER)
    }
}

/// `GET /v1/account`.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub kind: Option<String>,
    pub username: String,
    pub name: Option<String>,
    pub github_url: Option<String>,
}

pub struct ReplicateClient<'a, H: HttpClient> {
    http: &'a H,
    base: String,
    token: String,
}

impl<'a, H: HttpClient> ReplicateClient<'a, H> {
    /// `base` is the API origin (`https://api.replicate.com`); a trailing `/` or
    /// `/v1` is tolerated. An empty token yields [`ReplicateError::NotConfigured`].
    pub fn new(http: &'a H, base: &str, token: &str) -> Result<Self, ReplicateError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ReplicateError::NotConfigured);
        }
        let base = base.trim().trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let base = if base.is_empty() {
            DEFAULT_API_BASE
        } else {
            base
        };
        Ok(Self {
            http,
            base: base.to_string(),
            token: token.to_string(),
        })
    }

    fn request(&self, method: Method, path: &str) -> HttpRequest {
        HttpRequest::new(method, format!("{}/v1{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", "application/json")
            .header(
                "user-agent",
                concat!("cloudtuner/", env!("CARGO_PKG_VERSION")),
            )
    }

    /// Removes the token from any text that might reach a caller or a log.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.token, "[redacted]")
    }

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, ReplicateError> {
        let resp = self.http.send(req).await.map_err(|e| match e {
            TransportError::Failed(m) => {
                ReplicateError::Transport(TransportError::Failed(self.redact(&m)))
            }
            denied => ReplicateError::Transport(denied),
        })?;
        match resp.status {
            200..=299 => Ok(resp),
            401 | 403 => Err(ReplicateError::Unauthorized),
            429 => Err(ReplicateError::RateLimited {
                retry_after_secs: retry_after(&resp),
            }),
            500..=599 => Err(ReplicateError::Unavailable {
                status: resp.status,
            }),
            status => Err(ReplicateError::Unexpected {
                status,
                detail: self.redact(&problem_detail(&resp)),
            }),
        }
    }

    /// Sends, and on 429 waits the server's hint (at most `RETRY_BUDGET_SECS`
    /// in all) and tries again. Only for requests that are safe to repeat or
    /// that a 429 proves were not processed.
    async fn send_retrying(&self, req: HttpRequest) -> Result<HttpResponse, ReplicateError> {
        let mut waited = 0;
        loop {
            match self.send(req.clone()).await {
                Err(ReplicateError::RateLimited { retry_after_secs })
                    if waited + retry_after_secs.unwrap_or(1) <= RETRY_BUDGET_SECS =>
                {
                    let wait = retry_after_secs.unwrap_or(1);
                    std::thread::sleep(std::time::Duration::from_secs(wait));
                    waited += wait.max(1);
                }
                other => return other,
            }
        }
    }

    async fn json(&self, req: HttpRequest) -> Result<Value, ReplicateError> {
        let resp = self.send_retrying(req).await?;
        resp.json().ok_or_else(|| ReplicateError::Unexpected {
            status: resp.status,
            detail: "response is not JSON".into(),
        })
    }

    /// The id of the newest version of `owner/name`.
    pub async fn latest_version(&self, model: &str) -> Result<String, ReplicateError> {
        let body = self
            .json(self.request(Method::Get, &format!("/models/{model}")))
            .await
            .map_err(|e| match e {
                ReplicateError::Unexpected { status: 404, .. } => ReplicateError::Unexpected {
                    status: 404,
                    detail: format!("model {model} does not exist (or the token cannot see it)"),
                },
                other => other,
            })?;
        body.pointer("/latest_version/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ReplicateError::Unexpected {
                status: 200,
                detail: format!("model {model} has no version yet"),
            })
    }

    /// `POST /v1/files` (multipart part `content`); returns the file object.
    pub async fn upload_file(
        &self,
        filename: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Value, ReplicateError> {
        let boundary = format!("cloudtuner-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; \
                 filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut req = self.request(Method::Post, "/files").header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        );
        req.body = body;
        self.json(req).await
    }

    /// `POST /v1/predictions`. A 429 means nothing was created, so it is retried.
    /// Creates a prediction; with a deadline, Replicate cancels it that many
    /// minutes after creation (`Cancel-After`), whatever happens here.
    pub async fn create_prediction(
        &self,
        body: &Value,
        cancel_after_minutes: Option<u32>,
    ) -> Result<Value, ReplicateError> {
        let mut req = self.request(Method::Post, "/predictions").json_body(body);
        if let Some(m) = cancel_after_minutes {
            req = req.header("cancel-after", format!("{m}m"));
        }
        self.json(req).await
    }

    pub async fn get_prediction(&self, id: &str) -> Result<Value, ReplicateError> {
        self.json(self.request(Method::Get, &format!("/predictions/{id}")))
            .await
    }

    /// Cancels; `Ok(None)` when Replicate no longer knows the prediction.
    pub async fn cancel_prediction(&self, id: &str) -> Result<Option<Value>, ReplicateError> {
        match self
            .json(self.request(Method::Post, &format!("/predictions/{id}/cancel")))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(ReplicateError::Unexpected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of `GET /v1/predictions` (newest first) and the next cursor URL.
    pub async fn list_predictions(
        &self,
        next: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), ReplicateError> {
        let req = match next {
            // Follow `next` only on Replicate's own origin.
            Some(url) if url.starts_with(&self.base) => {
                let mut r = self.request(Method::Get, "/predictions");
                r.url = url.to_string();
                r
            }
            _ => self.request(Method::Get, "/predictions"),
        };
        let body = self.json(req).await?;
        let results = body
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let next = body.get("next").and_then(Value::as_str).map(str::to_string);
        Ok((results, next))
    }

    /// The account's webhook signing secret (`whsec_...`).
    pub async fn webhook_secret(&self) -> Result<String, ReplicateError> {
        let body = self
            .json(self.request(Method::Get, "/webhooks/default/secret"))
            .await?;
        body.get("key")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ReplicateError::Unexpected {
                status: 200,
                detail: "webhook secret response has no key".into(),
            })
    }

    pub async fn account(&self) -> Result<Account, ReplicateError> {
        let resp = self.send(self.request(Method::Get, "/account")).await?;
        let body = resp.json().unwrap_or(Value::Null);
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let username = text("username").ok_or_else(|| ReplicateError::Unexpected {
            status: resp.status,
            detail: "account response has no username".into(),
        })?;
        Ok(Account {
            kind: text("type"),
            username,
            name: text("name"),
            github_url: text("github_url"),
        })
    }
}

fn retry_after(resp: &HttpResponse) -> Option<u64> {
    resp.header("retry-after")
        .or_else(|| resp.header("ratelimit-reset"))
        .and_then(|v| v.trim().parse().ok())
}

/// Replicate errors are problem+json; keep `detail` (or `title`), capped.
fn problem_detail(resp: &HttpResponse) -> String {
    let detail = resp
        .json()
        .and_then(|b| {
            b.get("detail")
                .or_else(|| b.get("title"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).into_owned());
    detail.chars().take(300).collect()
}

/// Asks Replicate who the configured token belongs to, for
/// `/api/cloud/providers/replicate/validate`: [`validation_body`] either way.
pub async fn validate<H: HttpClient>(http: &H, settings: &ProviderSettings) -> Value {
    let result = match ReplicateClient::new(http, &settings.api_base, &settings.token) {
        Ok(client) => client.account().await,
        Err(e) => Err(e),
    };
    validation_body(&result)
}

/// The `GET /api/cloud/providers/replicate/validate` body (SimpleTuner's shape).
pub fn validation_body(result: &Result<Account, ReplicateError>) -> Value {
    match result {
        Ok(a) => json!({
            "valid": true,
            "user_info": {
                "valid": true,
                "type": a.kind,
                "username": a.username,
                "name": a.name,
                "github_url": a.github_url,
                "token_source": "global",
            },
            "error": null,
        }),
        Err(e) => json!({ "valid": false, "user_info": null, "error": e.message() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::scripted::{Reply, ScriptedHttp, block_on as run};
    use serde_json::json;

    /// Replicate answering every request to `path` with `status` and `body`.
    fn canned(path: &str, status: u16, body: Value) -> ScriptedHttp {
        let http = ScriptedHttp::new();
        http.on(Method::Get, path, vec![Reply::Json(status, body)]);
        http
    }

    #[test]
    fn account_sends_bearer_token_to_v1() {
        let http = canned(
            "/v1/account",
            200,
            json!({"type": "user", "username": "alice", "name": "Alice"}),
        );
        let client = ReplicateClient::new(&http, "http://fake:1/v1/", "r8_secret").unwrap();
        let account = run(client.account()).unwrap();
        assert_eq!(account.username, "alice");
        let seen = http.requests();
        assert_eq!(seen[0].url, "http://fake:1/v1/account");
        assert!(
            seen[0]
                .headers
                .contains(&("authorization".into(), "Bearer r8_secret".into()))
        );
    }

    #[test]
    fn errors_map_and_never_echo_the_token() {
        let http = canned("/v1/account", 401, json!({"detail": "bad token r8_secret"}));
        let client = ReplicateClient::new(&http, DEFAULT_API_BASE, "r8_secret").unwrap();
        let err = run(client.account()).unwrap_err();
        assert_eq!(err, ReplicateError::Unauthorized);
        let body = validation_body(&Err(err)).to_string();
        assert!(!body.contains("r8_secret"));

        let http = canned("/v1/account", 418, json!({"detail": "teapot r8_secret"}));
        let client = ReplicateClient::new(&http, DEFAULT_API_BASE, "r8_secret").unwrap();
        let err = run(client.account()).unwrap_err();
        assert!(
            err.message().contains("teapot [redacted]"),
            "{}",
            err.message()
        );

        let http = ScriptedHttp::new();
        http.on(
            Method::Get,
            "/v1/account",
            vec![Reply::Status(429, vec![("Retry-After", "7")])],
        );
        let client = ReplicateClient::new(&http, DEFAULT_API_BASE, "r8_secret").unwrap();
        assert_eq!(
            run(client.account()).unwrap_err(),
            ReplicateError::RateLimited {
                retry_after_secs: Some(7)
            }
        );
    }

    #[test]
    fn empty_token_is_not_configured() {
        let http = ScriptedHttp::new();
        assert!(matches!(
            ReplicateClient::new(&http, DEFAULT_API_BASE, "  "),
            Err(ReplicateError::NotConfigured)
        ));
        assert_eq!(ReplicateError::NotConfigured.to_api_error().status, 503);
    }
}
