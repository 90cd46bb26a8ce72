//! Saved training configs (`config` + `dataloader_config`), per owner, so a
//! submit can say `config_name_to_load`. Layout: `config:<owner>:<name>` and a
//! sorted name list `cfgidx:<owner>` (created race-free, changed by CAS).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::principal::Permission;
use crate::jobs::record::{redact, restore_redacted};
use crate::kernel::clock::rfc3339;
use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::kv::{self, KvStore, get_json, set_json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedConfig {
    pub name: String,
    pub owner: String,
    pub config: Value,
    pub dataloader_config: Value,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl SavedConfig {
    /// SimpleTuner's `GET /api/configs/{name}` shape, which its CLI's `cloud
    /// jobs submit --dry-run` reads: the config's keys without their leading
    /// `--`, with the dataloader inside; secrets redacted as in [`Self::to_api`].
    pub fn to_simpletuner(&self) -> Value {
        let mut flat = Map::new();
        if let Value::Object(config) = redact(&self.config) {
            for (k, v) in config {
                flat.insert(k.trim_start_matches("--").to_string(), v);
            }
        }
        flat.insert("dataloader_config".into(), redact(&self.dataloader_config));
        json!({"name": self.name, "config": flat})
    }

    pub fn to_api(&self) -> Value {
        json!({
            "name": self.name,
            "config": redact(&self.config),
            "dataloader_config": redact(&self.dataloader_config),
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
        })
    }
}

/// 1–64 characters: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "invalid_config_name",
            format!(
                "invalid config name {name:?}: use 1-64 letters, digits, '.', '_' or '-', \
                 starting with a letter or digit"
            ),
        ))
    }
}

/// Checks the shapes a trainer needs: `config` a non-empty object,
/// `dataloader_config` an array of objects.
pub fn validate_body(config: &Value, dataloader: &Value) -> Result<(), ApiError> {
    match config.as_object() {
        Some(m) if !m.is_empty() => {}
        _ => {
            return Err(ApiError::new(
                400,
                "invalid_config",
                "`config` must be a non-empty JSON object of trainer options",
            ));
        }
    }
    match dataloader.as_array() {
        Some(a) if a.iter().all(Value::is_object) => Ok(()),
        _ => Err(ApiError::new(
            400,
            "invalid_config",
            "`dataloader_config` must be a JSON array of dataset objects",
        )),
    }
}

/// The most saved configs one user may keep: each is a KV value of up to a
/// request body, and the list reads them all.
pub const MAX_CONFIGS_PER_USER: usize = 200;

fn key(owner: &str, name: &str) -> String {
    format!("config:{owner}:{name}")
}

fn index_key(owner: &str) -> String {
    format!("cfgidx:{owner}")
}

/// No saved config of that name (for this caller).
pub fn not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        "config_not_found",
        format!("no saved config named {name:?}"),
    )
    .with_detail("config_name", name)
}

pub struct ConfigStore<'a> {
    kv: &'a dyn KvStore,
}

impl<'a> ConfigStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn get(&self, owner: &str, name: &str) -> Result<Option<SavedConfig>, ApiError> {
        get_json(self.kv, &key(owner, name)).map_err(ApiError::from)
    }

    /// The saved config `name`, or 404 `config_not_found` (the one answer for
    /// a missing config; a request body naming one turns it into a 400).
    pub fn load(&self, owner: &str, name: &str) -> Result<SavedConfig, ApiError> {
        self.get(owner, name)?.ok_or_else(|| not_found(name))
    }

    /// `PUT /api/cloud/configs/{name}` with `{"config", "dataloader_config"?}`.
    pub fn put_body(
        &self,
        owner: &str,
        name: &str,
        body: &Value,
        now_ms: u64,
    ) -> Result<(SavedConfig, bool), ApiError> {
        let obj = object_with_fields(body, &["config", "dataloader_config"], "invalid_request")?;
        let mut config = obj.get("config").cloned().unwrap_or(Value::Null);
        let mut dataloader = obj
            .get("dataloader_config")
            .cloned()
            .unwrap_or_else(|| json!([]));
        // The UI shows stored secrets as "***": sending one back keeps it.
        let old = self.get(owner, name)?;
        restore_redacted(&mut config, old.as_ref().map(|o| &o.config));
        restore_redacted(&mut dataloader, old.as_ref().map(|o| &o.dataloader_config));
        self.put(owner, name, config, dataloader, now_ms)
    }

    /// What a caller needs to do `method` on their config `name`: configs live
    /// in the caller's own namespace, so only `.own` permissions apply, and a
    /// PUT creates or edits depending on whether it exists.
    pub fn permission_for(
        &self,
        method: &str,
        owner: &str,
        name: &str,
    ) -> Result<Permission, ApiError> {
        Ok(match method {
            "GET" => Permission::ConfigView,
            "DELETE" => Permission::ConfigDeleteOwn,
            _ if self.get(owner, name)?.is_some() => Permission::ConfigEditOwn,
            _ => Permission::ConfigCreate,
        })
    }

    /// Creates or replaces; returns the stored config and whether it was new.
    pub fn put(
        &self,
        owner: &str,
        name: &str,
        config: Value,
        dataloader_config: Value,
        now_ms: u64,
    ) -> Result<(SavedConfig, bool), ApiError> {
        validate_name(name)?;
        validate_body(&config, &dataloader_config)?;
        let existing = self.get(owner, name)?;
        let saved = SavedConfig {
            name: name.to_string(),
            owner: owner.to_string(),
            config,
            dataloader_config,
            created_ms: existing.as_ref().map_or(now_ms, |e| e.created_ms),
            updated_ms: now_ms,
        };
        // The name takes its place in the index first, where the cap is
        // checked atomically (racing creates cannot pass it together).
        let mut full = false;
        self.edit_index(owner, |names| {
            full = false;
            if names.iter().any(|n| n == name) {
                return;
            }
            if names.len() >= MAX_CONFIGS_PER_USER {
                full = true;
                return;
            }
            names.push(name.to_string());
            names.sort();
        })?;
        if full {
            return Err(ApiError::new(
                409,
                "too_many_configs",
                format!(
                    "you already have {MAX_CONFIGS_PER_USER} saved configs, the most one user may \
                     keep; delete one you no longer need, or save over an existing name"
                ),
            )
            .with_detail("max_configs", MAX_CONFIGS_PER_USER));
        }
        set_json(self.kv, &key(owner, name), &saved)?;
        Ok((saved, existing.is_none()))
    }

    pub fn delete(&self, owner: &str, name: &str) -> Result<bool, ApiError> {
        if self.get(owner, name)?.is_none() {
            return Ok(false);
        }
        self.edit_index(owner, |names| names.retain(|n| n != name))?;
        self.kv.delete(&key(owner, name))?;
        Ok(true)
    }

    pub fn list(&self, owner: &str) -> Result<Vec<SavedConfig>, ApiError> {
        let names: Vec<String> = get_json(self.kv, &index_key(owner))?.unwrap_or_default();
        let mut out = Vec::new();
        for n in names {
            if let Some(c) = self.get(owner, &n)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn edit_index(&self, owner: &str, f: impl FnMut(&mut Vec<String>)) -> Result<(), ApiError> {
        kv::edit_json(self.kv, &index_key(owner), f).map_err(ApiError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn simpletuners_shape_has_keys_without_dashes_and_the_dataloader_inside() {
        let kv = MemoryKv::default();
        let store = ConfigStore::new(&kv);
        let (saved, _) = store
            .put(
                "a",
                "flux-lora",
                json!({"--model_family": "flux", "--max_train_steps": 10, "--hub_token": "hf_secret"}),
                json!([{"id": "cats"}]),
                1,
            )
            .unwrap();
        let v = saved.to_simpletuner();
        assert_eq!(v["name"], "flux-lora");
        assert_eq!(v["config"]["model_family"], "flux");
        assert_eq!(v["config"]["max_train_steps"], 10);
        assert_eq!(v["config"]["dataloader_config"][0]["id"], "cats");
        assert!(!v.to_string().contains("hf_secret"), "{v}");
    }

    #[test]
    fn put_get_list_delete_per_owner() {
        let kv = MemoryKv::default();
        let store = ConfigStore::new(&kv);
        let (_, created) = store
            .put(
                "a",
                "flux-lora",
                json!({"--model_family": "flux"}),
                json!([]),
                1,
            )
            .unwrap();
        assert!(created);
        let (c, created) = store
            .put(
                "a",
                "flux-lora",
                json!({"--model_family": "sdxl"}),
                json!([]),
                2,
            )
            .unwrap();
        assert!(!created);
        assert_eq!((c.created_ms, c.updated_ms), (1, 2));
        store
            .put("a", "alpha", json!({"x": 1}), json!([{"id": "d"}]), 3)
            .unwrap();
        let names: Vec<_> = store
            .list("a")
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["alpha", "flux-lora"]);
        assert!(store.list("b").unwrap().is_empty());
        assert!(store.delete("a", "alpha").unwrap());
        assert!(!store.delete("a", "alpha").unwrap());
        assert_eq!(store.list("a").unwrap().len(), 1);
    }

    #[test]
    fn a_user_may_keep_only_so_many_configs_but_may_always_save_over_one() {
        let kv = MemoryKv::default();
        let store = ConfigStore::new(&kv);
        for i in 0..MAX_CONFIGS_PER_USER {
            store
                .put("a", &format!("c{i}"), json!({"x": i}), json!([]), 1)
                .unwrap();
        }
        let e = store
            .put("a", "one-more", json!({"x": 1}), json!([]), 2)
            .unwrap_err();
        assert_eq!((e.status, e.code), (409, "too_many_configs"));
        assert!(store.get("a", "one-more").unwrap().is_none());
        assert_eq!(store.list("a").unwrap().len(), MAX_CONFIGS_PER_USER);
        // Saving over an existing one, and another user's, still work.
        let (_, created) = store.put("a", "c0", json!({"x": 9}), json!([]), 3).unwrap();
        assert!(!created);
        store
            .put("b", "one-more", json!({"x": 1}), json!([]), 3)
            .unwrap();
        assert!(store.delete("a", "c1").unwrap());
        store
            .put("a", "one-more", json!({"x": 1}), json!([]), 4)
            .unwrap();
    }

    #[test]
    fn names_and_bodies_are_validated() {
        for bad in ["", "../x", "a b", "-lead", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("flux_lora-v1.2").is_ok());
        assert!(validate_body(&json!({}), &json!([])).is_err());
        assert!(validate_body(&json!({"a": 1}), &json!({})).is_err());
        assert!(validate_body(&json!({"a": 1}), &json!([1])).is_err());
    }
}
