//! Who is calling, and what they may do.
//!
//! Roles and permission names follow SimpleTuner (§4.3). One function,
//! [`Principal::can`], decides every object access; an API key's scopes always
//! narrow its owner's permissions.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Researcher,
    Lead,
    Admin,
}

const VIEWER: &[&str] = &["job.view.own", "config.view"];
const RESEARCHER: &[&str] = &[
    "job.submit",
    "job.view.own",
    "job.cancel.own",
    "job.delete.own",
    "config.view",
    "config.create",
    "config.edit.own",
    "config.delete.own",
    "api.access",
    "api.keys.own",
];
/// A lead sees everyone's jobs but acts only on their own (SimpleTuner §4.3).
const LEAD_EXTRA: &[&str] = &["job.view.all", "admin.audit", "admin.approve"];

/// Every permission name cloudtuner checks (for validating scopes).
pub const KNOWN_PERMISSIONS: &[&str] = &[
    "job.submit",
    "job.view.own",
    "job.view.all",
    "job.cancel.own",
    "job.cancel.all",
    "job.delete.own",
    "job.delete.all",
    "job.sync",
    "config.view",
    "config.create",
    "config.edit.own",
    "config.delete.own",
    "api.access",
    "api.keys.own",
    "api.keys.all",
    "admin.users",
    "admin.config",
    "admin.audit",
    "admin.approve",
];

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "researcher" => Some(Role::Researcher),
            "lead" => Some(Role::Lead),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Researcher => "researcher",
            Role::Lead => "lead",
            Role::Admin => "admin",
        }
    }

    pub fn permissions(self) -> Vec<String> {
        let list: Vec<&str> = match self {
            Role::Viewer => VIEWER.to_vec(),
            Role::Researcher => RESEARCHER.to_vec(),
            Role::Lead => RESEARCHER.iter().chain(LEAD_EXTRA).copied().collect(),
            Role::Admin => vec!["*"],
        };
        list.into_iter().map(str::to_string).collect()
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AuthMethod {
    Session,
    ApiKey { key_id: String },
    AdminToken,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable owner id stored on the objects this principal creates.
    pub id: String,
    pub username: String,
    pub role: Role,
    /// The role's permissions (`*` grants all; `job.*` a family).
    pub permissions: Vec<String>,
    /// An API key's scopes: they narrow `permissions`, never widen them.
    pub scopes: Option<Vec<String>>,
    pub method: AuthMethod,
}

/// Does a permission list grant `permission`? `*`, exact names and `prefix.*`.
pub fn grants(list: &[String], permission: &str) -> bool {
    list.iter().any(|p| {
        p == "*"
            || p == permission
            || p.strip_suffix(".*")
                .is_some_and(|prefix| permission.starts_with(&format!("{prefix}.")))
    })
}

impl Principal {
    /// The headless admin (`admin_token` variable) and tests.
    pub fn admin(id: &str) -> Self {
        Self {
            id: id.into(),
            username: id.into(),
            role: Role::Admin,
            permissions: Role::Admin.permissions(),
            scopes: None,
            method: AuthMethod::AdminToken,
        }
    }

    pub fn has(&self, permission: &str) -> bool {
        grants(&self.permissions, permission)
            && self.scopes.as_ref().is_none_or(|s| grants(s, permission))
    }

    /// May this principal do `action` (`job.view`, `job.cancel`, ...) to an
    /// object owned by `owner`? Own objects need `<action>.own` (or `.all`),
    /// others' need `<action>.all`.
    pub fn can(&self, action: &str, owner: &str) -> bool {
        self.has(&format!("{action}.all"))
            || (owner == self.id && self.has(&format!("{action}.own")))
    }

    pub fn is_admin(&self) -> bool {
        self.has("admin.users")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, scopes: Option<Vec<&str>>) -> Principal {
        Principal {
            id: "alice".into(),
            username: "alice".into(),
            role,
            permissions: role.permissions(),
            scopes: scopes.map(|s| s.into_iter().map(str::to_string).collect()),
            method: AuthMethod::Session,
        }
    }

    #[test]
    fn roles_grant_what_simpletuner_grants() {
        let viewer = user(Role::Viewer, None);
        assert!(viewer.can("job.view", "alice") && !viewer.has("job.submit"));
        let researcher = user(Role::Researcher, None);
        assert!(researcher.has("job.submit") && researcher.can("job.cancel", "alice"));
        assert!(!researcher.can("job.view", "bob"));
        let lead = user(Role::Lead, None);
        assert!(lead.can("job.view", "bob") && !lead.can("job.delete", "bob"));
        let admin = user(Role::Admin, None);
        assert!(admin.can("job.delete", "bob") && admin.is_admin());
    }

    #[test]
    fn scopes_narrow_and_never_widen() {
        let key = user(
            Role::Researcher,
            Some(vec!["job.submit", "job.view.own", "job.view.all"]),
        );
        assert!(key.has("job.submit") && key.can("job.view", "alice"));
        assert!(!key.can("job.cancel", "alice"), "not in scope");
        assert!(!key.can("job.view", "bob"), "scope cannot widen the role");
        let wild = user(Role::Admin, Some(vec!["job.*"]));
        assert!(wild.has("job.delete.all") && !wild.has("admin.users"));
    }
}
