//! Provider settings (`PUT/GET /api/cloud/providers/{provider}`, admin):
//! partial updates with validation, unknown fields refused by name, and the
//! Replicate token write-only (reported as configured + last four characters).
//! Stored at `settings:provider:replicate`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::kv::{self, KvStore, create_once, get_json};
use crate::providers::catalog::{PROFILES, find_profile, round_cents};

/// Settings every provider call is made with: the component's variables, overridden
/// by what an admin stored ([`StoredSettings::apply_to`]).
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    pub api_base: String,
    pub token: String,
    /// This server's public origin, for Replicate's webhook.
    pub public_url: Option<String>,
    /// Reads of an active job older than this ask Replicate again.
    pub refresh_after_ms: u64,
}

pub const DEFAULT_REFRESH_AFTER_MS: u64 = 5_000;

impl ProviderSettings {
    /// The same settings with every read asking Replicate (the sync and
    /// `sync_active=true` refresh whatever the last answer's age).
    pub fn always_refresh(&self) -> Self {
        ProviderSettings {
            refresh_after_ms: 0,
            ..self.clone()
        }
    }
}

pub const KEY: &str = "settings:provider:replicate";

/// The highest price an admin may set for a profile: $1/s ($3,600/h), some
/// 80 times an 8×H100; a bound so money arithmetic stays in range.
pub const MAX_COST_PER_SECOND: f64 = 1.0;
/// The highest cost limit an admin may set, in USD.
pub const MAX_COST_LIMIT_USD: f64 = 1e9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Daily,
    Weekly,
    #[default]
    Monthly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LimitAction {
    #[default]
    Warn,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LimitScope {
    /// All jobs of the installation.
    #[default]
    Global,
    /// Each user's own jobs.
    User,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredSettings {
    pub public_url: Option<String>,
    pub hardware_profile: Option<String>,
    pub version_override: Option<String>,
    /// Profile id → $/s for the whole profile (overrides the price table).
    pub hardware_info: BTreeMap<String, f64>,
    pub cost_limit_enabled: bool,
    pub cost_limit_amount: Option<f64>,
    pub cost_limit_period: Period,
    pub cost_limit_action: LimitAction,
    pub cost_limit_scope: LimitScope,
    /// Write-only.
    pub api_token: Option<String>,
    /// The deadline of jobs that do not set their own (`Cancel-After`).
    #[serde(default)]
    pub max_runtime_minutes: Option<u32>,
}

impl StoredSettings {
    pub fn load(kv: &dyn KvStore) -> Result<Self, ApiError> {
        Ok(get_json(kv, KEY)
            .map_err(ApiError::from)?
            .unwrap_or_default())
    }

    /// $/s of a profile: the override, else the price table.
    pub fn rate(&self, profile: &str) -> Option<f64> {
        self.hardware_info
            .get(profile)
            .copied()
            .or_else(|| find_profile(profile).map(|p| p.cost_per_second()))
    }

    /// `GET /api/cloud/providers` with this installation's prices and default
    /// profile (what submits and estimates use), not just the published ones.
    pub fn provider_list(&self, configured: bool) -> Value {
        let mut list = crate::providers::catalog::provider_list(configured);
        let replicate = &mut list["providers"][0];
        if let Some(default) = self.hardware_profile.as_deref().and_then(find_profile) {
            replicate["hardware_profile"] = json!(default.id);
            replicate["hardware"] = json!(default.label());
        }
        if let Some(profiles) = replicate["hardware_profiles"].as_array_mut() {
            for p in profiles {
                let id = p["id"].as_str().unwrap_or_default().to_string();
                if let Some(rate) = self.rate(&id) {
                    p["cost_per_second"] = json!(rate);
                    p["cost_per_hour"] = json!(round_cents(rate * 3600.0));
                }
            }
        }
        let default = replicate["hardware_profile"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(rate) = self.rate(&default) {
            replicate["cost_per_hour"] = json!(round_cents(rate * 3600.0));
        }
        list
    }

    /// Variables give the defaults; stored settings win.
    pub fn apply_to(&self, mut s: ProviderSettings) -> ProviderSettings {
        if let Some(t) = &self.api_token {
            s.token = t.clone();
        }
        if let Some(u) = &self.public_url {
            s.public_url = Some(u.clone());
        }
        s
    }

    /// The API view: no token, only whether one is set and its last four.
    pub fn to_api(&self, variable_token_set: bool) -> Value {
        let token = self.api_token.as_deref();
        let mut view = json!({
            "provider": "replicate",
            "config": {
                "public_url": self.public_url,
                "webhook_url": self.public_url,
                "hardware_profile": self.hardware_profile,
                "version_override": self.version_override,
                "max_runtime_minutes": self.max_runtime_minutes,
                "hardware_info": PROFILES.iter().map(|p| (p.id.to_string(), json!({
                    "name": p.label(),
                    "cost_per_second": self.rate(p.id),
                    "cost_per_hour": self.rate(p.id).map(|r| (r * 3600.0 * 100.0).round() / 100.0),
                    "overridden": self.hardware_info.contains_key(p.id),
                }))).collect::<Map<_, _>>(),
                "cost_limit_enabled": self.cost_limit_enabled,
                "cost_limit_amount": self.cost_limit_amount,
                "cost_limit_period": self.cost_limit_period,
                "cost_limit_action": self.cost_limit_action,
                "cost_limit_scope": self.cost_limit_scope,
                "api_token": {
                    "configured": token.is_some() || variable_token_set,
                    "source": if token.is_some() { "settings" } else if variable_token_set { "variable" } else { "none" },
                    "last4": token.map(|t| t.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<String>()),
                },
            },
        });
        // No amount set: leave it out rather than send `null`, which
        // SimpleTuner's CLI cannot format (`cost-limit show` reads it with a
        // default of 0).
        if self.cost_limit_amount.is_none()
            && let Some(config) = view["config"].as_object_mut()
        {
            config.remove("cost_limit_amount");
        }
        view
    }
}

const FIELDS: [&str; 12] = [
    "public_url",
    "webhook_url",
    "hardware_profile",
    "version_override",
    "hardware_info",
    "cost_limit_enabled",
    "cost_limit_amount",
    "cost_limit_period",
    "cost_limit_action",
    "cost_limit_scope",
    "api_token",
    "max_runtime_minutes",
];

/// A settings change in the event log: which fields, and the new values of
/// the cost-limit ones (never the token, whose field name alone is kept).
pub fn record_change(kv: &dyn KvStore, actor: &str, kind: &str, patch: &Value, now_ms: u64) {
    let fields: Vec<&String> = patch
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let limits: Map<String, Value> = patch
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.starts_with("cost_limit_") || *k == "max_runtime_minutes")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    crate::kernel::event_log::record(
        kv,
        crate::kernel::event_log::NewEvent {
            kind,
            actor,
            target: Some("replicate"),
            owner: None,
            detail: json!({"fields": fields, "limits": limits}),
        },
        now_ms,
    );
}

/// The longest deadline a job may have: a week.
pub const MAX_RUNTIME_MINUTES: u64 = 7 * 24 * 60;

/// A `max_runtime_minutes` value: `null` is none, else 1 ..= a week.
pub fn max_runtime_minutes(v: &Value) -> Result<Option<u32>, ApiError> {
    if v.is_null() {
        return Ok(None);
    }
    v.as_u64()
        .filter(|m| (1..=MAX_RUNTIME_MINUTES).contains(m))
        .map(|m| Some(m as u32))
        .ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_max_runtime",
                format!(
                    "max_runtime_minutes must be a whole number of minutes from 1 to \
                     {MAX_RUNTIME_MINUTES} (7 days), got {v}"
                ),
            )
        })
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(400, "invalid_settings", m)
}

fn opt_string(v: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        _ => Err(bad(format!("{field} must be a string or null"))),
    }
}

/// 404 `unknown_provider` unless `name` is a provider cloudtuner has.
pub fn known_provider(name: &str) -> Result<(), ApiError> {
    if name == "replicate" {
        Ok(())
    } else {
        Err(ApiError::new(
            404,
            "unknown_provider",
            format!("no provider {name:?}; available: replicate"),
        ))
    }
}

/// Applies a partial update; every field is validated before anything is stored.
pub fn update(kv: &dyn KvStore, patch: &Value) -> Result<StoredSettings, ApiError> {
    let obj = object_with_fields(patch, &FIELDS, "invalid_settings")?;
    let apply = |s: &mut StoredSettings| -> Result<(), ApiError> {
        for (k, v) in obj {
            match k.as_str() {
                "public_url" | "webhook_url" => {
                    let u = opt_string(v, k)?;
                    if let Some(u) = &u
                        && !(u.starts_with("https://") || u.starts_with("http://"))
                    {
                        return Err(bad(format!(
                            "Invalid webhook URL {u:?}: use http(s)://host"
                        )));
                    }
                    s.public_url = u.map(|u| u.trim_end_matches('/').to_string());
                }
                "hardware_profile" => {
                    s.hardware_profile = match opt_string(v, k)? {
                        None => None,
                        Some(p) => Some(
                            find_profile(&p)
                                .ok_or_else(|| bad(format!("Invalid hardware profile {p:?}")))?
                                .id
                                .to_string(),
                        ),
                    }
                }
                "max_runtime_minutes" => {
                    s.max_runtime_minutes = max_runtime_minutes(v).map_err(|e| bad(e.message))?;
                }
                "version_override" => {
                    let o = opt_string(v, k)?;
                    if let Some(o) = &o
                        && !o.contains(':')
                    {
                        return Err(bad("version_override must look like owner/model:version"));
                    }
                    s.version_override = o;
                }
                "hardware_info" => {
                    let m = v
                        .as_object()
                        .ok_or_else(|| bad("hardware_info must be an object"))?;
                    for (profile, info) in m {
                        let id = find_profile(profile)
                            .ok_or_else(|| {
                                bad(format!("hardware_info: unknown profile {profile:?}"))
                            })?
                            .id;
                        let rate = info
                            .get("cost_per_second")
                            .or(Some(info))
                            .and_then(Value::as_f64)
                            .filter(|r| (0.0..=MAX_COST_PER_SECOND).contains(r))
                            .ok_or_else(|| {
                                bad(format!(
                                    "hardware_info.{profile}: cost_per_second must be a number \
                                     from 0 to {MAX_COST_PER_SECOND} ($/s for the whole profile)"
                                ))
                            })?;
                        s.hardware_info.insert(id.to_string(), rate);
                    }
                }
                "cost_limit_enabled" => {
                    s.cost_limit_enabled = v
                        .as_bool()
                        .ok_or_else(|| bad("cost_limit_enabled must be a boolean"))?
                }
                "cost_limit_amount" => {
                    s.cost_limit_amount = match v {
                        Value::Null => None,
                        _ => Some(
                            v.as_f64()
                                .filter(|a| (0.0..=MAX_COST_LIMIT_USD).contains(a))
                                .ok_or_else(|| {
                                    bad(format!(
                                        "Cost limit amount must be non-negative and at most \
                                         {MAX_COST_LIMIT_USD:.0}"
                                    ))
                                })?,
                        ),
                    }
                }
                "cost_limit_period" => {
                    s.cost_limit_period = serde_json::from_value(v.clone()).map_err(|_| {
                        bad("Cost limit period must be 'daily', 'weekly', or 'monthly'")
                    })?
                }
                "cost_limit_action" => {
                    s.cost_limit_action = serde_json::from_value(v.clone())
                        .map_err(|_| bad("Cost limit action must be 'warn' or 'block'"))?
                }
                "cost_limit_scope" => {
                    s.cost_limit_scope = serde_json::from_value(v.clone())
                        .map_err(|_| bad("cost_limit_scope must be 'global' or 'user'"))?
                }
                "api_token" => s.api_token = opt_string(v, k)?,
                _ => unreachable!("checked above"),
            }
        }
        Ok(())
    };
    // Validate on a copy first so a bad field leaves nothing half-written.
    let mut probe = StoredSettings::load(kv)?;
    apply(&mut probe)?;
    let initial = serde_json::to_vec(&StoredSettings::default()).expect("settings");
    create_once(kv, KEY, &initial).map_err(ApiError::from)?;
    let bytes = kv::update::<ApiError>(kv, KEY, |cur| {
        let mut s: StoredSettings = serde_json::from_slice(cur).unwrap_or_default();
        apply(&mut s)?;
        Ok(serde_json::to_vec(&s).expect("settings"))
    })
    .map_err(|e| match e {
        kv::UpdateError::Rejected(api) => api,
        other => ApiError::from(other.into_kv("the provider settings")),
    })?;
    Ok(serde_json::from_slice(&bytes).expect("settings"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn the_provider_list_shows_this_installations_prices_and_default() {
        let kv = MemoryKv::default();
        let s = update(&kv, &json!({"hardware_profile": "l40s", "hardware_info": {"h100": {"cost_per_second": 0.002}}})).unwrap();
        let list = s.provider_list(true);
        let r = &list["providers"][0];
        assert_eq!(r["hardware_profile"], "l40s");
        assert_eq!(r["cost_per_hour"], 3.5);
        let h100 = r["hardware_profiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "h100")
            .unwrap();
        assert_eq!(h100["cost_per_hour"], 7.2);
        assert_eq!(h100["cost_per_second"], 0.002);
    }

    #[test]
    fn an_unset_cost_limit_amount_is_left_out_not_null() {
        let fresh = StoredSettings::default().to_api(false);
        assert_eq!(fresh["config"]["cost_limit_enabled"], false);
        assert!(
            fresh["config"].get("cost_limit_amount").is_none(),
            "{fresh}"
        );
        let kv = MemoryKv::default();
        let s = update(&kv, &json!({"cost_limit_amount": 12.5})).unwrap();
        assert_eq!(s.to_api(false)["config"]["cost_limit_amount"], 12.5);
    }

    #[test]
    fn partial_updates_validate_and_never_return_the_token() {
        let kv = MemoryKv::default();
        let s = update(&kv, &json!({"cost_limit_enabled": true, "cost_limit_amount": 50, "api_token": "r8_secret_abcd"})).unwrap();
        assert!(s.cost_limit_enabled);
        let api = s.to_api(false).to_string();
        assert!(!api.contains("r8_secret"));
        assert!(api.contains("\"last4\":\"abcd\""));
        let s = update(&kv, &json!({"cost_limit_period": "weekly", "hardware_info": {"h100": {"cost_per_second": 0.002}}})).unwrap();
        assert_eq!(
            (s.cost_limit_amount, s.cost_limit_period),
            (Some(50.0), Period::Weekly)
        );
        assert_eq!(s.rate("h100"), Some(0.002));
        assert_eq!(
            s.rate("h100-x2"),
            Some(2.0 * crate::providers::catalog::H100.cost_per_second)
        );
        for bad in [
            json!({"cost_limit_amount": -1}),
            json!({"cost_limit_period": "yearly"}),
            json!({"cost_limit_action": "explode"}),
            json!({"webhook_url": "ftp://x"}),
            json!({"hardware_profile": "a100"}),
            json!({"s3_delivery": {}}),
            json!({"cost_limit_amount": 5, "hardware_info": {"zz": 1}}),
        ] {
            assert_eq!(update(&kv, &bad).unwrap_err().status, 400, "{bad}");
        }
        // A refused patch changed nothing, not even its valid fields.
        assert_eq!(
            StoredSettings::load(&kv).unwrap().cost_limit_amount,
            Some(50.0)
        );
        let err = update(&kv, &json!({"s3_delivery": {}, "bogus": 1})).unwrap_err();
        assert!(err.message.contains("s3_delivery") && err.message.contains("bogus"));
    }
}
