//! Scoped API keys: `stk_` + 40 base62 characters, shown once. Stored only as
//! SHA-256 and found by that hash (O(1), no scan); the stored hash is compared
//! in constant time. Layout: `apikey:<sha256>` (record), `apikeyid:<id>` (the
//! hash, for revoking by id), `apikeys:u:<user>` (ids, CAS).

use serde_json::Value;

pub use crate::auth::key_records::{ApiKey, by_id, list_for, revoke_all_for};

use crate::auth::key_records::{deactivate, key_event, record_key, user_index};
use crate::auth::principal::{Action, Permission};
use crate::auth::principal::{AuthMethod, Principal, grants, is_known_permission};
use crate::auth::users::{User, UserStore};
use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::kv::{self, KvStore, get_json, set_json};
use crate::kernel::secrets::{constant_time_eq, random_base62, sha256_hex};

pub const PREFIX: &str = "stk_";
pub const DEFAULT_EXPIRES_DAYS: u64 = 90;
/// Live (not revoked, not expired) keys one user may hold.
pub const MAX_ACTIVE_KEYS: usize = 50;
const DAY_MS: u64 = 24 * 3600 * 1000;
/// `last_used_at` is written at most this often (each write is a KV write).
const LAST_USED_GRANULARITY_MS: u64 = 60_000;

/// `POST /auth/api-keys`: validates the request against the creator and
/// returns the full key (once) with its record.
pub fn create(
    kv: &dyn KvStore,
    creator: &Principal,
    body: &Value,
    now_ms: u64,
) -> Result<(String, ApiKey), ApiError> {
    if !creator.has(Permission::ApiKeysOwn) {
        return Err(
            ApiError::new(403, "permission_denied", "Permission denied: api.keys.own")
                .with_detail("required_permission", "api.keys.own"),
        );
    }
    let obj = object_with_fields(
        body,
        &["name", "expires_days", "scoped_permissions"],
        "invalid_request",
    )?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request(
            "`name` is required (1-100 characters)",
        ));
    }
    let days = match obj.get("expires_days") {
        None | Some(Value::Null) => DEFAULT_EXPIRES_DAYS,
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=365).contains(d))
            .ok_or_else(|| {
                ApiError::bad_request("`expires_days` must be an integer from 1 to 365")
            })?,
    };
    let scopes = match obj.get("scoped_permissions") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut scopes = Vec::new();
            for item in items {
                let s = item
                    .as_str()
                    .ok_or_else(|| ApiError::bad_request("scoped_permissions must be strings"))?;
                let known = s == "*"
                    || is_known_permission(s)
                    || s.strip_suffix(".*").is_some_and(|p| {
                        Permission::ALL
                            .iter()
                            .any(|k| k.name().starts_with(&format!("{p}.")))
                    });
                if !known {
                    return Err(ApiError::bad_request(format!("unknown permission {s:?}")));
                }
                // A scope can only keep what the creator has (scopes included).
                let held = creator.has_named(s)
                    || (s.ends_with(".*")
                        && grants(&creator.permissions, s)
                        && creator.scopes.is_none());
                if !held {
                    return Err(ApiError::new(
                        403,
                        "scope_exceeds_permissions",
                        format!("cannot scope a key to {s:?}: you do not have it"),
                    ));
                }
                scopes.push(s.to_string());
            }
            Some(scopes)
        }
        Some(_) => return Err(ApiError::bad_request("scoped_permissions must be an array")),
    };
    let mut expires_ms = now_ms + days * DAY_MS;
    // A key made with a key: no more scopes and no longer life than its maker.
    let parent = match &creator.method {
        AuthMethod::ApiKey { key_id } => Some(
            by_id(kv, key_id)?
                .filter(|k| k.is_live(now_ms))
                .ok_or_else(|| ApiError::new(401, "invalid_api_key", "the API key is not valid"))?,
        ),
        _ => None,
    };
    let scopes = match &parent {
        Some(p) => {
            expires_ms = expires_ms.min(p.expires_ms);
            scopes.or_else(|| creator.scopes.clone())
        }
        None => scopes,
    };
    let live = list_for(kv, &creator.id)?
        .iter()
        .filter(|k| k.is_live(now_ms))
        .count();
    if live >= MAX_ACTIVE_KEYS {
        return Err(ApiError::new(
            409,
            "too_many_api_keys",
            format!(
                "you already have {live} active API keys, the most one user may hold; revoke keys you no longer use first"
            ),
        )
        .with_detail("max_active_keys", MAX_ACTIVE_KEYS));
    }
    let key = format!("{PREFIX}{}", random_base62(40));
    let record = ApiKey {
        id: random_base62(16),
        user_id: creator.id.clone(),
        name: name.to_string(),
        key_prefix: key[..12].to_string(),
        key_hash: sha256_hex(&key),
        created_ms: now_ms,
        last_used_ms: None,
        expires_ms,
        scoped_permissions: scopes,
        active: true,
        parent_id: parent.map(|p| p.id),
    };
    set_json(kv, &record_key(&record.key_hash), &record)?;
    kv.set(
        &format!("apikeyid:{}", record.id),
        record.key_hash.as_bytes(),
    )?;
    kv::edit_json(kv, &user_index(&creator.id), |ids: &mut Vec<String>| {
        ids.push(record.id.clone())
    })?;
    key_event(kv, &creator.id, "api_key.created", &record, now_ms);
    Ok((key, record))
}

/// The keys `p` lists: their own, or with `all` everyone's (`api.keys.all`).
pub fn list_visible(kv: &dyn KvStore, p: &Principal, all: bool) -> Result<Vec<ApiKey>, ApiError> {
    if !all {
        return list_for(kv, &p.id);
    }
    p.require(Permission::ApiKeysAll)?;
    let mut keys = Vec::new();
    for u in UserStore::new(kv).list()? {
        keys.extend(list_for(kv, &u.id)?);
    }
    Ok(keys)
}

/// Revokes a key the principal may manage (own with `api.keys.own`, any with
/// `api.keys.all`); others' keys are 404.
pub fn revoke(kv: &dyn KvStore, principal: &Principal, id: &str) -> Result<ApiKey, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "api_key_not_found",
            "API key not found or already revoked",
        )
    };
    let key = by_id(kv, id)?.ok_or_else(not_found)?;
    if !principal.can(Action::ApiKeys, &key.user_id) || !key.active {
        return Err(not_found());
    }
    let now_ms = crate::kernel::clock::now_ms();
    let revoked = deactivate(kv, &principal.id, &key, now_ms)?;
    // And every key made with it, and with those.
    let mut makers = vec![revoked.id.clone()];
    while let Some(maker) = makers.pop() {
        for child in list_for(kv, &key.user_id)? {
            if child.active && child.parent_id.as_deref() == Some(maker.as_str()) {
                makers.push(deactivate(kv, &principal.id, &child, now_ms)?.id);
            }
        }
    }
    Ok(revoked)
}

/// The principal behind a presented key; `Err(401)` for unknown, revoked or
/// expired keys and for keys whose user is gone or disabled.
pub fn authenticate(kv: &dyn KvStore, presented: &str, now_ms: u64) -> Result<Principal, ApiError> {
    let invalid =
        |why: &str| ApiError::new(401, "invalid_api_key", format!("the API key is {why}"));
    let hash = sha256_hex(presented);
    let key: ApiKey = get_json(kv, &record_key(&hash))?.ok_or_else(|| invalid("not valid"))?;
    if !constant_time_eq(&key.key_hash, &hash) {
        return Err(invalid("not valid"));
    }
    principal_of(kv, key, now_ms)
}

/// The principal behind a key already proven (by its hash, or by a signature
/// made with credentials derived from it, as S3 clients do); `Err(401)` for
/// revoked or expired keys and for keys whose user is gone or disabled.
pub fn principal_of(kv: &dyn KvStore, key: ApiKey, now_ms: u64) -> Result<Principal, ApiError> {
    let invalid =
        |why: &str| ApiError::new(401, "invalid_api_key", format!("the API key is {why}"));
    if !key.active {
        return Err(invalid("revoked"));
    }
    if key.expires_ms <= now_ms {
        return Err(invalid("expired"));
    }
    let user: User = UserStore::new(kv)
        .get(&key.user_id)?
        .filter(|u| !u.disabled)
        .ok_or_else(|| invalid("for a user who no longer exists or is disabled"))?;
    if key
        .last_used_ms
        .is_none_or(|t| now_ms >= t + LAST_USED_GRANULARITY_MS)
    {
        let _ = kv::update::<()>(kv, &record_key(&key.key_hash), |cur| {
            let mut k: ApiKey = serde_json::from_slice(cur).map_err(|_| ())?;
            k.last_used_ms = Some(now_ms);
            Ok(serde_json::to_vec(&k).expect("key"))
        });
    }
    Ok(user.principal(
        AuthMethod::ApiKey { key_id: key.id },
        key.scoped_permissions,
    ))
}

#[cfg(test)]
mod tests;
