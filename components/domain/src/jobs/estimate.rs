//! `POST /api/cloud/cost-estimate`: what a training would cost, resolved the
//! way a submit resolves it (saved config, inline overrides, hardware
//! profile), and with a `dataloader_config` what the submit would upload.

use std::path::Path;

use serde_json::{Value, json};

use crate::auth::principal::Principal;
use crate::billing::estimate::{TYPICAL_SECONDS_PER_STEP, estimate};
use crate::jobs::configs::ConfigStore;
use crate::jobs::datasets::{Sources, preview};
use crate::jobs::submit::request::{opt_str, resolve_profile, resolve_training};
use crate::kernel::error::ApiError;
use crate::kernel::kv::KvStore;
use crate::providers::catalog::round_cents;
use crate::providers::settings::StoredSettings;

pub fn cost_estimate(
    kv: &dyn KvStore,
    principal: &Principal,
    stored: &StoredSettings,
    datasets_root: &Path,
    body: &Value,
) -> Result<Value, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::new(400, "invalid_json", "request body must be a JSON object"))?;
    let training = resolve_training(obj, &ConfigStore::new(kv), principal)?;
    let profile = resolve_profile(
        opt_str(obj, "hardware_profile")?.as_deref(),
        stored.hardware_profile.as_deref(),
    )?;
    let rate = stored.rate(profile.id).unwrap_or(0.0);
    let e = estimate(kv, &training.config, profile.id, rate);
    // A deadline caps the cost: running to it is the worst case, and what a
    // submit reserves against the spend limit.
    let deadline = crate::jobs::submit::request::max_runtime(obj, stored.max_runtime_minutes)?;
    let worst_case = deadline.map(|m| round_cents(rate * f64::from(m) * 60.0));
    // With a dataloader: what the submit would upload (counted, not zipped);
    // a bad dataset is reported here instead of failing the estimate.
    let (upload, upload_error) = match obj.get("dataloader_config").filter(|d| d.is_array()) {
        None => (Value::Null, Value::Null),
        Some(dl) => match preview(&Sources::new(datasets_root, kv, &principal.id), dl) {
            Ok(u) => (u, Value::Null),
            Err(err) => (Value::Null, json!(err.message)),
        },
    };
    let message = if e.basis == "history" {
        "From this installation's completed jobs on this profile.".to_string()
    } else {
        format!(
            "No completed jobs on this profile yet: using SimpleTuner's published typical speed ({TYPICAL_SECONDS_PER_STEP} s/step)."
        )
    };
    Ok(json!({
        "upload": upload,
        "upload_error": upload_error,
        "has_estimate": true,
        "estimated_cost_usd": round_cents(e.usd),
        "low_usd": round_cents(e.low),
        "high_usd": round_cents(e.high),
        "currency": "USD",
        "hardware_profile": profile.id,
        "hardware_cost_per_hour": round_cents(rate * 3600.0),
        "max_train_steps": e.steps,
        "seconds_per_step": e.seconds_per_step,
        "estimated_duration_seconds": (e.steps as f64 * e.seconds_per_step).round(),
        "basis": e.basis,
        "message": message,
        "max_runtime_minutes": deadline,
        "worst_case_usd": worst_case,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn estimates_a_saved_config_like_a_submit_resolves_it() {
        let kv = MemoryKv::default();
        let p = Principal::admin("alice");
        ConfigStore::new(&kv)
            .put(
                "alice",
                "flux",
                json!({"--max_train_steps": 100}),
                json!([]),
                0,
            )
            .unwrap();
        let stored = StoredSettings::default();
        let root = Path::new("/nonexistent");
        let body = json!({"config_name_to_load": "flux", "config": {"--max_train_steps": 200}});
        let out = cost_estimate(&kv, &p, &stored, root, &body).unwrap();
        assert_eq!(out["max_train_steps"], 200, "inline values override");
        assert_eq!(out["basis"], "typical");
        assert!(out["message"].as_str().unwrap().contains("2.7 s/step"));
        let missing = json!({"config_name_to_load": "nope"});
        let e = cost_estimate(&kv, &p, &stored, root, &missing).unwrap_err();
        assert_eq!((e.status, e.code), (400, "config_not_found"));
        let e = cost_estimate(&kv, &p, &stored, root, &json!({})).unwrap_err();
        assert_eq!(e.code, "invalid_config");
        let bad = json!({"config": {"a": 1}, "hardware_profile": "a100"});
        let e = cost_estimate(&kv, &p, &stored, root, &bad).unwrap_err();
        assert_eq!(e.code, "invalid_hardware_profile");
    }
}
