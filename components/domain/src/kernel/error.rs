//! The one error shape every endpoint answers with:
//! `{"error": code, "message": text, "details"?: {...}}`.

use serde_json::{Map, Value, json};

/// The code of every answer to a store outage.
pub const STORAGE_UNAVAILABLE: &str = "storage_unavailable";
/// How long a client should wait before retrying after a store outage.
pub const RETRY_AFTER_SECS: u64 = 5;

/// An error an endpoint reports to its caller. `code` is stable and
/// machine-readable; `message` is for people and never holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!(
                "method {method} is not allowed here; use {}",
                allowed.join(", ")
            ),
        )
        .with_detail("allowed", allowed.to_vec())
    }

    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(500, "storage_error", message)
    }

    /// The store cannot be reached right now: 503 `storage_unavailable` with
    /// `Retry-After` (the one code every store outage answers with).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, STORAGE_UNAVAILABLE, message)
            .with_detail("retry_after_secs", RETRY_AFTER_SECS)
    }

    pub fn provider(provider: &str, status: u16, message: impl Into<String>) -> Self {
        Self::new(
            status,
            "provider_error",
            format!("{provider}: {}", message.into()),
        )
        .with_detail("provider", provider)
    }

    /// The same error with another status (a missing object named in a
    /// request body is the request's fault: 400, where its own route says 404).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The JSON body: `{"error", "message", "detail"}` plus `details` when
    /// there are any. `detail` repeats the message because it is the one field
    /// FastAPI clients such as SimpleTuner's CLI show.
    pub fn body(&self) -> Value {
        let mut body =
            json!({ "error": self.code, "message": self.message, "detail": self.message });
        if !self.details.is_empty() {
            body["details"] = Value::Object(self.details.clone());
        }
        body
    }
}

/// A request body as an object whose fields are all among `allowed`: the one
/// check every endpoint that takes a JSON object uses, so an unknown field is
/// always refused the same way (400 `code`, naming the fields, with
/// `details.unknown_fields`).
pub fn object_with_fields<'a>(
    body: &'a Value,
    allowed: &[&str],
    code: &'static str,
) -> Result<&'a Map<String, Value>, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::new(400, "invalid_json", "request body must be a JSON object"))?;
    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(obj);
    }
    Err(ApiError::new(
        400,
        code,
        format!(
            "unknown fields: {}; expected {}",
            unknown.join(", "),
            allowed.join(", ")
        ),
    )
    .with_detail("unknown_fields", unknown))
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A store failure is the server's: 500 `storage_error`, naming what failed;
/// a store that cannot give cloudtuner's guarantees is 503 `storage_unsupported`;
/// a store that cannot be reached right now is 503 `storage_unavailable` with
/// `Retry-After` (the message is the store's words, never debug text).
impl From<crate::kernel::kv::KvError> for ApiError {
    fn from(e: crate::kernel::kv::KvError) -> Self {
        match e.kind {
            crate::kernel::kv::KvErrorKind::Unsupported => {
                ApiError::new(503, "storage_unsupported", e.message)
            }
            crate::kernel::kv::KvErrorKind::Unavailable => ApiError::unavailable(format!(
                "the data store is unavailable right now; try again in a few seconds ({})",
                e.message
            )),
            crate::kernel::kv::KvErrorKind::Failed => ApiError::storage(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_stable_shape_and_omits_empty_details() {
        let e = ApiError::not_found("no job abc");
        assert_eq!(
            e.body(),
            json!({"error": "not_found", "message": "no job abc", "detail": "no job abc"})
        );
        let e = ApiError::method_not_allowed("PUT", &["GET"]);
        assert_eq!(e.status, 405);
        assert_eq!(e.body()["details"]["allowed"], json!(["GET"]));
    }

    #[test]
    fn a_store_outage_is_a_503_with_retry_after_in_words() {
        use crate::kernel::kv::KvError;
        let e = ApiError::from(KvError::unavailable(
            "the shared Redis at redis://h:6379 cannot be reached (GET: Connection refused)",
        ));
        assert_eq!((e.status, e.code), (503, STORAGE_UNAVAILABLE));
        assert_eq!(e.details["retry_after_secs"], RETRY_AFTER_SECS);
        assert!(e.message.contains("cannot be reached") && !e.message.contains('{'));
        let e = ApiError::from(KvError::new("a key holds the wrong type"));
        assert_eq!((e.status, e.code), (500, "storage_error"));
        assert!(!e.message.contains("KvError"), "{}", e.message);
    }

    #[test]
    fn unknown_fields_are_named_and_listed() {
        let body = json!({"name": "x", "colour": 1, "size": 2});
        let e = object_with_fields(&body, &["name"], "invalid_request").unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_request"));
        assert_eq!(e.message, "unknown fields: colour, size; expected name");
        assert_eq!(e.details["unknown_fields"], json!(["colour", "size"]));
        assert!(object_with_fields(&json!({"name": 1}), &["name"], "x").is_ok());
        assert_eq!(
            object_with_fields(&json!([1]), &["name"], "x")
                .unwrap_err()
                .code,
            "invalid_json"
        );
    }
}
