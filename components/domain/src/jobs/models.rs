//! The model catalog: SimpleTuner's model families and flavours with each
//! flavour's base model (generated from SimpleTuner's `model_metadata.json` and
//! model classes by `assets/make_model_catalog.py`), the training defaults
//! the UI fills in per family, and the check a submit makes with it.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::jobs::delivery::config_get;
use crate::kernel::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct Flavour {
    pub flavour: String,
    /// The Hugging Face repo SimpleTuner loads for it, when it names one.
    pub base_model: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Family {
    pub family: String,
    pub name: String,
    pub prediction_type: Option<String>,
    pub default_flavour: Option<String>,
    pub flavours: Vec<Flavour>,
}

#[derive(Debug, Deserialize)]
pub struct Catalog {
    pub simpletuner_version: String,
    pub families: Vec<Family>,
}

pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str(include_str!("../../assets/model_catalog.json"))
            .expect("the model catalog is valid JSON")
    })
}

impl Catalog {
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.family == name)
    }
}

/// SimpleTuner's native training resolution of a family (SD 1.x trains at
/// 512 px, DeepFloyd's stage I at 64; the others at 1024).
fn resolution(family: &str) -> u32 {
    match family {
        "sd1x" => 512,
        "deepfloyd" => 64,
        _ => 1024,
    }
}

/// The values a new config starts from for `family`, in SimpleTuner's names.
pub fn training_defaults(family: &Family) -> Value {
    let flavour = family.default_flavour.as_deref();
    let base = family
        .flavours
        .iter()
        .find(|f| Some(f.flavour.as_str()) == flavour)
        .and_then(|f| f.base_model.clone());
    json!({
        "--model_family": family.family,
        "--model_flavour": flavour,
        "--model_type": "lora",
        "--pretrained_model_name_or_path": base,
        "--lora_rank": 16,
        "--lora_alpha": 16,
        "--max_train_steps": 1000,
        "--learning_rate": 1e-4,
        "--lr_scheduler": "constant_with_warmup",
        "--lr_warmup_steps": 100,
        "--train_batch_size": 1,
        "--gradient_accumulation_steps": 1,
        "--resolution": resolution(&family.family),
        "--resolution_type": "pixel_area",
        "--mixed_precision": "bf16",
        "--seed": 42,
        "--validation_steps": 100,
        "--checkpointing_steps": 250,
    })
}

/// `GET /api/cloud/models`.
pub fn to_api() -> Value {
    let c = catalog();
    json!({
        "simpletuner_version": c.simpletuner_version,
        "families": c.families.iter().map(|f| json!({
            "family": f.family,
            "name": f.name,
            "prediction_type": f.prediction_type,
            "default_flavour": f.default_flavour,
            "flavours": f.flavours.iter().map(|v| json!({
                "flavour": v.flavour, "base_model": v.base_model,
            })).collect::<Vec<_>>(),
            "defaults": training_defaults(f),
        })).collect::<Vec<_>>(),
    })
}

/// A config naming a family or flavour SimpleTuner does not have is refused
/// before anything is paid for (the trainer would fail at start-up).
pub fn check(config: &Value) -> Result<(), ApiError> {
    let Some(family) = config_get(config, "model_family").and_then(Value::as_str) else {
        return Ok(());
    };
    let c = catalog();
    let Some(f) = c.family(family) else {
        return Err(ApiError::new(
            400,
            "unknown_model_family",
            format!(
                "SimpleTuner {} has no model family {family:?} (GET /api/cloud/models lists them)",
                c.simpletuner_version
            ),
        )
        .with_detail("model_family", family));
    };
    if let Some(flavour) = config_get(config, "model_flavour").and_then(Value::as_str)
        && !f.flavours.iter().any(|v| v.flavour == flavour)
    {
        let known: Vec<&str> = f.flavours.iter().map(|v| v.flavour.as_str()).collect();
        return Err(ApiError::new(
            400,
            "unknown_model_flavour",
            format!(
                "{} has no flavour {flavour:?}; it has {}",
                f.name,
                known.join(", ")
            ),
        )
        .with_detail("model_flavour", flavour));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_has_simpletuners_families_with_defaults() {
        let c = catalog();
        let flux = c.family("flux").expect("flux");
        assert!(flux.flavours.iter().any(|f| f.flavour == "dev"
            && f.base_model.as_deref() == Some("black-forest-labs/flux.1-dev")));
        let d = training_defaults(flux);
        assert_eq!(d["--model_family"], "flux");
        assert!(d["--pretrained_model_name_or_path"].is_string());
        assert_eq!(
            training_defaults(c.family("sd1x").unwrap())["--resolution"],
            512
        );
        assert!(c.families.len() >= 40);
    }

    #[test]
    fn unknown_families_and_flavours_are_refused_in_words() {
        assert!(check(&json!({"--model_family": "flux", "--model_flavour": "dev"})).is_ok());
        assert!(check(&json!({"model_family": "sdxl"})).is_ok());
        assert!(check(&json!({"y": 1})).is_ok());
        let e = check(&json!({"--model_family": "fluxx"})).unwrap_err();
        assert_eq!((e.status, e.code), (400, "unknown_model_family"));
        let e = check(&json!({"--model_family": "flux", "--model_flavour": "nope"})).unwrap_err();
        assert!(
            e.message.contains("dev") && e.message.contains("\"nope\""),
            "{}",
            e.message
        );
    }
}
