//! Cost estimates: max steps × seconds per step × the profile's rate, with
//! seconds per step learnt from this installation's finished jobs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kernel::kv::{KvStore, get_json};

/// Typical seconds per training step when this installation has no history
/// (SimpleTuner's published figures: a 1,000-step Flux LoRA takes 30–60 min).
pub const TYPICAL_SECONDS_PER_STEP: f64 = 2.7;
pub const DEFAULT_STEPS: u64 = 1000;

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
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_STEPS)
}

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
