//! Providers, their hardware profiles and the price table.
//!
//! Replicate's API reports neither hardware nor price per prediction, so the
//! price table lives here (defaults from SimpleTuner's `pricing.py`), overridable
//! per provider by later settings. A profile costs `base rate × GPU count`.

use serde_json::{Value, json};

/// One GPU type Replicate bills for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hardware {
    pub id: &'static str,
    pub name: &'static str,
    pub cost_per_second: f64,
    pub memory_gb: u32,
}

pub const L40S: Hardware = Hardware {
    id: "gpu-l40s",
    name: "L40S (48GB)",
    cost_per_second: 0.000_972_222,
    memory_gb: 48,
};

pub const H100: Hardware = Hardware {
    id: "gpu-h100",
    name: "H100 (80GB)",
    cost_per_second: 0.001_525,
    memory_gb: 80,
};

/// A trainer deployment: one Replicate model per GPU configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HardwareProfile {
    pub id: &'static str,
    pub hardware: Hardware,
    pub gpu_count: u32,
}

pub const DEFAULT_PROFILE: &str = "h100";
pub const TRAINER_OWNER: &str = "simpletuner";
pub const TRAINER_PREFIX: &str = "advanced-trainer-";

pub const PROFILES: [HardwareProfile; 8] = [
    profile("h100", H100, 1),
    profile("h100-x2", H100, 2),
    profile("h100-x4", H100, 4),
    profile("h100-x8", H100, 8),
    profile("l40s", L40S, 1),
    profile("l40s-x2", L40S, 2),
    profile("l40s-x4", L40S, 4),
    profile("l40s-x8", L40S, 8),
];

const fn profile(id: &'static str, hardware: Hardware, gpu_count: u32) -> HardwareProfile {
    HardwareProfile {
        id,
        hardware,
        gpu_count,
    }
}

impl HardwareProfile {
    /// `simpletuner/advanced-trainer-<id>`.
    pub fn model(&self) -> String {
        format!("{TRAINER_OWNER}/{TRAINER_PREFIX}{}", self.id)
    }

    /// "H100", "2x H100", ...
    pub fn label(&self) -> String {
        let gpu = if self.hardware.id == H100.id {
            "H100"
        } else {
            "L40S"
        };
        if self.gpu_count == 1 {
            gpu.to_string()
        } else {
            format!("{}x {gpu}", self.gpu_count)
        }
    }

    pub fn cost_per_second(&self) -> f64 {
        self.hardware.cost_per_second * f64::from(self.gpu_count)
    }

    /// Rounded to cents, as people read prices.
    pub fn cost_per_hour(&self) -> f64 {
        round_cents(self.cost_per_second() * 3600.0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "model": self.model(),
            "label": self.label(),
            "hardware_type": self.label(),
            "gpu_count": self.gpu_count,
            "gpu": self.hardware.name,
            "memory_gb": self.hardware.memory_gb * self.gpu_count,
            "cost_per_hour": self.cost_per_hour(),
            "cost_per_second": self.cost_per_second(),
        })
    }
}

pub fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Finds a profile by id or by one of SimpleTuner's aliases: case and `_` are
/// ignored, an `advanced-trainer-` prefix (with or without owner) is stripped,
/// and `2xh100`, `2x-h100`, `h100-x2`, `h100x2` all name the same profile.
pub fn find_profile(name: &str) -> Option<&'static HardwareProfile> {
    let lowered = name.trim().to_ascii_lowercase().replace('_', "-");
    let mut s = lowered.as_str();
    s = s.strip_prefix("simpletuner/").unwrap_or(s);
    s = s.strip_prefix(TRAINER_PREFIX).unwrap_or(s);
    let (gpu, count) = split_count(s)?;
    PROFILES
        .iter()
        .find(|p| p.gpu_count == count && p.id.split('-').next() == Some(gpu))
}

fn split_count(s: &str) -> Option<(&str, u32)> {
    for gpu in ["h100", "l40s"] {
        if s == gpu {
            return Some((gpu, 1));
        }
        // <gpu>-x<n> | <gpu>x<n>
        if let Some(rest) = s.strip_prefix(gpu) {
            let n = rest.strip_prefix("-x").or_else(|| rest.strip_prefix('x'))?;
            return n.parse().ok().map(|n| (gpu, n));
        }
        // <n>x<gpu> | <n>x-<gpu>
        if let Some(rest) = s.strip_suffix(gpu) {
            let n = rest.strip_suffix("x-").or_else(|| rest.strip_suffix('x'))?;
            return n.parse().ok().map(|n| (gpu, n));
        }
    }
    None
}

pub fn profile_ids() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.id).collect()
}

/// The `GET /api/cloud/providers` body.
pub fn provider_list(replicate_configured: bool) -> Value {
    let default = find_profile(DEFAULT_PROFILE).expect("default profile exists");
    json!({
        "providers": [{
            "id": "replicate",
            "name": "Replicate",
            "description": "Run SimpleTuner's trainer on Replicate GPUs (H100 or L40S, 1-8 GPUs).",
            "model": default.model(),
            "version": null,
            "hardware": default.label(),
            "cost_per_hour": default.cost_per_hour(),
            "configured": replicate_configured,
            "coming_soon": false,
            "hardware_profile": default.id,
            "hardware_profiles": PROFILES.iter().map(HardwareProfile::to_json).collect::<Vec<_>>(),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_prices_are_base_rate_times_gpus() {
        let hourly: Vec<(&str, f64)> = PROFILES.iter().map(|p| (p.id, p.cost_per_hour())).collect();
        assert_eq!(
            hourly,
            vec![
                ("h100", 5.49),
                ("h100-x2", 10.98),
                ("h100-x4", 21.96),
                ("h100-x8", 43.92),
                ("l40s", 3.5),
                ("l40s-x2", 7.0),
                ("l40s-x4", 14.0),
                ("l40s-x8", 28.0),
            ]
        );
        let x8 = find_profile("h100-x8").unwrap();
        assert!((x8.cost_per_second() - 8.0 * H100.cost_per_second).abs() < 1e-12);
    }

    #[test]
    fn aliases_normalise_to_profiles() {
        for (alias, id) in [
            ("H100", "h100"),
            (" 1xh100 ", "h100"),
            ("h100-x1", "h100"),
            ("1x-h100", "h100"),
            ("2xH100", "h100-x2"),
            ("h100_x4", "h100-x4"),
            ("advanced-trainer-l40s-x8", "l40s-x8"),
            ("simpletuner/advanced-trainer-l40s", "l40s"),
            ("4x-l40s", "l40s-x4"),
        ] {
            assert_eq!(find_profile(alias).map(|p| p.id), Some(id), "{alias}");
        }
        for bad in ["", "a100", "h100-x3", "h100-x", "xh100", "h100-x16"] {
            assert!(find_profile(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn provider_list_reports_configuration_and_profiles() {
        let list = provider_list(false);
        let replicate = &list["providers"][0];
        assert_eq!(replicate["id"], "replicate");
        assert_eq!(replicate["configured"], false);
        assert_eq!(replicate["hardware_profiles"].as_array().unwrap().len(), 8);
        assert_eq!(
            replicate["hardware_profiles"][3]["model"],
            "simpletuner/advanced-trainer-h100-x8"
        );
        assert_eq!(provider_list(true)["providers"][0]["configured"], true);
    }
}
