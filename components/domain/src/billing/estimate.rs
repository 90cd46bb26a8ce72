//! Cost estimates: max steps × seconds per step × the profile's rate, with
//! seconds per step learnt from this installation's finished jobs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kernel::error::ApiError;
use crate::kernel::kv::{KvStore, get_json};

/// Typical seconds per training step when this installation has no history
/// (SimpleTuner's published figures: a 1,000-step Flux LoRA takes 30–60 min).
pub const TYPICAL_SECONDS_PER_STEP: f64 = 2.7;
pub const DEFAULT_STEPS: u64 = 1000;
/// The most steps a job may ask for: a million steps run for weeks on any
/// profile, far past what a fine-tune needs; more only overflows the money.
pub const MAX_TRAIN_STEPS: u64 = 1_000_000;
/// The most epochs a job may ask for (epochs bound the training when
/// `max_train_steps` is 0, and the estimate does not see them).
pub const MAX_TRAIN_EPOCHS: u64 = 10_000;
/// The most one job may reserve against the spend windows. A bound on every
/// input (steps, price, minutes) keeps each reservation under it, so the
/// spend counters (micro-dollars in an i64) never come near overflowing.
pub const MAX_ESTIMATE_USD: f64 = 1_000_000.0;

/// The config values that decide how long a job trains, each bounded: a
/// whole number from 0 to its maximum (CLI-style or bare key, number or
/// numeric string; empty or null is absent). Anything else is refused before
/// anything is reserved, so a cost is never computed from it.
pub fn check_training_length(config: &Value) -> Result<(), ApiError> {
    for (name, max) in [
        ("max_train_steps", MAX_TRAIN_STEPS),
        ("num_train_epochs", MAX_TRAIN_EPOCHS),
    ] {
        for key in [format!("--{name}"), name.to_string()] {
            let Some(v) = config.get(&key) else { continue };
            let n = match v {
                Value::Null => continue,
                Value::String(s) if s.trim().is_empty() => continue,
                Value::String(s) => s.trim().parse::<u64>().ok(),
                other => other.as_u64(),
            };
            if n.is_none_or(|n| n > max) {
                return Err(ApiError::new(
                    400,
                    "invalid_config",
                    format!("{key} must be a whole number from 0 to {max}, got {v}"),
                )
                .with_detail("field", key.as_str())
                .with_detail("max", max));
            }
        }
    }
    Ok(())
}

/// What a job reserves, in micro-dollars: refused with a clear 400 when the
/// estimate is not a finite amount up to [`MAX_ESTIMATE_USD`].
pub fn reservable_micros(est_usd: f64) -> Result<i64, ApiError> {
    if est_usd.is_finite() && (0.0..=MAX_ESTIMATE_USD).contains(&est_usd) {
        return Ok(super::micros(est_usd));
    }
    Err(ApiError::new(
        400,
        "estimate_too_large",
        format!(
            "this job's estimated cost is more than one job may reserve (${MAX_ESTIMATE_USD:.0}); \
             ask for fewer steps or a shorter max_runtime_minutes"
        ),
    )
    .with_detail("max_estimate_usd", MAX_ESTIMATE_USD))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub usd: f64,
    pub low: f64,
    pub high: f64,
    pub steps: u64,
    pub seconds_per_step: f64,
    pub basis: &'static str,
}

/// `max_train_steps` from a config with CLI-style or bare keys.
pub fn max_steps(config: &Value) -> u64 {
    ["--max_train_steps", "max_train_steps"]
        .iter()
        .find_map(|k| {
            let v = config.get(*k)?;
            v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
        })
        .filter(|s| (1..=MAX_TRAIN_STEPS).contains(s))
        .unwrap_or(DEFAULT_STEPS)
}

/// Seconds per step beyond which a learnt history is not believed.
const MAX_SECONDS_PER_STEP: f64 = 3600.0;

/// Seconds per step learnt from this installation's completed jobs, per profile.
pub(super) fn history_key(profile: &str) -> String {
    format!("stats:profile:{profile}")
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct History {
    pub(super) steps: u64,
    pub(super) seconds: f64,
    pub(super) jobs: u64,
}

pub fn estimate(kv: &dyn KvStore, config: &Value, profile: &str, rate: f64) -> Estimate {
    let steps = max_steps(config);
    let history: History = get_json(kv, &history_key(profile))
        .ok()
        .flatten()
        .unwrap_or_default();
    let (sps, basis) = if history.jobs > 0 && history.steps > 0 {
        (history.seconds / history.steps as f64, "history")
    } else {
        (TYPICAL_SECONDS_PER_STEP, "typical")
    };
    // A history is only as good as what trainers reported: an absurd one
    // falls back to the typical speed rather than pricing every job absurdly.
    let (sps, basis) = if sps.is_finite() && (0.0..=MAX_SECONDS_PER_STEP).contains(&sps) {
        (sps, basis)
    } else {
        (TYPICAL_SECONDS_PER_STEP, "typical")
    };
    let usd = steps as f64 * sps * rate;
    Estimate {
        usd,
        low: usd * 0.67,
        high: usd * 1.33,
        steps,
        seconds_per_step: sps,
        basis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;
    use serde_json::json;

    #[test]
    fn training_length_is_bounded_before_it_is_priced() {
        for ok in [
            json!({"--max_train_steps": 1000}),
            json!({"max_train_steps": "250", "--num_train_epochs": 10}),
            json!({"--max_train_steps": 0, "--num_train_epochs": "100"}),
            json!({"--max_train_steps": MAX_TRAIN_STEPS}),
            json!({"--max_train_steps": "", "num_train_epochs": null}),
            json!({"--model_family": "flux"}),
        ] {
            check_training_length(&ok).unwrap_or_else(|e| panic!("{ok}: {}", e.message));
        }
        for bad in [
            json!({"--max_train_steps": MAX_TRAIN_STEPS + 1}),
            json!({"--max_train_steps": u64::MAX}),
            json!({"max_train_steps": "99999999999999999999999"}),
            json!({"--max_train_steps": 1e30}),
            json!({"--max_train_steps": -5}),
            json!({"--max_train_steps": 10.5}),
            json!({"--max_train_steps": "ten"}),
            json!({"--max_train_steps": true}),
            json!({"--num_train_epochs": MAX_TRAIN_EPOCHS + 1}),
        ] {
            let e = check_training_length(&bad).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_config"), "{bad}");
        }
        // The largest job allowed at the highest price an admin may set
        // still prices within what a job may reserve... at typical speed.
        let kv = MemoryKv::default();
        let e = estimate(
            &kv,
            &json!({"--max_train_steps": MAX_TRAIN_STEPS}),
            "h100-x8",
            0.0122,
        );
        assert!(reservable_micros(e.usd).is_ok(), "{}", e.usd);
        assert!(reservable_micros(f64::MAX).is_err());
    }

    #[test]
    fn an_absurd_history_falls_back_to_the_typical_speed() {
        let kv = MemoryKv::default();
        crate::kernel::kv::set_json(
            &kv,
            &history_key("h100"),
            &History {
                steps: 1,
                seconds: 1e300,
                jobs: 1,
            },
        )
        .unwrap();
        let e = estimate(&kv, &json!({"--max_train_steps": 10}), "h100", 1.0);
        assert_eq!(e.basis, "typical");
        assert!(e.usd.is_finite());
    }

    #[test]
    fn steps_come_from_either_key_style() {
        assert_eq!(max_steps(&json!({"--max_train_steps": 500})), 500);
        assert_eq!(max_steps(&json!({"max_train_steps": "250"})), 250);
        assert_eq!(max_steps(&json!({})), DEFAULT_STEPS);
        let kv = MemoryKv::default();
        let e = estimate(&kv, &json!({"--max_train_steps": 1000}), "h100", 0.001525);
        assert_eq!(e.basis, "typical");
        assert!((e.usd - 1000.0 * 2.7 * 0.001525).abs() < 1e-9);
    }
}
