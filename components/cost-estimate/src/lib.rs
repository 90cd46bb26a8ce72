//! `POST /api/cloud/cost-estimate {"config" | "config_name_to_load",
//! "hardware_profile"?}`: an estimate with a range, from max steps and this
//! installation's seconds/step for the profile (or published typical figures).
//! With `dataloader_config`, also the upload summary (datasets, files, bytes).

use cloudtuner_domain::configs::ConfigStore;
use std::path::Path;

use cloudtuner_domain::costs::estimate;
use cloudtuner_domain::datasets::{GUEST_MOUNT, preview};
use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::providers::{DEFAULT_PROFILE, find_profile};
use cloudtuner_spin::{
    SpinKv, json, json_body, require_method, require_principal, respond, stored_settings,
};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["POST"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        let body: Value = json_body(&req)?;
        let stored = stored_settings(&kv)?;
        let config = match (
            body.get("config"),
            body.get("config_name_to_load").and_then(Value::as_str),
        ) {
            (Some(c), _) if c.is_object() => c.clone(),
            (_, Some(name)) => {
                ConfigStore::new(&kv)
                    .get(&p.id, name)?
                    .ok_or_else(|| {
                        ApiError::new(
                            400,
                            "config_not_found",
                            format!("no saved config named {name:?}"),
                        )
                    })?
                    .config
            }
            _ => {
                return Err(ApiError::new(
                    400,
                    "invalid_config",
                    "send `config` or `config_name_to_load`",
                ));
            }
        };
        let name = body
            .get("hardware_profile")
            .and_then(Value::as_str)
            .or(stored.hardware_profile.as_deref())
            .unwrap_or(DEFAULT_PROFILE);
        let profile = find_profile(name).ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_hardware_profile",
                format!("Invalid hardware profile {name:?}"),
            )
        })?;
        let rate = stored.rate(profile.id).unwrap_or(0.0);
        let e = estimate(&kv, &config, profile.id, rate);
        // With a dataloader: what the submit would upload (counted, not zipped);
        // a bad dataset is reported here instead of failing the estimate.
        let (upload, upload_error) = match body.get("dataloader_config").filter(|d| d.is_array()) {
            None => (Value::Null, Value::Null),
            Some(dl) => match preview(Path::new(GUEST_MOUNT), dl) {
                Ok(u) => (u, Value::Null),
                Err(err) => (Value::Null, j!(err.message)),
            },
        };
        Ok(json(
            200,
            &j!({
                "upload": upload,
                "upload_error": upload_error,
                "has_estimate": true,
                "estimated_cost_usd": round(e.usd),
                "low_usd": round(e.low),
                "high_usd": round(e.high),
                "currency": "USD",
                "hardware_profile": profile.id,
                "hardware_cost_per_hour": round(rate * 3600.0),
                "max_train_steps": e.steps,
                "seconds_per_step": e.seconds_per_step,
                "estimated_duration_seconds": (e.steps as f64 * e.seconds_per_step).round(),
                "basis": e.basis,
                "message": if e.basis == "history" {
                    "From this installation's completed jobs on this profile."
                } else {
                    "No completed jobs on this profile yet: using SimpleTuner's published typical speed (2.7 s/step)."
                },
            }),
        ))
    })())
}
