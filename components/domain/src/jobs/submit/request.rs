//! The submit request: SimpleTuner's fields, validated, with a saved config
//! loaded and inline values merged over it.

use serde_json::{Map, Value, json};

use crate::auth::principal::Principal;
use crate::jobs::configs::{ConfigStore, validate_body};
use crate::jobs::delivery::{self, Delivery};
use crate::jobs::idempotency;
use crate::jobs::record::{is_secret_key, restore_redacted};
use crate::kernel::error::{ApiError, object_with_fields};
use crate::providers::catalog::{DEFAULT_PROFILE, HardwareProfile, find_profile, profile_ids};
use crate::providers::replicate::PROVIDER;
use crate::providers::settings::{ProviderSettings, StoredSettings, max_runtime_minutes};

/// Fields SimpleTuner clients send that cloudtuner accepts (some ignored).
const KNOWN_FIELDS: [&str; 14] = [
    "config",
    "dataloader_config",
    "config_name_to_load",
    "config_name",
    "tracker_run_name",
    "idempotency_key",
    "hardware_profile",
    "webhook_url",
    "snapshot_name",
    "snapshot_message",
    "upload_id",
    "delivery",
    "max_runtime_minutes",
    "team_id",
];

/// The training a request describes: the saved config named by
/// `config_name_to_load` (400 `config_not_found` when there is none), with
/// inline `config` values merged over it key by key, and the dataloader (the
/// inline one, else the saved one, else none).
pub struct Training {
    pub config: Value,
    pub dataloader: Value,
    pub config_name: Option<String>,
}

pub fn resolve_training(
    body: &Map<String, Value>,
    configs: &ConfigStore,
    principal: &Principal,
) -> Result<Training, ApiError> {
    let (mut config, mut dataloader, mut config_name) = (json!({}), Value::Null, None);
    if let Some(name) = opt_str(body, "config_name_to_load")? {
        let saved = configs
            .load(&principal.id, &name)
            .map_err(|e| e.with_status(400))?;
        config = saved.config;
        dataloader = saved.dataloader_config;
        config_name = Some(name);
    }
    match body.get("config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(inline)) => {
            let merged = config.as_object_mut().expect("object");
            for (k, v) in inline {
                // A loaded config's secret sent back as "***" (the redacted
                // display) stays the stored one, at any depth.
                if is_secret_key(k) && v == "***" {
                    continue;
                }
                let mut v = v.clone();
                restore_redacted(&mut v, merged.get(k));
                merged.insert(k.clone(), v);
            }
        }
        Some(_) => {
            return Err(ApiError::new(
                400,
                "invalid_config",
                "`config` must be a JSON object",
            ));
        }
    }
    if let Some(d) = body.get("dataloader_config").filter(|d| !d.is_null()) {
        dataloader = d.clone();
    }
    if dataloader.is_null() {
        dataloader = json!([]);
    }
    if config.as_object().is_some_and(Map::is_empty) {
        return Err(ApiError::new(
            400,
            "invalid_config",
            "No configuration provided: send `config` or `config_name_to_load`",
        ));
    }
    crate::jobs::models::check(&config)?;
    crate::billing::estimate::check_training_length(&config)?;
    Ok(Training {
        config,
        dataloader,
        config_name,
    })
}

/// The hardware profile asked for, else the admin's default, else cloudtuner's.
pub fn resolve_profile(
    requested: Option<&str>,
    default_profile: Option<&str>,
) -> Result<&'static HardwareProfile, ApiError> {
    let name = requested.or(default_profile).unwrap_or(DEFAULT_PROFILE);
    find_profile(name).ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_hardware_profile",
            format!(
                "Invalid Replicate hardware profile {name:?}. Valid profiles: {}",
                profile_ids().join(", ")
            ),
        )
    })
}

/// The validated request.
pub(super) struct Request {
    pub(super) config: Value,
    pub(super) dataloader: Value,
    pub(super) config_name: Option<String>,
    pub(super) tracker_run_name: Option<String>,
    pub(super) idempotency_key: Option<String>,
    pub(super) profile: &'static HardwareProfile,
    pub(super) webhook_base: Option<String>,
    pub(super) delivery: Delivery,
    pub(super) fingerprint: String,
    /// Replicate cancels the job this long after submit (`Cancel-After`).
    pub(super) max_runtime_minutes: Option<u32>,
    /// The config's LyCORIS settings, as the trainer's `lycoris_config` input.
    pub(super) lycoris: Option<String>,
    /// The team to charge the job to (one of the submitter's), if named.
    pub(super) team_id: Option<u64>,
}

/// `max_runtime_minutes` from the body, else the installation's default.
pub fn max_runtime(
    body: &Map<String, Value>,
    default_minutes: Option<u32>,
) -> Result<Option<u32>, ApiError> {
    match body.get("max_runtime_minutes") {
        None | Some(Value::Null) => Ok(default_minutes),
        Some(v) => max_runtime_minutes(v),
    }
}

/// This server's webhook route, where Replicate posts a job's news.
pub const WEBHOOK_ROUTE: &str = "/api/cloud/webhooks/replicate";

/// The origin Replicate's webhooks for a new job go to: this server's own
/// `public_url`, never one the submitter chooses. A webhook's body is the
/// whole prediction, its input included (the trainer config with this
/// server's per-job upload secret, the Hugging Face token), so a client
/// `webhook_url` is accepted only when it names this server (its origin or
/// its webhook route), for clients that send what they were configured with.
pub(crate) fn own_webhook(
    requested: Option<&str>,
    public_url: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let own = public_url
        .map(|u| u.trim().trim_end_matches('/'))
        .filter(|u| !u.is_empty());
    let Some(asked) = requested.map(|u| u.trim().trim_end_matches('/')) else {
        return Ok(own.map(str::to_string));
    };
    if let Some(own) = own
        && (asked == own || asked == format!("{own}{WEBHOOK_ROUTE}"))
    {
        return Ok(Some(own.to_string()));
    }
    let message = match own {
        Some(own) => format!(
            "webhook_url may only name this server ({own}): Replicate's webhooks carry the \
             job's input, so they go to this server alone; leave webhook_url out"
        ),
        None => "this server has no public_url, so Replicate's webhooks cannot reach it and \
                 go nowhere else; leave webhook_url out (the sync follows the job)"
            .to_string(),
    };
    Err(ApiError::new(400, "invalid_webhook_url", message).with_detail("webhook_url", asked))
}

pub(crate) fn opt_str(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` must be a string"))),
    }
}

pub(super) fn parse(
    raw: &[u8],
    provider: Option<&str>,
    configs: &ConfigStore,
    principal: &Principal,
    settings: &ProviderSettings,
    stored: &StoredSettings,
    hf_token: Option<&str>,
) -> Result<Request, ApiError> {
    let provider = provider.unwrap_or(PROVIDER);
    if provider != PROVIDER {
        return Err(ApiError::new(
            400,
            "unknown_provider",
            format!("unknown provider {provider:?}; available: replicate"),
        ));
    }
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("request body is not JSON: {e}"),
        )
    })?;
    let body = object_with_fields(&value, &KNOWN_FIELDS, "invalid_request")?;
    let idempotency_key = match body.get("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => {
            idempotency::validate_key(k)
                .map_err(|m| ApiError::new(400, "invalid_idempotency_key", m))?;
            Some(k.clone())
        }
        Some(_) => {
            return Err(ApiError::new(
                400,
                "invalid_idempotency_key",
                "idempotency_key must be a string",
            ));
        }
    };
    let Training {
        config,
        dataloader,
        config_name,
    } = resolve_training(body, configs, principal)?;
    validate_body(&config, &dataloader)?;
    let lycoris = super::lycoris::input(&config)?;
    let config_name = opt_str(body, "config_name")?.or(config_name);
    let tracker_run_name = opt_str(body, "tracker_run_name")?;
    if tracker_run_name.as_ref().is_some_and(|n| n.len() > 200) {
        return Err(ApiError::bad_request(
            "tracker_run_name is longer than 200 characters",
        ));
    }
    let profile = resolve_profile(
        opt_str(body, "hardware_profile")?.as_deref(),
        stored.hardware_profile.as_deref(),
    )?;
    let webhook_base = own_webhook(
        opt_str(body, "webhook_url")?.as_deref(),
        settings.public_url.as_deref(),
    )?;
    let delivery = delivery::plan(&delivery::Choice {
        config: &config,
        requested: opt_str(body, "delivery")?.as_deref(),
        hf_token_set: hf_token.is_some_and(|t| !t.trim().is_empty()),
        public_url: settings.public_url.as_deref(),
    })?;
    Ok(Request {
        config,
        dataloader,
        config_name,
        tracker_run_name,
        idempotency_key,
        profile,
        webhook_base,
        delivery,
        fingerprint: idempotency::fingerprint(&value),
        max_runtime_minutes: max_runtime(body, stored.max_runtime_minutes)?,
        lycoris,
        team_id: match body.get("team_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ApiError::new(400, "invalid_team_id", "team_id must be an integer team id")
            })?),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_go_only_to_this_servers_public_url() {
        let own = Some("https://me.example/");
        assert_eq!(
            own_webhook(None, own).unwrap().as_deref(),
            Some("https://me.example")
        );
        for same in [
            "https://me.example",
            "https://me.example/",
            "https://me.example/api/cloud/webhooks/replicate",
        ] {
            assert_eq!(
                own_webhook(Some(same), own).unwrap().as_deref(),
                Some("https://me.example"),
                "{same}"
            );
        }
        for other in [
            "https://attacker.example",
            "https://attacker.example/collect/api/cloud/webhooks/replicate",
            "https://me.example.attacker.example",
            "https://me.example/api/cloud/webhooks/replicate/../../x",
            "ftp://x",
        ] {
            let e = own_webhook(Some(other), own).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_webhook_url"), "{other}");
        }
        assert_eq!(own_webhook(None, None).unwrap(), None);
        assert_eq!(own_webhook(None, Some(" ")).unwrap(), None);
        let e = own_webhook(Some("https://attacker.example"), None).unwrap_err();
        assert!(e.message.contains("no public_url"), "{}", e.message);
    }
}
