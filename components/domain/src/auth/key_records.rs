//! API key records as stored, found by id and by user, and revoked: what
//! [`crate::auth::users`] needs to end a user's keys without depending on the
//! rest of [`crate::auth::api_keys`] (which re-exports all of it).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore, get_json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub key_prefix: String,
    pub key_hash: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
    pub expires_ms: u64,
    pub scoped_permissions: Option<Vec<String>>,
    pub active: bool,
    /// The key this one was made with, if it was made with a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

impl ApiKey {
    /// The API view: never the key or its hash.
    pub fn to_api(&self, now_ms: u64) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "key_prefix": self.key_prefix,
            "user_id": self.user_id,
            "created_at": rfc3339(self.created_ms),
            "last_used_at": self.last_used_ms.map(rfc3339),
            "expires_at": rfc3339(self.expires_ms),
            "scoped_permissions": self.scoped_permissions,
            "is_active": self.is_live(now_ms),
            "revoked": !self.active,
            "created_with_key": self.parent_id,
        })
    }

    /// Not revoked and not expired.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.active && self.expires_ms > now_ms
    }
}

pub(super) fn record_key(hash: &str) -> String {
    format!("apikey:{hash}")
}

pub(super) fn user_index(user: &str) -> String {
    format!("apikeys:u:{user}")
}

pub fn by_id(kv: &dyn KvStore, id: &str) -> Result<Option<ApiKey>, ApiError> {
    let Some(hash) = kv.get(&format!("apikeyid:{id}"))? else {
        return Ok(None);
    };
    get_json(kv, &record_key(&String::from_utf8_lossy(&hash))).map_err(ApiError::from)
}

/// Keys of `user_id` (revoked and expired included, marked as such).
pub fn list_for(kv: &dyn KvStore, user_id: &str) -> Result<Vec<ApiKey>, ApiError> {
    let ids: Vec<String> = get_json(kv, &user_index(user_id))?.unwrap_or_default();
    let mut out = Vec::new();
    for id in ids {
        if let Some(k) = by_id(kv, &id)? {
            out.push(k);
        }
    }
    Ok(out)
}

/// Revokes every active key of `user_id` (a password reset by an admin, say);
/// returns how many were.
pub fn revoke_all_for(
    kv: &dyn KvStore,
    actor: &str,
    user_id: &str,
    now_ms: u64,
) -> Result<usize, ApiError> {
    let mut n = 0;
    for key in list_for(kv, user_id)? {
        if key.active {
            deactivate(kv, actor, &key, now_ms)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Marks one key revoked (CAS) and logs it.
pub(super) fn deactivate(
    kv: &dyn KvStore,
    actor: &str,
    key: &ApiKey,
    now_ms: u64,
) -> Result<ApiKey, ApiError> {
    let bytes = kv::update::<()>(kv, &record_key(&key.key_hash), |cur| {
        let mut k: ApiKey = serde_json::from_slice(cur).map_err(|_| ())?;
        k.active = false;
        Ok(serde_json::to_vec(&k).expect("key"))
    })
    .map_err(|e| match e {
        // An outage stays a 503 the caller may retry.
        kv::UpdateError::Store(e) => ApiError::from(e),
        _ => ApiError::storage(format!("could not revoke API key {}", key.id)),
    })?;
    let revoked: ApiKey = serde_json::from_slice(&bytes).expect("key");
    key_event(kv, actor, "api_key.revoked", &revoked, now_ms);
    Ok(revoked)
}

/// A key's creation or revocation in the event log: its id, name, prefix and
/// scopes (the prefix is what every listing shows; never the key or its hash).
pub(super) fn key_event(kv: &dyn KvStore, actor: &str, kind: &str, key: &ApiKey, now_ms: u64) {
    crate::kernel::event_log::record(
        kv,
        crate::kernel::event_log::NewEvent {
            kind,
            actor,
            target: Some(&key.id),
            owner: Some(&key.user_id),
            detail: serde_json::json!({"name": key.name, "key_prefix": key.key_prefix,
                "scoped_permissions": key.scoped_permissions}),
        },
        now_ms,
    );
}
