//! Teams inside an organization, each with its members and their team roles
//! (`member`, `lead`, `admin`, SimpleTuner's). A user may be in several teams.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{OrgStore, Profile, next_id, parse};
use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore, claim_slot, get_json, release_slot};

const TEAM_SEQ: &str = "teams:seq";

fn team_key(id: u64) -> String {
    format!("team:{id}")
}

fn team_slug_key(org: u64, slug: &str) -> String {
    format!("team-slug:{org}:{slug}")
}

fn user_teams_key(user: &str) -> String {
    format!("user-teams:{user}")
}

/// The team roles SimpleTuner's `TeamMembershipRequest` accepts.
pub const TEAM_ROLES: [&str; 3] = ["member", "lead", "admin"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamMember {
    pub user: String,
    pub role: String,
    pub joined_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub id: u64,
    pub org_id: u64,
    #[serde(flatten)]
    pub profile: Profile,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default)]
    pub members: Vec<TeamMember>,
}

impl Team {
    /// SimpleTuner's `Team.to_dict()`, plus the member count.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "org_id": self.org_id,
            "name": self.profile.name,
            "slug": self.profile.slug,
            "description": self.profile.description,
            "is_active": self.profile.is_active,
            "settings": self.profile.settings,
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
            "member_count": self.members.len(),
        })
    }

    pub fn role_of(&self, user: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.user == user)
            .map(|m| m.role.as_str())
    }
}

pub fn team_not_found(id: u64) -> ApiError {
    ApiError::new(404, "team_not_found", format!("Team {id} not found"))
}

pub struct TeamStore<'a> {
    kv: &'a dyn KvStore,
}

impl<'a> TeamStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn get(&self, id: u64) -> Result<Option<Team>, ApiError> {
        Ok(get_json(self.kv, &team_key(id))?)
    }

    /// Team `id` of organization `org` (404 for a team of another one, so a
    /// path cannot reach a team through an organization it is not in).
    pub fn load(&self, org: u64, id: u64) -> Result<Team, ApiError> {
        match self.get(id)? {
            Some(t) if t.org_id == org => Ok(t),
            _ => Err(team_not_found(id)),
        }
    }

    /// The teams with these ids (missing ones skipped).
    pub fn many(&self, ids: &[u64]) -> Result<Vec<Team>, ApiError> {
        let keys: Vec<String> = ids.iter().map(|id| team_key(*id)).collect();
        let mut out = Vec::new();
        for raw in self.kv.get_many(&keys)?.into_iter().flatten() {
            out.push(parse(&raw)?);
        }
        Ok(out)
    }

    /// The ids of the teams `user` is in.
    pub fn teams_of(&self, user: &str) -> Result<Vec<u64>, ApiError> {
        Ok(get_json(self.kv, &user_teams_key(user))?.unwrap_or_default())
    }

    /// Creates a team in organization `org` (404 if it is gone, 409 when the
    /// slug is taken there).
    pub fn create(&self, org: u64, profile: Profile, now_ms: u64) -> Result<Team, ApiError> {
        let orgs = OrgStore::new(self.kv);
        orgs.load(org)?;
        let id = next_id(self.kv, TEAM_SEQ)?;
        let slot = team_slug_key(org, &profile.slug);
        if !claim_slot(self.kv, &slot, id.to_string().as_bytes())? {
            return Err(ApiError::new(
                409,
                "slug_taken",
                format!(
                    "a team with slug '{}' already exists in this organization",
                    profile.slug
                ),
            ));
        }
        let team = Team {
            id,
            org_id: org,
            profile,
            created_ms: now_ms,
            updated_ms: now_ms,
            members: Vec::new(),
        };
        kv::set_json(self.kv, &team_key(id), &team)?;
        if let Err(e) = orgs.update(org, |o| {
            o.teams.push(id);
            Ok(())
        }) {
            // The organization went away meanwhile: leave nothing behind.
            self.delete_record(id)?;
            return Err(e);
        }
        Ok(team)
    }

    /// Changes a team by CAS; `f` may refuse.
    pub fn update(
        &self,
        id: u64,
        mut f: impl FnMut(&mut Team) -> Result<(), ApiError>,
    ) -> Result<Team, ApiError> {
        super::update_record(
            self.kv,
            &team_key(id),
            &format!("Team {id}"),
            || team_not_found(id),
            &mut f,
        )
    }

    /// Deletes team `id` of `org` and takes it off the organization.
    pub fn delete(&self, org: u64, id: u64) -> Result<Team, ApiError> {
        let team = self.load(org, id)?;
        OrgStore::new(self.kv).update(org, |o| {
            o.teams.retain(|t| *t != id);
            Ok(())
        })?;
        self.delete_record(id)?;
        Ok(team)
    }

    /// Deletes a team's record, slug and its members' links to it.
    pub(crate) fn delete_record(&self, id: u64) -> Result<(), ApiError> {
        let Some(team) = self.get(id)? else {
            return Ok(());
        };
        for m in &team.members {
            self.unlink(&m.user, id)?;
        }
        self.kv.delete(&team_key(id))?;
        release_slot(self.kv, &team_slug_key(team.org_id, &team.profile.slug))?;
        Ok(())
    }

    /// Adds `user` with `role`: true if added, false if already a member.
    pub fn add_member(
        &self,
        id: u64,
        user: &str,
        role: &str,
        now_ms: u64,
    ) -> Result<bool, ApiError> {
        let mut added = false;
        self.update(id, |t| {
            added = t.role_of(user).is_none();
            if added {
                t.members.push(TeamMember {
                    user: user.to_string(),
                    role: role.to_string(),
                    joined_ms: now_ms,
                });
            }
            Ok(())
        })?;
        kv::edit_json(self.kv, &user_teams_key(user), |ids: &mut Vec<u64>| {
            if !ids.contains(&id) {
                ids.push(id);
            }
        })?;
        Ok(added)
    }

    /// Changes a member's team role (404 when they are not a member).
    pub fn set_role(&self, id: u64, user: &str, role: &str) -> Result<Team, ApiError> {
        self.update(id, |t| {
            let m = t
                .members
                .iter_mut()
                .find(|m| m.user == user)
                .ok_or_else(not_a_member)?;
            m.role = role.to_string();
            Ok(())
        })
    }

    /// Removes `user` from team `id`: false when they were not in it.
    pub fn remove_member(&self, id: u64, user: &str) -> Result<bool, ApiError> {
        let mut removed = false;
        match self.update(id, |t| {
            let before = t.members.len();
            t.members.retain(|m| m.user != user);
            removed = t.members.len() != before;
            Ok(())
        }) {
            Ok(_) => {}
            Err(e) if e.status == 404 => return Ok(false),
            Err(e) => return Err(e),
        }
        self.unlink(user, id)?;
        Ok(removed)
    }

    fn unlink(&self, user: &str, id: u64) -> Result<(), ApiError> {
        kv::edit_json(self.kv, &user_teams_key(user), |ids: &mut Vec<u64>| {
            ids.retain(|t| *t != id)
        })?;
        Ok(())
    }
}

pub fn not_a_member() -> ApiError {
    ApiError::new(
        404,
        "not_a_member",
        "User is not a member of this team".to_string(),
    )
}
