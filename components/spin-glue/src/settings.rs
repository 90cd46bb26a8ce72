//! Settings from Spin variables, overridden by what an admin stored.

use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::kv::KvStore;
use cloudtuner_domain::providers::replicate::DEFAULT_API_BASE;
use cloudtuner_domain::providers::settings::{
    DEFAULT_REFRESH_AFTER_MS, ProviderSettings, StoredSettings,
};

/// A component variable, `None` when undefined or empty.
pub fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// What the variables say, before an admin's stored overrides.
fn from_variables() -> ProviderSettings {
    ProviderSettings {
        api_base: variable("replicate_api_base").unwrap_or_else(|| DEFAULT_API_BASE.to_string()),
        token: variable("replicate_api_token").unwrap_or_default(),
        public_url: variable("public_url"),
        refresh_after_ms: variable("refresh_after_ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_REFRESH_AFTER_MS),
    }
}

/// Both from one read of the stored settings: what an admin stored, and the
/// provider settings it makes with the variables.
pub(crate) fn stored_and_provider(
    kv: &dyn KvStore,
) -> Result<(StoredSettings, ProviderSettings), ApiError> {
    let stored = StoredSettings::load(kv)?;
    let provider = stored.apply_to(from_variables());
    Ok((stored, provider))
}

/// The provider settings; unreadable stored settings fall back to the variables.
pub fn provider(kv: &dyn KvStore) -> ProviderSettings {
    match StoredSettings::load(kv) {
        Ok(stored) => stored.apply_to(from_variables()),
        Err(_) => from_variables(),
    }
}
