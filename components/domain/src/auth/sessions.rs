//! Sessions: `session:<sha256(token)>` records (the token itself is never
//! stored), and per user `sessions:u:<user>` listing them oldest first, so
//! expired ones are deleted at the next sign-in and one user holds at most
//! [`MAX_SESSIONS`] session keys (Fermyon Cloud: 1,024 keys per store).

use serde::{Deserialize, Serialize};

use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore, get_json, set_json};
use crate::kernel::secrets::{random_base62, sha256_hex};

pub const SESSION_TTL_MS: u64 = 24 * 3600 * 1000;
pub const REMEMBER_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

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

/// Live sessions per user; a new sign-in beyond it ends the oldest.
pub const MAX_SESSIONS: usize = 20;

/// Starts a session for `user_id` that lasts until `expires_ms`.
pub fn start(
    kv: &dyn KvStore,
    user_id: &str,
    expires_ms: u64,
    now_ms: u64,
) -> Result<NewSession, ApiError> {
    let token = format!("sess_{}", random_base62(43));
    // Listed first: a listed key whose write then fails is harmless, an
    // unlisted session would never be cleaned up.
    track(kv, user_id, &session_key(&token), expires_ms, now_ms)?;
    set_json(
        kv,
        &session_key(&token),
        &Session {
            user_id: user_id.to_string(),
            created_ms: now_ms,
            expires_ms,
        },
    )?;
    Ok(NewSession { token, expires_ms })
}

/// The user id behind a live session token (an expired one is deleted).
pub fn user_of(kv: &dyn KvStore, token: &str, now_ms: u64) -> Result<Option<String>, ApiError> {
    let key = session_key(token);
    let Some(s) = get_json::<Session>(kv, &key)? else {
        return Ok(None);
    };
    if s.expires_ms <= now_ms {
        let _ = kv.delete(&key);
        return Ok(None);
    }
    Ok(Some(s.user_id))
}

/// Ends one session (sign-out).
pub fn end(kv: &dyn KvStore, token: &str) -> Result<(), ApiError> {
    let key = session_key(token);
    if let Some(s) = get_json::<Session>(kv, &key)? {
        kv::edit_json(
            kv,
            &sessions_key(&s.user_id),
            |list: &mut Vec<(String, u64)>| list.retain(|(k, _)| *k != key),
        )?;
    }
    kv.delete(&key).map_err(ApiError::from)
}

/// A user's sessions, oldest first: `[[session key, expires_ms], ...]`, so
/// expired ones are deleted at the next sign-in and one user holds at most
/// [`MAX_SESSIONS`] session keys (Fermyon Cloud: 1,024 keys per store).
pub(crate) fn sessions_key(user_id: &str) -> String {
    format!("sessions:u:{user_id}")
}

fn track(
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
    )?;
    for k in ended {
        kv.delete(&k)?;
    }
    Ok(())
}

/// Ends every session of a user (deleted users).
pub fn end_all(kv: &dyn KvStore, user_id: &str) -> Result<(), ApiError> {
    let list: Vec<(String, u64)> = get_json(kv, &sessions_key(user_id))?.unwrap_or_default();
    for (k, _) in list {
        kv.delete(&k)?;
    }
    kv::delete_created(kv, &sessions_key(user_id)).map_err(ApiError::from)
}

/// Ends every session of a user but the one `keep` (a token) names, if any:
/// a password change signs out everywhere else. Returns how many ended.
pub fn end_all_except(
    kv: &dyn KvStore,
    user_id: &str,
    keep: Option<&str>,
) -> Result<usize, ApiError> {
    let keep = keep.map(session_key);
    let mut ended = Vec::new();
    kv::edit_json(
        kv,
        &sessions_key(user_id),
        |list: &mut Vec<(String, u64)>| {
            ended.clear();
            list.retain(|(k, _)| {
                let kept = Some(k) == keep.as_ref();
                if !kept {
                    ended.push(k.clone());
                }
                kept
            });
        },
    )?;
    for k in &ended {
        kv.delete(k)?;
    }
    Ok(ended.len())
}
