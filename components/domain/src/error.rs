//! The one error shape every endpoint answers with:
//! `{"error": code, "message": text, "details"?: {...}}`.

use serde_json::{Map, Value, json};

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

    pub fn provider(provider: &str, status: u16, message: impl Into<String>) -> Self {
        Self::new(
            status,
            "provider_error",
            format!("{provider}: {}", message.into()),
        )
        .with_detail("provider", provider)
    }

    /// The JSON body: `{"error", "message"}` plus `details` when there are any.
    pub fn body(&self) -> Value {
        let mut body = json!({ "error": self.code, "message": self.message });
        if !self.details.is_empty() {
            body["details"] = Value::Object(self.details.clone());
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_stable_shape_and_omits_empty_details() {
        let e = ApiError::not_found("no job abc");
        assert_eq!(
            e.body(),
            json!({"error": "not_found", "message": "no job abc"})
        );
        let e = ApiError::method_not_allowed("PUT", &["GET"]);
        assert_eq!(e.status, 405);
        assert_eq!(e.body()["details"]["allowed"], json!(["GET"]));
    }
}
