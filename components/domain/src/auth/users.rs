//! Users and first-run setup.
//!
//! Layout: `user:<id>` (record with the argon2id hash), `username:<lowercase>`
//! (a slot holding the id, claimed race-free), `users:index` (ids, CAS),
//! `setup:admin` (id of the first admin; claimed with `increment`, never CAS:
//! CAS on a missing key is an upsert on Spin).
//! Sessions are in [`crate::auth::sessions`], sign-in in [`crate::auth::login`].

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::principal::{AuthMethod, Principal, Role};
use crate::auth::sessions;
use crate::kernel::clock::rfc3339;
use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::kv::{self, KvStore, claim_slot, get_json, release_slot, set_json};
use crate::kernel::secrets::hash_password;

pub const MIN_PASSWORD: usize = 12;
pub use crate::auth::login_guard::{FREE_FAILURES, MAX_LOCK_MS};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub disabled: bool,
}

impl User {
    /// The API view: never the hash.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "role": self.role.as_str(),
            "permissions": self.role.permissions(),
            "disabled": self.disabled,
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
        })
    }

    pub fn principal(&self, method: AuthMethod, scopes: Option<Vec<String>>) -> Principal {
        Principal {
            id: self.id.clone(),
            username: self.username.clone(),
            role: self.role,
            permissions: self.role.permissions(),
            scopes,
            method,
        }
    }
}

pub fn validate_username(name: &str) -> Result<(), ApiError> {
    let ok = (3..=50).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "invalid_username",
            "username must be 3-50 letters, digits, '_', '-' or '.'",
        ))
    }
}

pub fn validate_password(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > 1024 {
        return Err(ApiError::new(
            400,
            "weak_password",
            format!("password must be at least {MIN_PASSWORD} characters (and at most 1024 bytes)"),
        ));
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(404, "user_not_found", format!("no user {id}"))
}

pub struct UserStore<'a> {
    kv: &'a dyn KvStore,
}

const INDEX: &str = "users:index";
const SETUP: &str = "setup:admin";

impl<'a> UserStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn get(&self, id: &str) -> Result<Option<User>, ApiError> {
        get_json(self.kv, &format!("user:{id}")).map_err(ApiError::from)
    }

    pub fn by_username(&self, username: &str) -> Result<Option<User>, ApiError> {
        let slot = self
            .kv
            .get(&format!("username:{}", username.to_ascii_lowercase()))?;
        match slot {
            Some(id) if !id.is_empty() => self.get(&String::from_utf8_lossy(&id)),
            _ => Ok(None),
        }
    }

    pub fn create(
        &self,
        username: &str,
        password: &str,
        role: Role,
        now_ms: u64,
    ) -> Result<User, ApiError> {
        validate_username(username)?;
        validate_password(password)?;
        let id = uuid::Uuid::new_v4().to_string();
        let slot = format!("username:{}", username.to_ascii_lowercase());
        if !claim_slot(self.kv, &slot, id.as_bytes())? {
            return Err(ApiError::new(
                409,
                "username_taken",
                format!("username {username:?} is taken"),
            ));
        }
        let user = User {
            id: id.clone(),
            username: username.to_string(),
            role,
            password_hash: hash_password(password),
            created_ms: now_ms,
            updated_ms: now_ms,
            disabled: false,
        };
        set_json(self.kv, &format!("user:{id}"), &user)?;
        self.edit_index(|ids| ids.push(id.clone()))?;
        Ok(user)
    }

    /// How many users exist (one read of the index).
    pub fn count(&self) -> Result<usize, ApiError> {
        let ids: Vec<String> = get_json(self.kv, INDEX)?.unwrap_or_default();
        Ok(ids.len())
    }

    pub fn list(&self) -> Result<Vec<User>, ApiError> {
        let ids: Vec<String> = get_json(self.kv, INDEX)?.unwrap_or_default();
        let mut out = Vec::new();
        for id in ids {
            if let Some(u) = self.get(&id)? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Changes role, password or the disabled flag (CAS, no lost updates).
    pub fn update(
        &self,
        id: &str,
        mut f: impl FnMut(&mut User) -> Result<(), ApiError>,
    ) -> Result<User, ApiError> {
        let bytes = kv::update(self.kv, &format!("user:{id}"), |cur| {
            let mut u: User =
                serde_json::from_slice(cur).map_err(|e| ApiError::storage(e.to_string()))?;
            f(&mut u)?;
            Ok(serde_json::to_vec(&u).expect("user"))
        })
        .map_err(|e| match e {
            kv::UpdateError::Missing => not_found(id),
            kv::UpdateError::Rejected(api) => api,
            other => other.into_kv(&format!("user {id}")).into(),
        })?;
        Ok(serde_json::from_slice(&bytes).expect("user"))
    }

    /// `POST /api/cloud/auth/users {"username", "password", "role"?}` (role
    /// defaults to researcher).
    pub fn create_from_body(&self, body: &Value, now_ms: u64) -> Result<User, ApiError> {
        let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
        let role_name = body
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("researcher");
        let role = Role::parse(role_name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown role {role_name:?}; use viewer, researcher, lead or admin"
            ))
        })?;
        self.create(field("username"), field("password"), role, now_ms)
    }

    /// `PATCH /api/cloud/auth/users/{id}` by admin `actor`: `role`, `password`
    /// and `disabled`, all validated before anything is written. An admin
    /// cannot disable or demote themself.
    ///
    /// A new password signs the user out everywhere: their sessions end and,
    /// when an admin resets someone else's, their API keys are revoked (a
    /// reset is what follows a stolen password, and keys made with it must not
    /// outlive it). An admin changing their own keeps the session it is made
    /// from (`keep_session`, the token) and their keys: a routine rotation
    /// should not break their automation, and they see and revoke their keys.
    pub fn patch(
        &self,
        actor: &str,
        id: &str,
        body: &Value,
        keep_session: Option<&str>,
        now_ms: u64,
    ) -> Result<User, ApiError> {
        let obj = object_with_fields(body, &["role", "password", "disabled"], "invalid_request")?;
        let role = match obj.get("role") {
            None => None,
            Some(v) => Some(v.as_str().and_then(Role::parse).ok_or_else(|| {
                ApiError::bad_request("role must be viewer, researcher, lead or admin")
            })?),
        };
        let password = match obj.get("password") {
            None => None,
            Some(v) => {
                let pw = v
                    .as_str()
                    .ok_or_else(|| ApiError::bad_request("password must be a string"))?;
                validate_password(pw)?;
                Some(hash_password(pw))
            }
        };
        let disabled = match obj.get("disabled") {
            None => None,
            Some(v) => Some(
                v.as_bool()
                    .ok_or_else(|| ApiError::bad_request("disabled must be a boolean"))?,
            ),
        };
        if id == actor && (disabled == Some(true) || role.is_some_and(|r| r != Role::Admin)) {
            return Err(ApiError::new(
                409,
                "cannot_demote_self",
                "you cannot disable or demote your own account",
            ));
        }
        let user = self.update(id, |u| {
            if let Some(r) = role {
                u.role = r;
            }
            if let Some(h) = &password {
                u.password_hash = h.clone();
            }
            if let Some(d) = disabled {
                u.disabled = d;
            }
            u.updated_ms = now_ms;
            Ok(())
        })?;
        let mut detail = serde_json::json!({"changed": obj.keys().collect::<Vec<_>>(),
            "role": user.role.as_str(), "disabled": user.disabled});
        if password.is_some() {
            let own = id == actor;
            let ended = sessions::end_all_except(self.kv, id, keep_session.filter(|_| own))?;
            let revoked = if own {
                0
            } else {
                crate::auth::key_records::revoke_all_for(self.kv, actor, id, now_ms)?
            };
            detail["sessions_ended"] = serde_json::json!(ended);
            detail["api_keys_revoked"] = serde_json::json!(revoked);
        }
        self.event(actor, "user.changed", &user, detail, now_ms);
        Ok(user)
    }

    /// A change to a user in the event log (names and roles, never a password).
    pub fn event(&self, actor: &str, kind: &str, user: &User, detail: Value, now_ms: u64) {
        let mut detail = detail;
        detail["username"] = serde_json::json!(user.username);
        crate::kernel::event_log::record(
            self.kv,
            crate::kernel::event_log::NewEvent {
                kind,
                actor,
                target: Some(&user.id),
                owner: Some(&user.id),
                detail,
            },
            now_ms,
        );
    }

    /// `DELETE /api/cloud/auth/users/{id}` by admin `actor`, who cannot delete
    /// themself.
    pub fn remove(&self, actor: &str, id: &str) -> Result<(), ApiError> {
        if id == actor {
            return Err(ApiError::new(
                409,
                "cannot_delete_self",
                "you cannot delete your own account",
            ));
        }
        let user = self.load(id)?;
        if self.delete(id)? {
            self.event(
                actor,
                "user.deleted",
                &user,
                serde_json::json!({}),
                crate::kernel::clock::now_ms(),
            );
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// The user `id`, or 404 `user_not_found`.
    pub fn load(&self, id: &str) -> Result<User, ApiError> {
        self.get(id)?.ok_or_else(|| not_found(id))
    }

    pub fn delete(&self, id: &str) -> Result<bool, ApiError> {
        let Some(user) = self.get(id)? else {
            return Ok(false);
        };
        self.edit_index(|ids| ids.retain(|i| i != id))?;
        sessions::end_all(self.kv, id)?;
        self.kv.delete(&format!("user:{id}"))?;
        release_slot(
            self.kv,
            &format!("username:{}", user.username.to_ascii_lowercase()),
        )?;
        Ok(true)
    }

    fn edit_index(&self, f: impl FnMut(&mut Vec<String>)) -> Result<(), ApiError> {
        kv::edit_json(self.kv, INDEX, f).map_err(ApiError::from)
    }

    pub fn needs_setup(&self) -> Result<bool, ApiError> {
        Ok(!self.kv.exists(SETUP)?)
    }

    /// Creates the first admin exactly once, even under concurrent calls: the
    /// caller whose `increment` returns 1 wins; everyone else gets 409.
    pub fn setup_first_admin(
        &self,
        username: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<User, ApiError> {
        validate_username(username)?;
        validate_password(password)?;
        let already = || {
            ApiError::new(
                409,
                "setup_completed",
                "setup is already done; sign in instead",
            )
        };
        if self.kv.exists(SETUP)? {
            return Err(already());
        }
        if self.kv.increment("claim:setup", 1)? != 1 {
            return Err(already());
        }
        let user = self.create(username, password, Role::Admin, now_ms)?;
        self.kv.set(SETUP, user.id.as_bytes())?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn a_password_reset_ends_sessions_and_revokes_keys() {
        use crate::auth::api_keys;
        use crate::auth::login::{login, session_user};
        let kv = MemoryKv::default();
        let users = UserStore::new(&kv);
        let pw = "a long enough password";
        let root = users.create("root", pw, Role::Admin, 0).unwrap();
        let bob = users.create("bob", pw, Role::Researcher, 0).unwrap();
        let (_, bob_session) = login(&kv, "bob", pw, false, 0).unwrap();
        let bob_p = bob.principal(AuthMethod::Session, None);
        let (key, _) = api_keys::create(&kv, &bob_p, &json!({"name": "ci"}), 0).unwrap();
        users
            .patch(
                &root.id,
                &bob.id,
                &json!({"password": "a brand new password"}),
                None,
                1,
            )
            .unwrap();
        assert!(session_user(&kv, &bob_session.token, 2).unwrap().is_none());
        assert_eq!(
            api_keys::authenticate(&kv, &key, 2).unwrap_err().status,
            401
        );
        // Changing one's own: the other sessions end, this one and the keys stay.
        let (_, here) = login(&kv, "root", pw, false, 3).unwrap();
        let (_, elsewhere) = login(&kv, "root", pw, false, 3).unwrap();
        let root_p = root.principal(AuthMethod::Session, None);
        let (root_key, _) = api_keys::create(&kv, &root_p, &json!({"name": "ci"}), 3).unwrap();
        users
            .patch(
                &root.id,
                &root.id,
                &json!({"password": "another new password"}),
                Some(&here.token),
                4,
            )
            .unwrap();
        assert!(session_user(&kv, &here.token, 5).unwrap().is_some());
        assert!(session_user(&kv, &elsewhere.token, 5).unwrap().is_none());
        assert!(api_keys::authenticate(&kv, &root_key, 5).is_ok());
    }

    #[test]
    fn usernames_are_unique_case_insensitively_and_reusable_after_delete() {
        let kv = MemoryKv::default();
        let users = UserStore::new(&kv);
        let a = users
            .create("Alice", "a long enough password", Role::Viewer, 0)
            .unwrap();
        assert_eq!(
            users
                .create("alice", "a long enough password", Role::Viewer, 0)
                .unwrap_err()
                .code,
            "username_taken"
        );
        assert!(users.delete(&a.id).unwrap());
        assert!(
            users
                .create("alice", "a long enough password", Role::Viewer, 0)
                .is_ok()
        );
        assert!(
            !users.list().unwrap()[0]
                .to_api()
                .to_string()
                .contains("argon2")
        );
    }
}
