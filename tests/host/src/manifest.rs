//! Reads a Spin manifest (`spin_manifest_version = 2`) the way `spin up` does,
//! keeping what the host needs: variables, HTTP and cron triggers, and per
//! component sources, stores, outbound hosts, variables and file mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::HostError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    #[serde(default)]
    pub cron: Vec<CronTrigger>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
    #[serde(default)]
    pub executor: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    pub component: String,
    pub cron_expression: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<FileMount>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub build: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    /// `"dir/*"`-style glob strings are not used by cloudtuner; a plain path mounts
    /// the file or directory at the same relative place.
    Path(String),
    Mapping {
        source: String,
        destination: String,
    },
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, HostError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HostError::Manifest(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, HostError> {
        let m: Manifest =
            toml::from_str(text).map_err(|e| HostError::Manifest(format!("spin.toml: {e}")))?;
        if m.spin_manifest_version != 2 {
            return Err(HostError::Manifest(
                "only spin_manifest_version = 2 is supported".into(),
            ));
        }
        for (name, decl) in &m.variables {
            check_variable_name(name)?;
            if decl.required && decl.default.is_some() {
                return Err(HostError::Manifest(format!(
                    "variable {name}: `required` and `default` are mutually exclusive"
                )));
            }
        }
        for t in &m.trigger.http {
            if !m.component.contains_key(&t.component) {
                return Err(HostError::Manifest(format!(
                    "route {} names unknown component {}",
                    t.route, t.component
                )));
            }
        }
        for t in &m.trigger.cron {
            if !m.component.contains_key(&t.component) {
                return Err(HostError::Manifest(format!(
                    "cron trigger names unknown component {}",
                    t.component
                )));
            }
        }
        for (id, c) in &m.component {
            for name in c.variables.keys() {
                check_variable_name(name)
                    .map_err(|e| HostError::Manifest(format!("component {id}: {e}")))?;
            }
        }
        Ok(m)
    }

    /// The component's source, relative to the manifest's directory.
    pub fn source_path(&self, base_dir: &Path, component: &str) -> Option<PathBuf> {
        self.component
            .get(component)
            .map(|c| base_dir.join(&c.source))
    }
}

/// Spin's rule: lowercase ASCII letters, digits and `_`, starting with a letter.
pub fn check_variable_name(name: &str) -> Result<(), HostError> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(HostError::Manifest(format!(
            "invalid variable name {name:?}: lowercase letters, digits and '_', starting with a letter"
        )))
    }
}

/// Expands `{{ name }}` templates with application variable values. Spin refuses
/// to start when a template names an undeclared variable or one without a value.
pub fn expand_template(
    template: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, HostError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| HostError::Manifest(format!("unclosed template in {template:?}")))?;
        let name = after[..end].trim();
        let value = values.get(name).ok_or_else(|| {
            HostError::Manifest(format!(
                "template {template:?} names variable {name:?}, which has no value"
            ))
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_and_missing_names_fail() {
        let values = BTreeMap::from([("base".to_string(), "http://127.0.0.1:9".to_string())]);
        assert_eq!(
            expand_template("{{ base }}/x{{base}}", &values).unwrap(),
            "http://127.0.0.1:9/xhttp://127.0.0.1:9"
        );
        assert!(expand_template("{{ nope }}", &values).is_err());
        assert!(expand_template("{{ base ", &values).is_err());
    }

    #[test]
    fn variable_names_follow_spin() {
        assert!(check_variable_name("replicate_api_token").is_ok());
        for bad in ["Token", "1x", "a-b", "", "_x"] {
            assert!(check_variable_name(bad).is_err(), "{bad}");
        }
    }
}
