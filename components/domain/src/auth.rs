//! Who is calling, and what they may do. Until authentication lands (its own
//! issue) every request is the single local principal with every permission;
//! handlers already take a principal so nothing changes for them then.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable owner id stored on the objects this principal creates.
    pub id: String,
    /// Permission names (`job.submit`, `job.view.all`, ...); `*` grants all.
    pub permissions: Vec<String>,
}

impl Principal {
    pub fn local() -> Self {
        Self {
            id: "local".into(),
            permissions: vec!["*".into()],
        }
    }

    pub fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| {
            p == "*"
                || p == permission
                || p.strip_suffix(".*")
                    .is_some_and(|prefix| permission.starts_with(&format!("{prefix}.")))
        })
    }

    /// May this principal do `action` (`job.view`, `job.cancel`, ...) to an
    /// object owned by `owner`? Own objects need `<action>.own` (or `.all`),
    /// others' need `<action>.all`.
    pub fn can(&self, action: &str, owner: &str) -> bool {
        self.has(&format!("{action}.all"))
            || (owner == self.id && self.has(&format!("{action}.own")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_all_permissions() {
        let p = Principal {
            id: "alice".into(),
            permissions: vec!["job.view.own".into(), "config.*".into()],
        };
        assert!(p.can("job.view", "alice"));
        assert!(!p.can("job.view", "bob"));
        assert!(!p.can("job.cancel", "alice"));
        assert!(p.has("config.write"));
        assert!(Principal::local().can("job.delete", "anyone"));
    }
}
