//! Organizations and teams (SimpleTuner's `/api/orgs`): admins create them
//! and add and remove members; a user belongs to at most one organization and
//! to any number of its teams.
//!
//! Ids are integers (SimpleTuner's CLI parses them with `type=int`), taken
//! from counters with the store's atomic `increment`, so two creators never
//! share one. Layout:
//! - `org:<id>` the [`Org`], its member and team lists inside, changed by
//!   compare-and-swap (racing adds all land); `orgs:index` (ids, CAS);
//!   `org-slug:<slug>` a slot holding the id (slugs are unique, race-free).
//! - `team:<id>` the [`Team`] with its members (CAS); `team-slug:<org>:<slug>`.
//! - `user-org:<user>` a slot holding the user's organization: claiming it is
//!   what makes "one organization per user" hold under racing adds.
//! - `user-teams:<user>` the user's team ids (CAS), for the jobs and quotas
//!   that will carry the submitter's team.
//! - user numbers: [`numbers`].
//!
//! Records are serde structs whose later fields default, so quota ceilings
//! (issue 27, item 2) can be added to them without a migration.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore, claim_slot, get_json, release_slot};

pub mod api;
mod input;
pub mod numbers;
pub mod teams;
#[cfg(test)]
mod tests;

const ORG_SEQ: &str = "orgs:seq";
const ORG_INDEX: &str = "orgs:index";

fn org_key(id: u64) -> String {
    format!("org:{id}")
}

fn org_slug_key(slug: &str) -> String {
    format!("org-slug:{slug}")
}

fn user_org_key(user: &str) -> String {
    format!("user-org:{user}")
}

/// What an organization or team is called: the fields both share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub slug: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub settings: Map<String, Value>,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub id: u64,
    #[serde(flatten)]
    pub profile: Profile,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Member user ids, in the order they joined.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub teams: Vec<u64>,
}

impl Org {
    /// SimpleTuner's `Organization.to_dict()`.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.profile.name,
            "slug": self.profile.slug,
            "description": self.profile.description,
            "is_active": self.profile.is_active,
            "settings": self.profile.settings,
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
        })
    }
}

pub(crate) fn store_err(what: &str) -> impl Fn(kv::UpdateError<ApiError>) -> ApiError + '_ {
    move |e| match e {
        kv::UpdateError::Rejected(api) => api,
        kv::UpdateError::Missing => ApiError::not_found(format!("{what} not found")),
        other => other.into_kv(what).into(),
    }
}

pub fn org_not_found(id: u64) -> ApiError {
    ApiError::new(404, "org_not_found", format!("Organization {id} not found"))
}

/// A JSON-encoded record, for CAS closures.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::storage(format!("corrupt record: {e}")))
}

pub(crate) fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise")
}

/// Changes the JSON record at `key` by CAS; `f` may refuse, a missing record
/// is `missing()`.
pub(crate) fn update_record<T: Serialize + serde::de::DeserializeOwned>(
    kv: &dyn KvStore,
    key: &str,
    what: &str,
    missing: impl Fn() -> ApiError,
    f: &mut dyn FnMut(&mut T) -> Result<(), ApiError>,
) -> Result<T, ApiError> {
    let out = kv::update(kv, key, |cur| {
        let mut record: T = parse(cur)?;
        f(&mut record)?;
        Ok(bytes(&record))
    })
    .map_err(|e| match e {
        kv::UpdateError::Missing => missing(),
        e => store_err(what)(e),
    })?;
    parse(&out)
}

/// A new integer id from `counter` (atomic on every store).
pub(crate) fn next_id(kv: &dyn KvStore, counter: &str) -> Result<u64, ApiError> {
    let n = kv.increment(counter, 1)?;
    u64::try_from(n).map_err(|_| ApiError::storage(format!("{counter} is negative")))
}

/// The slot `key` as the integer it holds (`None`: unclaimed or released).
pub(crate) fn slot_id(kv: &dyn KvStore, key: &str) -> Result<Option<u64>, ApiError> {
    Ok(kv
        .get(key)?
        .and_then(|v| String::from_utf8_lossy(&v).parse().ok()))
}

pub struct OrgStore<'a> {
    pub(crate) kv: &'a dyn KvStore,
}

impl<'a> OrgStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn get(&self, id: u64) -> Result<Option<Org>, ApiError> {
        Ok(get_json(self.kv, &org_key(id))?)
    }

    pub fn load(&self, id: u64) -> Result<Org, ApiError> {
        self.get(id)?.ok_or_else(|| org_not_found(id))
    }

    /// Every organization, oldest first.
    pub fn list(&self) -> Result<Vec<Org>, ApiError> {
        let ids: Vec<u64> = get_json(self.kv, ORG_INDEX)?.unwrap_or_default();
        let keys: Vec<String> = ids.iter().map(|id| org_key(*id)).collect();
        let mut out = Vec::new();
        for raw in self.kv.get_many(&keys)?.into_iter().flatten() {
            out.push(parse(&raw)?);
        }
        Ok(out)
    }

    /// Creates an organization; 409 when its slug is taken.
    pub fn create(&self, profile: Profile, now_ms: u64) -> Result<Org, ApiError> {
        let id = next_id(self.kv, ORG_SEQ)?;
        let slot = org_slug_key(&profile.slug);
        if !claim_slot(self.kv, &slot, id.to_string().as_bytes())? {
            return Err(ApiError::new(
                409,
                "slug_taken",
                format!("Organization with slug '{}' already exists", profile.slug),
            ));
        }
        let org = Org {
            id,
            profile,
            created_ms: now_ms,
            updated_ms: now_ms,
            members: Vec::new(),
            teams: Vec::new(),
        };
        // The record before the index: a listed id always has a record.
        kv::set_json(self.kv, &org_key(id), &org)?;
        kv::edit_json(self.kv, ORG_INDEX, |ids: &mut Vec<u64>| ids.push(id))?;
        Ok(org)
    }

    /// Changes an organization by CAS; `f` may refuse.
    pub fn update(
        &self,
        id: u64,
        mut f: impl FnMut(&mut Org) -> Result<(), ApiError>,
    ) -> Result<Org, ApiError> {
        update_record(
            self.kv,
            &org_key(id),
            &format!("Organization {id}"),
            || org_not_found(id),
            &mut f,
        )
    }

    /// Deletes an organization with its teams; its members belong to none.
    pub fn delete(&self, id: u64) -> Result<Org, ApiError> {
        let org = self.load(id)?;
        let teams = teams::TeamStore::new(self.kv);
        for team in &org.teams {
            teams.delete_record(*team)?;
        }
        for user in &org.members {
            self.release_user(user, id)?;
        }
        self.kv.delete(&org_key(id))?;
        kv::edit_json(self.kv, ORG_INDEX, |ids: &mut Vec<u64>| {
            ids.retain(|i| *i != id)
        })?;
        release_slot(self.kv, &org_slug_key(&org.profile.slug))?;
        Ok(org)
    }

    /// The organization `user` belongs to, if any.
    pub fn org_of(&self, user: &str) -> Result<Option<u64>, ApiError> {
        slot_id(self.kv, &user_org_key(user))
    }

    /// Adds `user` to organization `id`: true if added, false if already a
    /// member. A user in another organization is refused (409): SimpleTuner
    /// silently moved them, and with them their quota ceilings.
    pub fn add_member(&self, id: u64, user: &str) -> Result<bool, ApiError> {
        let slot = user_org_key(user);
        if !claim_slot(self.kv, &slot, id.to_string().as_bytes())? {
            match slot_id(self.kv, &slot)? {
                Some(current) if current == id => {}
                Some(current) => {
                    return Err(ApiError::new(
                        409,
                        "already_in_org",
                        format!(
                            "the user belongs to organization {current}; remove them from it first"
                        ),
                    )
                    .with_detail("org_id", current));
                }
                // Released between our claim and our read: try once more.
                None => return self.add_member(id, user),
            }
        }
        let mut added = false;
        let result = self.update(id, |org| {
            added = !org.members.iter().any(|m| m == user);
            if added {
                org.members.push(user.to_string());
            }
            Ok(())
        });
        if let Err(e) = result {
            // The organization is gone (or the store is): give the slot back.
            let _ = release_slot(self.kv, &slot);
            return Err(e);
        }
        Ok(added)
    }

    /// Removes `user` from organization `id` and from its teams; false when
    /// they were not a member.
    pub fn remove_member(&self, id: u64, user: &str) -> Result<bool, ApiError> {
        let mut removed = false;
        let org = self.update(id, |org| {
            let before = org.members.len();
            org.members.retain(|m| m != user);
            removed = org.members.len() != before;
            Ok(())
        })?;
        let teams = teams::TeamStore::new(self.kv);
        for team in &org.teams {
            teams.remove_member(*team, user)?;
        }
        self.release_user(user, id)?;
        Ok(removed)
    }

    /// Frees `user`'s organization slot if it still names `id`.
    fn release_user(&self, user: &str, id: u64) -> Result<(), ApiError> {
        // By CAS: a claim by another organization in between must stand.
        let slot = user_org_key(user);
        let seen = self.kv.read_for_swap(&slot)?;
        if seen.as_deref() == Some(id.to_string().as_bytes()) {
            self.kv.swap(&slot, seen.as_deref(), b"")?;
        }
        Ok(())
    }
}
