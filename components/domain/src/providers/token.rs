//! `PUT/DELETE /api/cloud/providers/{provider}/token`: the write-only
//! Replicate token alone, as SimpleTuner's CLI sets and deletes it
//! (`simpletuner cloud config set-token` / `delete-token`), answered in its
//! shape `{success, file_path, error}`. The token is kept with the provider
//! settings in the store, not in a file, so `file_path` is always null; like
//! every settings read, nothing answers the token back.

use serde_json::{Value, json};

use crate::kernel::error::ApiError;
use crate::kernel::kv::KvStore;
use crate::providers::settings::update;

fn saved() -> Value {
    json!({"success": true, "file_path": null, "error": null})
}

/// Stores `{"api_token": "r8_..."}` as the provider token.
pub fn put(kv: &dyn KvStore, body: &Value) -> Result<Value, ApiError> {
    let token = body
        .get("api_token")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_token",
                "send the token as {\"api_token\": \"r8_...\"}",
            )
        })?;
    if !token.starts_with("r8_") {
        return Err(ApiError::new(
            400,
            "invalid_token",
            "a Replicate API token starts with r8_ (replicate.com/account/api-tokens)",
        ));
    }
    update(kv, &json!({ "api_token": token }))?;
    Ok(saved())
}

/// Forgets the stored token; the `replicate_api_token` variable, if set,
/// applies again.
pub fn delete(kv: &dyn KvStore) -> Result<Value, ApiError> {
    update(kv, &json!({ "api_token": null }))?;
    Ok(saved())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;
    use crate::providers::settings::StoredSettings;

    #[test]
    fn a_token_is_stored_refused_when_malformed_and_forgotten() {
        let kv = MemoryKv::default();
        assert_eq!(
            put(&kv, &json!({"api_token": " r8_abcd "})).unwrap(),
            saved()
        );
        assert_eq!(
            StoredSettings::load(&kv).unwrap().api_token.as_deref(),
            Some("r8_abcd")
        );
        for bad in [
            json!({}),
            json!({"api_token": ""}),
            json!({"api_token": "sk-1"}),
        ] {
            let e = put(&kv, &bad).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_token"), "{bad}");
        }
        assert_eq!(delete(&kv).unwrap(), saved());
        assert_eq!(StoredSettings::load(&kv).unwrap().api_token, None);
    }
}
