//! How a trained model comes back: Hugging Face Hub (`push_to_hub`), external
//! S3 (a `publishing_config` S3 entry in the training config), or this server's
//! S3-compatible endpoint ("download to this machine"). Decided at submit, so a
//! missing token is refused before any GPU time, and recorded on the job.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kernel::error::ApiError;
use crate::storage::{BUCKET, MOUNT};

/// What the submit body may ask for (`"delivery"`).
pub const CHOICES: [&str; 5] = ["auto", "hub", "s3", "local", "replicate"];

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExternalS3 {
    pub bucket: String,
    pub endpoint_url: Option<String>,
    pub base_path: Option<String>,
}

/// The delivery paths of one job (no secrets).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delivery {
    pub hub_model_id: Option<String>,
    pub external_s3: Option<ExternalS3>,
    /// Uploads come back to this server (`outputs/<job_id>/`).
    pub local: bool,
    pub reason: String,
}

impl Delivery {
    pub fn hub_url(&self) -> Option<String> {
        self.hub_model_id
            .as_ref()
            .map(|id| format!("https://huggingface.co/{id}"))
    }

    pub fn to_api(&self, job_id: &str) -> Value {
        let mut paths = Vec::new();
        if self.hub_model_id.is_some() {
            paths.push("hub");
        }
        if self.external_s3.is_some() {
            paths.push("s3");
        }
        if self.local {
            paths.push("local");
        }
        if paths.is_empty() {
            paths.push("replicate");
        }
        json!({
            "paths": paths,
            "hub_model_id": self.hub_model_id,
            "hub_url": self.hub_url(),
            "external_s3": self.external_s3,
            "local": self.local.then(|| json!({
                "bucket": BUCKET,
                "prefix": format!("{job_id}/"),
                "outputs": format!("/api/cloud/jobs/{job_id}/outputs"),
            })),
            "reason": self.reason,
        })
    }

    /// The job's `output_url` once it completed: the Hub repo, this server's
    /// stored object (set when the upload arrived), the external bucket, or
    /// Replicate's own output file.
    pub fn output_url(&self, current: Option<&str>, replicate: Option<String>) -> Option<String> {
        if let Some(hub) = self.hub_url() {
            return Some(hub);
        }
        if self.local && current.is_some_and(|u| u.contains(&format!("{MOUNT}/{BUCKET}/"))) {
            return current.map(str::to_string);
        }
        if let Some(s3) = &self.external_s3 {
            let base = s3.base_path.as_deref().unwrap_or("").trim_matches('/');
            return Some(format!("s3://{}/{base}", s3.bucket));
        }
        replicate.or_else(|| current.map(str::to_string))
    }
}

/// A config value under `name` or SimpleTuner's CLI spelling `--name`.
pub fn config_get<'a>(config: &'a Value, name: &str) -> Option<&'a Value> {
    config
        .get(name)
        .or_else(|| config.get(format!("--{name}")))
        .filter(|v| !v.is_null())
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// The `publishing_config` entries (SimpleTuner accepts a list, one object, or
/// either as a JSON string).
pub fn publishing_entries(config: &Value) -> Result<Vec<Value>, ApiError> {
    let invalid = |m: &str| ApiError::new(400, "invalid_publishing_config", m.to_string());
    let value = match config_get(config, "publishing_config") {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|_| invalid("publishing_config is a string but not JSON"))?,
        Some(v) => v.clone(),
    };
    match value {
        Value::Array(items) if items.iter().all(Value::is_object) => Ok(items),
        Value::Object(_) => Ok(vec![value]),
        _ => Err(invalid(
            "publishing_config must be an object or a list of objects",
        )),
    }
}

/// Inputs of the delivery decision.
pub struct Choice<'a> {
    pub config: &'a Value,
    pub requested: Option<&'a str>,
    pub hf_token_set: bool,
    pub public_url: Option<&'a str>,
}

/// Decides the delivery paths of a submit, or refuses it with a clear error.
pub fn plan(c: &Choice) -> Result<Delivery, ApiError> {
    let requested = c.requested.unwrap_or("auto");
    if !CHOICES.contains(&requested) {
        return Err(ApiError::bad_request(format!(
            "delivery must be one of {}",
            CHOICES.join(", ")
        )));
    }
    let wants_hub = truthy(config_get(c.config, "push_to_hub")) || requested == "hub";
    let hub_model_id = if wants_hub {
        let id = config_get(c.config, "hub_model_id")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "hub_model_id_missing",
                    "push_to_hub is set but the config has no hub_model_id (e.g. \"you/my-lora\")",
                )
            })?;
        if !c.hf_token_set {
            return Err(ApiError::new(
                400,
                "hub_token_missing",
                "push_to_hub is set but no Hugging Face token is configured: set the hf_token \
                 variable (spin up --variable hf_token=hf_...) or turn push_to_hub off",
            ));
        }
        Some(id.to_string())
    } else {
        None
    };
    let mut external_s3 = None;
    for entry in publishing_entries(c.config)? {
        let provider = entry.get("provider").and_then(Value::as_str).unwrap_or("");
        if !matches!(provider, "s3" | "backblaze_b2") {
            continue;
        }
        let bucket = entry
            .get("bucket")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "invalid_publishing_config",
                    "a publishing_config S3 entry needs a bucket",
                )
            })?;
        external_s3 = Some(ExternalS3 {
            bucket: bucket.to_string(),
            endpoint_url: entry
                .get("endpoint_url")
                .and_then(Value::as_str)
                .map(str::to_string),
            base_path: entry
                .get("base_path")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        break;
    }
    if requested == "s3" && external_s3.is_none() {
        return Err(ApiError::new(
            400,
            "invalid_publishing_config",
            "delivery \"s3\" needs a publishing_config S3 entry (provider, bucket, endpoint_url, keys) in the config",
        ));
    }
    let public_url = c.public_url.filter(|u| !u.trim().is_empty());
    let (local, reason) = match requested {
        "local" => match public_url {
            Some(_) => (true, "download to this machine was requested".to_string()),
            None => {
                return Err(ApiError::new(
                    400,
                    "public_url_missing",
                    "download to this machine needs the public_url variable: the trainer uploads to \
                     <public_url>/api/cloud/storage, so it must be reachable from Replicate",
                ));
            }
        },
        "replicate" => (false, "only Replicate's output file was requested".into()),
        _ if hub_model_id.is_some() => (false, "the config has push_to_hub".into()),
        _ if external_s3.is_some() => (false, "the config has a publishing_config S3 entry".into()),
        _ => match public_url {
            Some(_) => (
                true,
                "neither Hub nor external S3 is configured and public_url is set: the trainer \
                 uploads to this server"
                    .into(),
            ),
            None => (
                false,
                "neither Hub nor external S3 is configured and public_url is empty: only \
                 Replicate's output file (its links expire after an hour)"
                    .into(),
            ),
        },
    };
    Ok(Delivery {
        hub_model_id,
        external_s3,
        local,
        reason,
    })
}

/// The config the trainer receives: the user's, plus (for local delivery) an
/// S3 `publishing_config` entry for this server with the job's credentials.
pub fn trainer_config(
    config: &Value,
    delivery: &Delivery,
    job_id: &str,
    public_url: &str,
    credentials: (&str, &str),
) -> Value {
    let mut out = config.clone();
    if !delivery.local {
        return out;
    }
    let origin = public_url.trim_end_matches('/');
    let entry = json!({
        "provider": "s3",
        "bucket": BUCKET,
        "base_path": job_id,
        "endpoint_url": format!("{origin}{MOUNT}"),
        "region": "us-east-1",
        "access_key": credentials.0,
        "secret_key": credentials.1,
        "use_ssl": origin.starts_with("https://"),
        "addressing_style": "path",
    });
    let key = if out.get("--publishing_config").is_some() {
        "--publishing_config"
    } else {
        "publishing_config"
    };
    let mut entries = publishing_entries(config).unwrap_or_default();
    entries.push(entry);
    out[key] = Value::Array(entries);
    out
}

/// `GET /api/cloud/publishing/status`: which path a submit of `config` (or of
/// a config without Hub/S3 settings) would take, and why.
pub fn status(config: Option<&Value>, hf_token_set: bool, public_url: Option<&str>) -> Value {
    let empty = json!({});
    let config = config.unwrap_or(&empty);
    let public_url = public_url.filter(|u| !u.trim().is_empty());
    let decision = plan(&Choice {
        config,
        requested: None,
        hf_token_set,
        public_url,
    });
    let local_endpoint = public_url.map(|u| format!("{}{MOUNT}", u.trim_end_matches('/')));
    let mut body = json!({
        "hub": {
            "token_configured": hf_token_set,
            "how": "set push_to_hub and hub_model_id in the config; the token comes from the hf_token variable",
        },
        "external_s3": {
            "how": "add a publishing_config S3 entry (provider s3, bucket, endpoint_url, access_key, secret_key) to the config",
        },
        "local": {
            "available": public_url.is_some(),
            "endpoint": local_endpoint,
            "bucket": BUCKET,
            "reason": if public_url.is_some() {
                "the trainer uploads to this server's S3-compatible endpoint with per-job credentials"
            } else {
                "public_url is empty: Replicate cannot reach this server"
            },
        },
    });
    match decision {
        Ok(d) => {
            let path = if d.hub_model_id.is_some() {
                "hub"
            } else if d.external_s3.is_some() {
                "s3"
            } else if d.local {
                "local"
            } else {
                "replicate"
            };
            body["default_path"] = json!(path);
            body["reason"] = json!(d.reason);
            body["ready"] = json!(true);
        }
        Err(e) => {
            body["default_path"] = Value::Null;
            body["ready"] = json!(false);
            body["reason"] = json!(e.message);
            body["error"] = json!(e.code);
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(
        config: Value,
        requested: Option<&str>,
        token: bool,
        url: Option<&str>,
    ) -> Result<Delivery, ApiError> {
        plan(&Choice {
            config: &config,
            requested,
            hf_token_set: token,
            public_url: url,
        })
    }

    #[test]
    fn hub_needs_a_token_and_a_repo() {
        let hub = json!({"push_to_hub": true, "hub_model_id": "me/lora"});
        let d = choose(hub.clone(), None, true, Some("https://x")).unwrap();
        assert_eq!(d.hub_model_id.as_deref(), Some("me/lora"));
        assert!(!d.local);
        assert_eq!(
            d.output_url(None, Some("https://r/out".into())).as_deref(),
            Some("https://huggingface.co/me/lora")
        );
        assert_eq!(
            choose(hub, None, false, None).unwrap_err().code,
            "hub_token_missing"
        );
        assert_eq!(
            choose(json!({"--push_to_hub": "true"}), None, true, None)
                .unwrap_err()
                .code,
            "hub_model_id_missing"
        );
    }

    #[test]
    fn auto_picks_local_only_without_hub_or_s3_and_with_a_public_url() {
        let d = choose(
            json!({"model_type": "lora"}),
            None,
            false,
            Some("https://me.example"),
        )
        .unwrap();
        assert!(d.local);
        let d = choose(json!({"model_type": "lora"}), None, false, None).unwrap();
        assert!(!d.local);
        let s3 =
            json!({"publishing_config": [{"provider": "s3", "bucket": "b", "secret_key": "s"}]});
        let d = choose(s3, None, false, Some("https://me.example")).unwrap();
        assert!(!d.local);
        assert_eq!(d.external_s3.unwrap().bucket, "b");
        assert_eq!(
            choose(json!({}), Some("local"), false, None)
                .unwrap_err()
                .code,
            "public_url_missing"
        );
        assert_eq!(
            choose(json!({}), Some("s3"), false, None).unwrap_err().code,
            "invalid_publishing_config"
        );
        assert_eq!(
            choose(json!({}), Some("ftp"), false, None)
                .unwrap_err()
                .code,
            "invalid_request"
        );
    }

    #[test]
    fn local_delivery_appends_this_server_to_the_trainer_config() {
        let config =
            json!({"--publishing_config": "[{\"provider\":\"s3\",\"bucket\":\"mine\"}]", "lr": 1});
        let d = Delivery {
            local: true,
            ..Delivery::default()
        };
        let out = trainer_config(
            &config,
            &d,
            "job1",
            "https://me.example/",
            ("job1", "sekrit"),
        );
        let entries = out["--publishing_config"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["bucket"], "mine");
        assert_eq!(
            entries[1]["endpoint_url"],
            "https://me.example/api/cloud/storage"
        );
        assert_eq!(entries[1]["secret_key"], "sekrit");
        assert_eq!(entries[1]["base_path"], "job1");
        assert_eq!(entries[1]["use_ssl"], true);
        // The user's config is untouched (the job stores that one).
        assert!(config["--publishing_config"].is_string());
    }
}
