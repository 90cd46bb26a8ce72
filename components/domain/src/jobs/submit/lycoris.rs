//! LyCORIS settings: SimpleTuner's trainer needs `--lycoris_config` (a JSON
//! file) when `--lora_type` is `lycoris`. SimpleTuner's server reads that file
//! from its own disk and sends its JSON as the Cog's `lycoris_config` input;
//! this server cannot read a submitter's files, so the config carries the
//! JSON itself (an object, or a string holding one) and the trainer receives
//! it as that input, with the key left out of `config_json`.

use serde_json::{Value, json};

use crate::kernel::error::ApiError;

/// The spellings of the setting in a config (SimpleTuner reads both).
const KEYS: [&str; 2] = ["--lycoris_config", "lycoris_config"];
/// Largest LyCORIS config accepted (its files are a few hundred bytes).
const MAX_BYTES: usize = 64 * 1024;

/// The LyCORIS config a training config carries, as the Cog's
/// `lycoris_config` input (a JSON string); `None` when it carries none.
/// 400 when it names a file, is not a JSON object, or `--lora_type lycoris`
/// has none (SimpleTuner's trainer would stop after its paid start-up).
pub fn input(config: &Value) -> Result<Option<String>, ApiError> {
    let given = KEYS
        .iter()
        .find_map(|k| config.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)));
    let Some((key, value)) = given else {
        return if lora_type(config) == Some("lycoris") {
            Err(invalid(
                "--lora_type lycoris needs its LyCORIS settings: put the JSON of your LyCORIS \
                 config file in `--lycoris_config` (an object), or set it in the Model tab",
                json!(null),
            ))
        } else {
            Ok(None)
        };
    };
    let object = match value {
        Value::Object(_) => value.clone(),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(invalid(
                    &format!(
                        "`{key}` names a file ({}), which only your machine can read: put the \
                         file's JSON in `{key}` as an object instead",
                        truncate(s)
                    ),
                    json!(truncate(s)),
                ));
            }
        },
        _ => {
            return Err(invalid(
                &format!("`{key}` must be a JSON object (the LyCORIS config file's contents)"),
                json!(null),
            ));
        }
    };
    let text = object.to_string();
    if text.len() > MAX_BYTES {
        return Err(invalid(
            &format!("`{key}` is larger than {} KiB", MAX_BYTES / 1024),
            json!(text.len()),
        ));
    }
    Ok(Some(text))
}

/// The trainer's config without the LyCORIS setting, which travels as its
/// own input.
pub fn without_setting(mut trainer_config: Value) -> Value {
    if let Some(map) = trainer_config.as_object_mut() {
        for k in KEYS {
            map.remove(k);
        }
    }
    trainer_config
}

fn lora_type(config: &Value) -> Option<&str> {
    ["--lora_type", "lora_type"]
        .iter()
        .find_map(|k| config.get(*k).and_then(Value::as_str))
        .map(str::trim)
}

fn invalid(message: &str, given: Value) -> ApiError {
    let e = ApiError::new(400, "invalid_lycoris_config", message.to_string());
    if given.is_null() {
        e
    } else {
        e.with_detail("lycoris_config", given)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOKR: &str = r#"{"algo": "lokr", "multiplier": 1.0, "linear_dim": 10000, "factor": 16}"#;

    #[test]
    fn an_object_or_a_json_string_becomes_the_trainers_input() {
        let obj: Value = serde_json::from_str(LOKR).unwrap();
        for config in [
            json!({"--lora_type": "lycoris", "--lycoris_config": obj.clone()}),
            json!({"lora_type": "lycoris", "lycoris_config": LOKR}),
        ] {
            let text = input(&config).unwrap().expect("an input");
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), obj);
            let trainer = without_setting(config.clone());
            assert!(
                trainer.get("--lycoris_config").is_none()
                    && trainer.get("lycoris_config").is_none()
            );
        }
        assert_eq!(input(&json!({"--lora_type": "standard"})).unwrap(), None);
        assert_eq!(input(&json!({"--model_type": "full"})).unwrap(), None);
    }

    #[test]
    fn a_path_a_missing_config_or_a_non_object_is_refused_in_words() {
        let e =
            input(&json!({"--lora_type": "lycoris", "--lycoris_config": "config/lycoris.json"}))
                .unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_lycoris_config"));
        assert!(
            e.message.contains("only your machine can read"),
            "{}",
            e.message
        );
        let e = input(&json!({"--lora_type": "lycoris"})).unwrap_err();
        assert!(
            e.message.contains("needs its LyCORIS settings"),
            "{}",
            e.message
        );
        let e = input(&json!({"--lycoris_config": [1, 2]})).unwrap_err();
        assert!(e.message.contains("must be a JSON object"), "{}", e.message);
        let big = json!({"--lycoris_config": {"x": "y".repeat(MAX_BYTES)}});
        assert!(input(&big).unwrap_err().message.contains("larger than"));
    }
}
