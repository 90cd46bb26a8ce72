//! Users, first-run setup, login with brute-force backoff, and sessions.
//!
//! Layout: `user:<id>` (record with the argon2id hash), `username:<lowercase>`
//! (a slot holding the id, claimed race-free), `users:index` (ids, CAS),
//! `setup:admin` (id of the first admin; claimed with `increment`, never CAS:
//! CAS on a missing key is an upsert on Spin), `session:<sha256(token)>`,
//! `loginfail` (failed sign-ins, one bounded value: [`crate::loginguard`]).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{AuthMethod, Principal, Role};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::kv::{self, KvStore, claim_slot, get_json, release_slot, set_json};
use crate::loginguard;
use crate::secrets::{hash_password, random_base62, sha256_hex, verify_password};

pub const MIN_PASSWORD: usize = 12;
pub const SESSION_TTL_MS: u64 = 24 * 3600 * 1000;
pub const REMEMBER_TTL_MS: u64 = 30 * 24 * 3600 * 1000;
pub use crate::loginguard::{FREE_FAILURES, MAX_LOCK_MS};

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

fn storage(e: kv::KvError) -> ApiError {
    ApiError::storage(e.to_string())
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
        get_json(self.kv, &format!("user:{id}")).map_err(storage)
    }

    pub fn by_username(&self, username: &str) -> Result<Option<User>, ApiError> {
        let slot = self
            .kv
            .get(&format!("username:{}", username.to_ascii_lowercase()))
            .map_err(storage)?;
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
        if !claim_slot(self.kv, &slot, id.as_bytes()).map_err(storage)? {
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
        set_json(self.kv, &format!("user:{id}"), &user).map_err(storage)?;
        self.edit_index(|ids| ids.push(id.clone()))?;
        Ok(user)
    }

    pub fn list(&self) -> Result<Vec<User>, ApiError> {
        let ids: Vec<String> = get_json(self.kv, INDEX)
            .map_err(storage)?
            .unwrap_or_default();
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
            kv::UpdateError::Missing => {
                ApiError::new(404, "user_not_found", format!("no user {id}"))
            }
            kv::UpdateError::Rejected(api) => api,
            other => ApiError::storage(format!("{other:?}")),
        })?;
        Ok(serde_json::from_slice(&bytes).expect("user"))
    }

    pub fn delete(&self, id: &str) -> Result<bool, ApiError> {
        let Some(user) = self.get(id)? else {
            return Ok(false);
        };
        self.edit_index(|ids| ids.retain(|i| i != id))?;
        end_sessions(self.kv, id)?;
        self.kv.delete(&format!("user:{id}")).map_err(storage)?;
        release_slot(
            self.kv,
            &format!("username:{}", user.username.to_ascii_lowercase()),
        )
        .map_err(storage)?;
        Ok(true)
    }

    fn edit_index(&self, f: impl FnMut(&mut Vec<String>)) -> Result<(), ApiError> {
        kv::edit_json(self.kv, INDEX, f).map_err(storage)
    }

    pub fn needs_setup(&self) -> Result<bool, ApiError> {
        Ok(!self.kv.exists(SETUP).map_err(storage)?)
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
        if self.kv.exists(SETUP).map_err(storage)? {
            return Err(already());
        }
        if self.kv.increment("claim:setup", 1).map_err(storage)? != 1 {
            return Err(already());
        }
        let user = self.create(username, password, Role::Admin, now_ms)?;
        self.kv.set(SETUP, user.id.as_bytes()).map_err(storage)?;
        Ok(user)
    }
}

/// A new session: the token (returned once) and its expiry.
pub struct NewSession {
    pub token: String,
    pub expires_ms: u64,
}

/// Debug output never shows the token.
impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"[redacted]")
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user_id: String,
    created_ms: u64,
    expires_ms: u64,
}

fn session_key(token: &str) -> String {
    format!("session:{}", sha256_hex(token))
}

/// Checks a username and password, slowing down repeated failures: after
/// [`FREE_FAILURES`] the username is locked for 30 s, doubling per failure up to
/// 15 min (429 with `retry_after_secs`). Sessions are stored hashed.
pub fn login(
    kv: &dyn KvStore,
    username: &str,
    password: &str,
    remember: bool,
    now_ms: u64,
) -> Result<(User, NewSession), ApiError> {
    if let Some(until) = loginguard::locked_until(kv, username, now_ms).map_err(storage)? {
        let secs = (until - now_ms).div_ceil(1000);
        return Err(ApiError::new(
            429,
            "login_locked",
            format!("too many failed sign-ins for this user; try again in {secs} s"),
        )
        .with_detail("retry_after_secs", secs));
    }
    let users = UserStore::new(kv);
    let user = users.by_username(username)?;
    // Verify against a dummy hash for unknown users, so timing does not tell
    // which usernames exist.
    let ok = match &user {
        Some(u) => verify_password(password, &u.password_hash) && !u.disabled,
        None => {
            verify_password(password, DUMMY_HASH);
            false
        }
    };
    if !ok {
        loginguard::record_failure(kv, username, now_ms).map_err(storage)?;
        return Err(ApiError::new(
            401,
            "invalid_credentials",
            "Invalid username or password",
        ));
    }
    let _ = loginguard::clear(kv, username);
    let user = user.expect("ok implies a user");
    let token = format!("sess_{}", random_base62(43));
    let expires_ms = now_ms
        + if remember {
            REMEMBER_TTL_MS
        } else {
            SESSION_TTL_MS
        };
    // Listed first: a listed key whose write then fails is harmless, an
    // unlisted session would never be cleaned up.
    track_session(kv, &user.id, &session_key(&token), expires_ms, now_ms)?;
    set_json(
        kv,
        &session_key(&token),
        &Session {
            user_id: user.id.clone(),
            created_ms: now_ms,
            expires_ms,
        },
    )
    .map_err(storage)?;
    Ok((user, NewSession { token, expires_ms }))
}

/// A stable argon2id hash of a random string, for equal-time failures.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$fbD2Tz7SCcEHcVV3OzVHHHsO8nNyCTbGGNn3r3Ggs0o";

/// The user behind a session token, if the session is live.
pub fn session_user(kv: &dyn KvStore, token: &str, now_ms: u64) -> Result<Option<User>, ApiError> {
    let key = session_key(token);
    let Some(s) = get_json::<Session>(kv, &key).map_err(storage)? else {
        return Ok(None);
    };
    if s.expires_ms <= now_ms {
        let _ = kv.delete(&key);
        return Ok(None);
    }
    Ok(UserStore::new(kv).get(&s.user_id)?.filter(|u| !u.disabled))
}

pub fn logout(kv: &dyn KvStore, token: &str) -> Result<(), ApiError> {
    let key = session_key(token);
    if let Some(s) = get_json::<Session>(kv, &key).map_err(storage)? {
        kv::edit_json(
            kv,
            &sessions_key(&s.user_id),
            |list: &mut Vec<(String, u64)>| list.retain(|(k, _)| *k != key),
        )
        .map_err(storage)?;
    }
    kv.delete(&key).map_err(storage)
}

/// A user's sessions, oldest first: `[[session key, expires_ms], ...]`, so
/// expired ones are deleted at the next sign-in and one user holds at most
/// [`MAX_SESSIONS`] session keys (Fermyon Cloud: 1,024 keys per store).
fn sessions_key(user_id: &str) -> String {
    format!("sessions:u:{user_id}")
}

/// Live sessions per user; a new sign-in beyond it ends the oldest.
pub const MAX_SESSIONS: usize = 20;

fn track_session(
    kv: &dyn KvStore,
    user_id: &str,
    key: &str,
    expires_ms: u64,
    now_ms: u64,
) -> Result<(), ApiError> {
    let mut ended = Vec::new();
    kv::edit_json(
        kv,
        &sessions_key(user_id),
        |list: &mut Vec<(String, u64)>| {
            ended.clear();
            let (live, expired): (Vec<_>, Vec<_>) =
                list.drain(..).partition(|(_, exp)| *exp > now_ms);
            *list = live;
            ended.extend(expired.into_iter().map(|(k, _)| k));
            list.push((key.to_string(), expires_ms));
            while list.len() > MAX_SESSIONS {
                ended.push(list.remove(0).0);
            }
        },
    )
    .map_err(storage)?;
    for k in ended {
        kv.delete(&k).map_err(storage)?;
    }
    Ok(())
}

/// Ends every session of a user (deleted users).
fn end_sessions(kv: &dyn KvStore, user_id: &str) -> Result<(), ApiError> {
    let list: Vec<(String, u64)> = get_json(kv, &sessions_key(user_id))
        .map_err(storage)?
        .unwrap_or_default();
    for (k, _) in list {
        kv.delete(&k).map_err(storage)?;
    }
    kv::delete_created(kv, &sessions_key(user_id)).map_err(storage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryKv;

    #[test]
    fn setup_runs_once_and_login_issues_sessions() {
        let kv = MemoryKv::default();
        let users = UserStore::new(&kv);
        assert!(users.needs_setup().unwrap());
        assert_eq!(
            users
                .setup_first_admin("root", "short", 0)
                .unwrap_err()
                .code,
            "weak_password"
        );
        let admin = users
            .setup_first_admin("root", "a long enough password", 0)
            .unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert_eq!(
            users
                .setup_first_admin("other", "a long enough password", 0)
                .unwrap_err()
                .status,
            409
        );
        assert!(!users.needs_setup().unwrap());
        let (u, s) = login(&kv, "ROOT", "a long enough password", false, 10).unwrap();
        assert_eq!(u.id, admin.id);
        assert!(s.token.starts_with("sess_"));
        assert_eq!(
            session_user(&kv, &s.token, 11).unwrap().unwrap().id,
            admin.id
        );
        assert!(
            session_user(&kv, &s.token, 10 + SESSION_TTL_MS)
                .unwrap()
                .is_none()
        );
        // Stored hashed: the token itself is nowhere in the store.
        for k in kv.keys() {
            assert!(!k.contains(&s.token));
            assert!(!String::from_utf8_lossy(&kv.get(&k).unwrap().unwrap()).contains(&s.token));
        }
        logout(&kv, &s.token).unwrap();
        assert!(session_user(&kv, &s.token, 12).unwrap().is_none());
    }

    #[test]
    fn sessions_are_bounded_per_user_and_cleaned_up() {
        let kv = MemoryKv::default();
        let users = UserStore::new(&kv);
        let alice = users
            .create("alice", "a long enough password", Role::Researcher, 0)
            .unwrap();
        let sessions = |kv: &MemoryKv| {
            kv.keys()
                .into_iter()
                .filter(|k| k.starts_with("session:"))
                .count()
        };
        let first = login(&kv, "alice", "a long enough password", false, 0)
            .unwrap()
            .1;
        for i in 1..MAX_SESSIONS as u64 + 5 {
            login(&kv, "alice", "a long enough password", false, i).unwrap();
        }
        assert_eq!(sessions(&kv), MAX_SESSIONS);
        assert!(
            session_user(&kv, &first.token, 100).unwrap().is_none(),
            "the oldest ended"
        );
        // A day later the next sign-in deletes the expired ones.
        let last = login(
            &kv,
            "alice",
            "a long enough password",
            false,
            SESSION_TTL_MS + 100,
        )
        .unwrap()
        .1;
        assert_eq!(sessions(&kv), 1);
        logout(&kv, &last.token).unwrap();
        assert_eq!(sessions(&kv), 0);
        let list: Vec<(String, u64)> = get_json(&kv, &sessions_key(&alice.id)).unwrap().unwrap();
        assert!(list.is_empty());
        // Deleting the user ends its sessions.
        login(
            &kv,
            "alice",
            "a long enough password",
            true,
            SESSION_TTL_MS + 200,
        )
        .unwrap();
        assert!(users.delete(&alice.id).unwrap());
        assert_eq!(sessions(&kv), 0);
        assert!(
            !kv.keys().iter().any(|k| k.contains(&alice.id)),
            "{:?}",
            kv.keys()
        );
    }

    #[test]
    fn repeated_failures_lock_the_username_for_a_while() {
        let kv = MemoryKv::default();
        UserStore::new(&kv)
            .create("alice", "a long enough password", Role::Researcher, 0)
            .unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                login(&kv, "alice", "wrong password!!", false, 0)
                    .unwrap_err()
                    .status,
                401
            );
        }
        let err = login(&kv, "alice", "a long enough password", false, 1).unwrap_err();
        assert_eq!((err.status, err.code), (429, "login_locked"));
        // After the lock, the right password works and resets the count.
        assert!(login(&kv, "alice", "a long enough password", false, 31_000).is_ok());
        assert!(login(&kv, "nobody", "whatever password", false, 0).is_err());
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
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
