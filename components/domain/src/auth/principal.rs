//! Who is calling, and what they may do.
//!
//! Roles and permission names follow SimpleTuner's. One function,
//! [`Principal::can`], decides every object access; an API key's scopes always
//! narrow its owner's permissions.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kernel::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Researcher,
    Lead,
    Admin,
}

/// A permission cloudtuner checks; the names are SimpleTuner's, and they are
/// what roles grant and API keys are scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    JobSubmit,
    JobViewOwn,
    JobViewAll,
    JobCancelOwn,
    JobCancelAll,
    JobDeleteOwn,
    JobDeleteAll,
    JobSync,
    ConfigView,
    ConfigCreate,
    ConfigEditOwn,
    ConfigDeleteOwn,
    ApiAccess,
    ApiKeysOwn,
    ApiKeysAll,
    AdminUsers,
    AdminConfig,
    AdminAudit,
    AdminApprove,
    /// Scrape `/api/metrics/prometheus` (admins; or a key scoped to it).
    MetricsView,
    /// Upload, replace and delete one's own datasets (`/api/cloud/datasets`,
    /// `s3://datasets/...`).
    DatasetUpload,
    /// See an organization one belongs to (admins: every one).
    OrgView,
    OrgCreate,
    OrgEdit,
    OrgDelete,
    /// Add users to an organization and remove them.
    OrgManageMembers,
    /// See the teams of an organization one belongs to.
    TeamView,
    TeamCreate,
    TeamEdit,
    TeamDelete,
    /// Add users to a team, change their team role, remove them.
    TeamManageMembers,
    /// See every quota and any user's usage (leads, admins).
    QuotaView,
    /// Set and delete quotas (admins).
    QuotaManage,
    /// Set an organization's quotas (admins).
    OrgManageQuotas,
    /// Set a team's quotas (admins).
    TeamManageQuotas,
}

impl Permission {
    /// Every permission, for validating scopes.
    pub const ALL: [Permission; 35] = [
        Permission::JobSubmit,
        Permission::JobViewOwn,
        Permission::JobViewAll,
        Permission::JobCancelOwn,
        Permission::JobCancelAll,
        Permission::JobDeleteOwn,
        Permission::JobDeleteAll,
        Permission::JobSync,
        Permission::ConfigView,
        Permission::ConfigCreate,
        Permission::ConfigEditOwn,
        Permission::ConfigDeleteOwn,
        Permission::ApiAccess,
        Permission::ApiKeysOwn,
        Permission::ApiKeysAll,
        Permission::AdminUsers,
        Permission::AdminConfig,
        Permission::AdminAudit,
        Permission::AdminApprove,
        Permission::MetricsView,
        Permission::DatasetUpload,
        Permission::OrgView,
        Permission::OrgCreate,
        Permission::OrgEdit,
        Permission::OrgDelete,
        Permission::OrgManageMembers,
        Permission::TeamView,
        Permission::TeamCreate,
        Permission::TeamEdit,
        Permission::TeamDelete,
        Permission::TeamManageMembers,
        Permission::QuotaView,
        Permission::QuotaManage,
        Permission::OrgManageQuotas,
        Permission::TeamManageQuotas,
    ];

    /// The name roles, scopes and error details use (`job.view.own`).
    pub fn name(self) -> &'static str {
        match self {
            Permission::JobSubmit => "job.submit",
            Permission::JobViewOwn => "job.view.own",
            Permission::JobViewAll => "job.view.all",
            Permission::JobCancelOwn => "job.cancel.own",
            Permission::JobCancelAll => "job.cancel.all",
            Permission::JobDeleteOwn => "job.delete.own",
            Permission::JobDeleteAll => "job.delete.all",
            Permission::JobSync => "job.sync",
            Permission::ConfigView => "config.view",
            Permission::ConfigCreate => "config.create",
            Permission::ConfigEditOwn => "config.edit.own",
            Permission::ConfigDeleteOwn => "config.delete.own",
            Permission::ApiAccess => "api.access",
            Permission::ApiKeysOwn => "api.keys.own",
            Permission::ApiKeysAll => "api.keys.all",
            Permission::AdminUsers => "admin.users",
            Permission::AdminConfig => "admin.config",
            Permission::AdminAudit => "admin.audit",
            Permission::AdminApprove => "admin.approve",
            Permission::MetricsView => "metrics.view",
            Permission::DatasetUpload => "dataset.upload",
            Permission::OrgView => "org.view",
            Permission::OrgCreate => "org.create",
            Permission::OrgEdit => "org.edit",
            Permission::OrgDelete => "org.delete",
            Permission::OrgManageMembers => "org.manage.members",
            Permission::TeamView => "team.view",
            Permission::TeamCreate => "team.create",
            Permission::TeamEdit => "team.edit",
            Permission::TeamDelete => "team.delete",
            Permission::TeamManageMembers => "team.manage.members",
            Permission::QuotaView => "quota.view",
            Permission::QuotaManage => "quota.manage",
            Permission::OrgManageQuotas => "org.manage.quotas",
            Permission::TeamManageQuotas => "team.manage.quotas",
        }
    }
}

/// Something done to an object someone owns: one's own objects need the
/// `.own` permission (or `.all`), others' need `.all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    JobView,
    JobCancel,
    JobDelete,
    ApiKeys,
}

impl Action {
    fn own(self) -> Permission {
        match self {
            Action::JobView => Permission::JobViewOwn,
            Action::JobCancel => Permission::JobCancelOwn,
            Action::JobDelete => Permission::JobDeleteOwn,
            Action::ApiKeys => Permission::ApiKeysOwn,
        }
    }

    fn all(self) -> Permission {
        match self {
            Action::JobView => Permission::JobViewAll,
            Action::JobCancel => Permission::JobCancelAll,
            Action::JobDelete => Permission::JobDeleteAll,
            Action::ApiKeys => Permission::ApiKeysAll,
        }
    }
}

use Permission as P;

/// Everyone sees the organization and teams they belong to (only those:
/// see `auth::orgs`); creating and changing them is for admins (`*`).
const VIEWER: &[Permission] = &[P::JobViewOwn, P::ConfigView, P::OrgView, P::TeamView];
const RESEARCHER: &[Permission] = &[
    P::JobSubmit,
    P::JobViewOwn,
    P::JobCancelOwn,
    P::JobDeleteOwn,
    P::ConfigView,
    P::ConfigCreate,
    P::ConfigEditOwn,
    P::ConfigDeleteOwn,
    P::ApiAccess,
    P::ApiKeysOwn,
    P::DatasetUpload,
    P::OrgView,
    P::TeamView,
];
/// A lead sees everyone's jobs but acts only on their own (as in SimpleTuner).
const LEAD_EXTRA: &[Permission] = &[P::JobViewAll, P::AdminAudit, P::AdminApprove, P::QuotaView];

/// Whether `name` is a permission cloudtuner knows (for validating scopes).
pub fn is_known_permission(name: &str) -> bool {
    Permission::ALL.iter().any(|p| p.name() == name)
}

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
            Role::Viewer => VIEWER.iter().map(|p| p.name()).collect(),
            Role::Researcher => RESEARCHER.iter().map(|p| p.name()).collect(),
            Role::Lead => RESEARCHER
                .iter()
                .chain(LEAD_EXTRA)
                .map(|p| p.name())
                .collect(),
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

    /// Whether the role grants `permission` and, for an API key, its scopes do.
    pub fn has(&self, permission: Permission) -> bool {
        self.has_named(permission.name())
    }

    /// [`Principal::has`] by name (scopes a caller asks to give a new key).
    pub fn has_named(&self, permission: &str) -> bool {
        grants(&self.permissions, permission)
            && self.scopes.as_ref().is_none_or(|s| grants(s, permission))
    }

    /// 403 `permission_denied` naming the permission, unless it is held.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                403,
                "permission_denied",
                format!("Permission denied: {}", permission.name()),
            )
            .with_detail("required_permission", permission.name()))
        }
    }

    /// May this principal do `action` to an object owned by `owner`?
    pub fn can(&self, action: Action, owner: &str) -> bool {
        self.has(action.all()) || (owner == self.id && self.has(action.own()))
    }

    pub fn is_admin(&self) -> bool {
        self.has(Permission::AdminUsers)
    }

    /// `GET /api/cloud/auth/me`: who this is and what they may do (the
    /// permissions the role and any key scopes leave, by name).
    pub fn to_api(&self) -> Value {
        let effective: Vec<&str> = Permission::ALL
            .iter()
            .filter(|p| self.has(**p))
            .map(|p| p.name())
            .collect();
        json!({
            "id": self.id,
            "username": self.username,
            "role": self.role.as_str(),
            "is_admin": self.is_admin(),
            "auth_method": self.method,
            "scoped_permissions": self.scopes,
            "permissions": effective,
        })
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
        assert!(viewer.can(Action::JobView, "alice") && !viewer.has(Permission::JobSubmit));
        let researcher = user(Role::Researcher, None);
        assert!(
            researcher.has(Permission::JobSubmit) && researcher.can(Action::JobCancel, "alice")
        );
        assert!(!researcher.can(Action::JobView, "bob"));
        let lead = user(Role::Lead, None);
        assert!(lead.can(Action::JobView, "bob") && !lead.can(Action::JobDelete, "bob"));
        let admin = user(Role::Admin, None);
        assert!(admin.can(Action::JobDelete, "bob") && admin.is_admin());
    }

    #[test]
    fn scopes_narrow_and_never_widen() {
        let key = user(
            Role::Researcher,
            Some(vec!["job.submit", "job.view.own", "job.view.all"]),
        );
        assert!(key.has(Permission::JobSubmit) && key.can(Action::JobView, "alice"));
        assert!(!key.can(Action::JobCancel, "alice"), "not in scope");
        assert!(
            !key.can(Action::JobView, "bob"),
            "scope cannot widen the role"
        );
        let wild = user(Role::Admin, Some(vec!["job.*"]));
        assert!(wild.has(Permission::JobDeleteAll) && !wild.has(Permission::AdminUsers));
    }
}
