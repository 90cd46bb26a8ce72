//! Scoped API keys: `stk_` + 40 base62 characters, shown once. Stored only as
//! SHA-256 and found by that hash (O(1), no scan); the stored hash is compared
//! in constant time. Layout: `apikey:<sha256>` (record), `apikeyid:<id>` (the
//! hash, for revoking by id), `apikeys:u:<user>` (ids, CAS).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::principal::{Action, Permission};
use crate::auth::principal::{AuthMethod, Principal, grants, is_known_permission};
use crate::auth::users::{User, UserStore};
use crate::kernel::clock::rfc3339;
use crate::kernel::error::{ApiError, object_with_fields};
use crate::kernel::kv::{self, KvStore, get_json, set_json};
use crate::kernel::secrets::{constant_time_eq, random_base62, sha256_hex};

pub const PREFIX: &str = "stk_";
pub const DEFAULT_EXPIRES_DAYS: u64 = 90;
const DAY_MS: u64 = 24 * 3600 * 1000;
/// `last_used_at` is written at most this often (each write is a KV write).
const LAST_USED_GRANULARITY_MS: u64 = 60_000;

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
            "is_active": self.active && self.expires_ms > now_ms,
            "revoked": !self.active,
        })
    }
}

fn record_key(hash: &str) -> String {
    format!("apikey:{hash}")
}

fn user_index(user: &str) -> String {
    format!("apikeys:u:{user}")
}

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
    let key = format!("{PREFIX}{}", random_base62(40));
    let record = ApiKey {
        id: random_base62(16),
        user_id: creator.id.clone(),
        name: name.to_string(),
        key_prefix: key[..12].to_string(),
        key_hash: sha256_hex(&key),
        created_ms: now_ms,
        last_used_ms: None,
        expires_ms: now_ms + days * DAY_MS,
        scoped_permissions: scopes,
        active: true,
    };
    set_json(kv, &record_key(&record.key_hash), &record)?;
    kv.set(
        &format!("apikeyid:{}", record.id),
        record.key_hash.as_bytes(),
    )?;
    kv::edit_json(kv, &user_index(&creator.id), |ids: &mut Vec<String>| {
        ids.push(record.id.clone())
    })?;
    key_event(kv, creator, "api_key.created", &record, now_ms);
    Ok((key, record))
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
    let bytes = kv::update::<()>(kv, &record_key(&key.key_hash), |cur| {
        let mut k: ApiKey = serde_json::from_slice(cur).map_err(|_| ())?;
        k.active = false;
        Ok(serde_json::to_vec(&k).expect("key"))
    })
    .map_err(|e| ApiError::storage(format!("{e:?}")))?;
    let revoked: ApiKey = serde_json::from_slice(&bytes).expect("key");
    key_event(
        kv,
        principal,
        "api_key.revoked",
        &revoked,
        crate::kernel::clock::now_ms(),
    );
    Ok(revoked)
}

/// A key's creation or revocation in the event log: its id, name, prefix and
/// scopes (the prefix is what every listing shows; never the key or its hash).
fn key_event(kv: &dyn KvStore, actor: &Principal, kind: &str, key: &ApiKey, now_ms: u64) {
    crate::kernel::event_log::record(
        kv,
        crate::kernel::event_log::NewEvent {
            kind,
            actor: &actor.id,
            target: Some(&key.id),
            owner: Some(&key.user_id),
            detail: serde_json::json!({"name": key.name, "key_prefix": key.key_prefix,
                "scoped_permissions": key.scoped_permissions}),
        },
        now_ms,
    );
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
mod tests {
    use super::*;
    use crate::auth::principal::Role;
    use crate::kernel::kv::MemoryKv;

    fn setup() -> (MemoryKv, Principal) {
        let kv = MemoryKv::default();
        let u = UserStore::new(&kv)
            .create("alice", "a long enough password", Role::Researcher, 0)
            .unwrap();
        let p = u.principal(AuthMethod::Session, None);
        (kv, p)
    }

    #[test]
    fn keys_are_shown_once_stored_hashed_and_scoped() {
        let (kv, alice) = setup();
        let (key, rec) = create(
            &kv,
            &alice,
            &json!({"name": "ci", "scoped_permissions": ["job.submit", "job.view.own"]}),
            0,
        )
        .unwrap();
        assert!(key.starts_with("stk_") && key.len() == 44);
        assert!(!rec.to_api(0).to_string().contains(&key));
        assert!(!rec.to_api(0).to_string().contains(&rec.key_hash));
        for k in kv.keys() {
            assert!(!String::from_utf8_lossy(&kv.get(&k).unwrap().unwrap()).contains(&key));
        }
        let p = authenticate(&kv, &key, 1).unwrap();
        assert!(
            p.has(Permission::JobSubmit)
                && !p.can(Action::JobCancel, &alice.id)
                && !p.has(Permission::ApiKeysOwn)
        );
        // The scoped key cannot mint keys.
        assert_eq!(
            create(&kv, &p, &json!({"name": "x"}), 1)
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(authenticate(&kv, "stk_nope", 1).unwrap_err().status, 401);
    }

    #[test]
    fn scopes_must_be_held_and_keys_expire_and_revoke() {
        let (kv, alice) = setup();
        let err = create(
            &kv,
            &alice,
            &json!({"name": "x", "scoped_permissions": ["job.view.all"]}),
            0,
        )
        .unwrap_err();
        assert_eq!((err.status, err.code), (403, "scope_exceeds_permissions"));
        for bad in [
            json!({"name": ""}),
            json!({"name": "x", "expires_days": 0}),
            json!({"name": "x", "expires_days": 366}),
            json!({"name": "x", "scoped_permissions": ["fly"]}),
            json!({"name": "x", "extra": 1}),
        ] {
            assert_eq!(
                create(&kv, &alice, &bad, 0).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        let (key, rec) =
            create(&kv, &alice, &json!({"name": "short", "expires_days": 1}), 0).unwrap();
        assert_eq!(
            authenticate(&kv, &key, DAY_MS).unwrap_err().message,
            "the API key is expired"
        );
        let (key2, rec2) = create(&kv, &alice, &json!({"name": "other"}), 0).unwrap();
        let bob = Principal {
            id: "bob".into(),
            ..alice.clone()
        };
        assert_eq!(revoke(&kv, &bob, &rec2.id).unwrap_err().status, 404);
        revoke(&kv, &alice, &rec2.id).unwrap();
        assert_eq!(
            authenticate(&kv, &key2, 1).unwrap_err().message,
            "the API key is revoked"
        );
        assert_eq!(list_for(&kv, &alice.id).unwrap().len(), 2);
        assert_eq!(rec.user_id, alice.id);
    }
}
