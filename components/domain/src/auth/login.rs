//! Signing in: username and password checked against the argon2id hash, with
//! brute-force backoff ([`crate::auth::login_guard`]), then a session.

use serde_json::Value;

use crate::auth::login_guard;
use crate::auth::sessions::{self, NewSession, REMEMBER_TTL_MS, SESSION_TTL_MS};
use crate::auth::users::{User, UserStore};
use crate::kernel::error::ApiError;
use crate::kernel::kv::KvStore;
use crate::kernel::secrets::verify_password;

/// [`login_guard::FREE_FAILURES`] the username is locked for 30 s, doubling per failure up to
/// 15 min (429 with `retry_after_secs`). Sessions are stored hashed.
pub fn login(
    kv: &dyn KvStore,
    username: &str,
    password: &str,
    remember: bool,
    now_ms: u64,
) -> Result<(User, NewSession), ApiError> {
    // Cheap refusals first, before any argon2 work: a place among the
    // verifications in flight, then the attempt reserved (counted) for the
    // name, so parallel guesses cannot all pass the lock.
    let Some(_hashing) = login_guard::Argon2Slot::acquire(kv, now_ms)? else {
        return Err(ApiError::new(
            503,
            "sign_in_busy",
            "too many sign-ins are being checked right now; try again in a few seconds",
        )
        .with_detail("retry_after_secs", 2));
    };
    // A reservation that cannot be written is refused, never evaluated.
    match login_guard::reserve(kv, username, now_ms).map_err(|_| {
        ApiError::new(
            503,
            "sign_in_busy",
            "sign-in could not be checked right now; try again in a few seconds",
        )
        .with_detail("retry_after_secs", 2)
    })? {
        login_guard::Reservation::Granted => {}
        login_guard::Reservation::Locked { until_ms } => {
            let secs = (until_ms - now_ms).div_ceil(1000);
            return Err(ApiError::new(
                429,
                "login_locked",
                format!("too many failed sign-ins for this user; try again in {secs} s"),
            )
            .with_detail("retry_after_secs", secs));
        }
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
        // Already counted by the reservation.
        crate::kernel::event_log::record(
            kv,
            crate::kernel::event_log::NewEvent {
                kind: "auth.login_failed",
                actor: "anonymous",
                target: user.as_ref().map(|u| u.id.as_str()),
                owner: None,
                detail: serde_json::json!({"username": username}),
            },
            now_ms,
        );
        return Err(ApiError::new(
            401,
            "invalid_credentials",
            "Invalid username or password",
        ));
    }
    let _ = login_guard::clear(kv, username);
    let user = user.expect("ok implies a user");
    let expires_ms = now_ms
        + if remember {
            REMEMBER_TTL_MS
        } else {
            SESSION_TTL_MS
        };
    let session = sessions::start(kv, &user.id, expires_ms, now_ms)?;
    crate::kernel::event_log::record(
        kv,
        crate::kernel::event_log::NewEvent {
            kind: "auth.login",
            actor: &user.id,
            target: Some(&user.id),
            owner: Some(&user.id),
            detail: serde_json::json!({"username": user.username, "remember_me": remember}),
        },
        now_ms,
    );
    Ok((user, session))
}

/// The fields of a sign-in (or first-run setup) body; missing ones are empty
/// and fail like a wrong password would.
#[derive(Debug, Default)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    pub remember_me: bool,
}

impl LoginRequest {
    pub fn from_body(body: &Value) -> Self {
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        LoginRequest {
            username: field("username"),
            password: field("password"),
            remember_me: body
                .get("remember_me")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

/// A stable argon2id hash of a random string, for equal-time failures.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$fbD2Tz7SCcEHcVV3OzVHHHsO8nNyCTbGGNn3r3Ggs0o";

/// The user behind a session token, if the session is live and the user enabled.
pub fn session_user(kv: &dyn KvStore, token: &str, now_ms: u64) -> Result<Option<User>, ApiError> {
    let Some(user_id) = sessions::user_of(kv, token, now_ms)? else {
        return Ok(None);
    };
    Ok(UserStore::new(kv).get(&user_id)?.filter(|u| !u.disabled))
}

/// Signs out: ends the session the token names.
pub fn logout(kv: &dyn KvStore, token: &str) -> Result<(), ApiError> {
    sessions::end(kv, token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::login_guard::FREE_FAILURES;
    use crate::auth::principal::Role;
    use crate::auth::sessions::{MAX_SESSIONS, sessions_key};
    use crate::kernel::kv::MemoryKv;
    use crate::kernel::kv::get_json;

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
}
