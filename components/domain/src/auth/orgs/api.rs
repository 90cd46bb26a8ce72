//! `/api/orgs/...`, SimpleTuner's routes and response shapes, so its CLI
//! (`simpletuner auth orgs ...`) works unmodified. The component only hands
//! the request here.
//!
//! Permissions are SimpleTuner's names (`org.view`, `org.create`, ...,
//! `team.manage.members`): every role views, admins (`*`) change. Who lacks
//! the permission gets 403; an organization one may not see (not an admin,
//! not a member) is 404, as one that does not exist (SimpleTuner answered 403
//! and so said which ids exist). Every change is in the event log.
//!
//! Deliberate differences from SimpleTuner 4.10.1 (its defects):
//! - adding a user who is in another organization is a 409, not a silent move;
//! - removing a non-member is a 404, not a "success";
//! - adding a user or member that does not exist is a 404 (it stored any id);
//! - a team member already there is a 409, not a 200 with `success: false`;
//! - a duplicate team slug in one organization is a 409 (it had no check);
//! - users are named by integer ids (the CLI's), also by id or username.

use serde_json::{Value, json};

use super::input::{apply, fields, membership, new_profile, profile_patch};
use super::numbers::UserNumbers;
use super::teams::{Team, TeamStore, not_a_member};
use super::{Org, OrgStore, org_not_found};
use crate::auth::principal::{Permission, Principal};
use crate::auth::users::UserStore;
use crate::kernel::error::ApiError;
use crate::kernel::event_log::{self, NewEvent};
use crate::kernel::kv::KvStore;

/// One request to `/api/orgs...`.
pub struct OrgRequest<'a> {
    pub method: &'a str,
    /// The path after `/api/orgs` (`""`, `/3`, `/3/teams/4/members`).
    pub rest: &'a str,
    pub include_inactive: bool,
    /// The JSON body (`Value::Null` when there is none).
    pub body: Value,
    pub now_ms: u64,
}

/// (status, body) of a successful answer.
pub type Answer = (u16, Value);

pub fn handle(kv: &dyn KvStore, p: &Principal, req: &OrgRequest) -> Result<Answer, ApiError> {
    let parts: Vec<&str> = req.rest.split('/').filter(|s| !s.is_empty()).collect();
    let ctx = Ctx { kv, p, req };
    match parts.as_slice() {
        [] => ctx.root(),
        ["users"] => ctx.directory(),
        [org] => ctx.org(id(org)?),
        [org, "members"] => {
            methods(req, &["GET"])?;
            ctx.org_members(id(org)?)
        }
        [org, "members", user] => ctx.org_member(id(org)?, user),
        [org, "teams"] => ctx.team_list(id(org)?),
        [org, "teams", team] => ctx.team(id(org)?, id(team)?),
        [org, "teams", team, "members"] => ctx.team_members(id(org)?, id(team)?),
        [org, "teams", team, "members", user] => ctx.team_member(id(org)?, id(team)?, user),
        _ => Err(ApiError::not_found(format!(
            "no route /api/orgs{}",
            req.rest
        ))),
    }
}

fn id(segment: &str) -> Result<u64, ApiError> {
    segment.parse().map_err(|_| {
        ApiError::new(
            400,
            "invalid_id",
            format!("organization and team ids are integers, not {segment:?}"),
        )
    })
}

fn methods(req: &OrgRequest, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.iter().any(|m| m.eq_ignore_ascii_case(req.method)) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(req.method, allowed))
    }
}

fn ok(message: &str) -> Answer {
    (200, json!({"success": true, "message": message}))
}

struct Ctx<'a> {
    kv: &'a dyn KvStore,
    p: &'a Principal,
    req: &'a OrgRequest<'a>,
}

impl Ctx<'_> {
    fn orgs(&self) -> OrgStore<'_> {
        OrgStore::new(self.kv)
    }

    fn teams(&self) -> TeamStore<'_> {
        TeamStore::new(self.kv)
    }

    fn audit(&self, kind: &str, target: String, detail: Value) {
        event_log::record(
            self.kv,
            NewEvent {
                kind,
                actor: &self.p.id,
                target: Some(&target),
                owner: None,
                detail,
            },
            self.req.now_ms,
        );
    }

    /// Organization `id`, if the caller holds `permission` and may see it.
    fn visible(&self, id: u64, permission: Permission) -> Result<Org, ApiError> {
        self.p.require(permission)?;
        let org = self.orgs().get(id)?.ok_or_else(|| org_not_found(id))?;
        if self.p.is_admin() || org.members.contains(&self.p.id) {
            Ok(org)
        } else {
            Err(org_not_found(id))
        }
    }

    fn root(&self) -> Result<Answer, ApiError> {
        methods(self.req, &["GET", "POST"])?;
        if self.req.method.eq_ignore_ascii_case("POST") {
            self.p.require(Permission::OrgCreate)?;
            let profile = new_profile(&self.req.body)?;
            let org = self.orgs().create(profile, self.req.now_ms)?;
            self.audit(
                "org.created",
                format!("org:{}", org.id),
                json!({"slug": org.profile.slug}),
            );
            return Ok((201, json!({"organization": org.to_api()})));
        }
        self.p.require(Permission::OrgView)?;
        let mut orgs = self.orgs().list()?;
        if !self.p.is_admin() {
            orgs.retain(|o| o.members.contains(&self.p.id));
        }
        let mut out = Vec::new();
        for org in orgs
            .iter()
            .filter(|o| self.req.include_inactive || o.profile.is_active)
        {
            let mut v = org.to_api();
            v["member_count"] = json!(org.members.len());
            v["team_count"] = json!(self.active_teams(org)?.len());
            out.push(v);
        }
        Ok((200, json!({"organizations": out})))
    }

    /// `GET /api/orgs/users` (admins): every user with the integer id the
    /// CLI's member commands take, and their organization.
    fn directory(&self) -> Result<Answer, ApiError> {
        methods(self.req, &["GET"])?;
        self.p.require(Permission::AdminUsers)?;
        let numbers = UserNumbers::new(self.kv);
        let mut out = Vec::new();
        for u in UserStore::new(self.kv).list()? {
            out.push(json!({
                "id": numbers.number(&u.id)?,
                "uid": u.id,
                "username": u.username,
                "role": u.role.as_str(),
                "org_id": self.orgs().org_of(&u.id)?,
            }));
        }
        Ok((200, json!({"users": out})))
    }

    fn active_teams(&self, org: &Org) -> Result<Vec<Team>, ApiError> {
        let mut teams = self.teams().many(&org.teams)?;
        teams.retain(|t| self.req.include_inactive || t.profile.is_active);
        Ok(teams)
    }

    fn org(&self, id: u64) -> Result<Answer, ApiError> {
        methods(self.req, &["GET", "PATCH", "DELETE"])?;
        match self.req.method.to_ascii_uppercase().as_str() {
            "GET" => {
                let org = self.visible(id, Permission::OrgView)?;
                Ok((200, json!({"organization": org.to_api()})))
            }
            "PATCH" => {
                self.visible(id, Permission::OrgEdit)?;
                let patch = profile_patch(&self.req.body)?;
                let now = self.req.now_ms;
                let org = self.orgs().update(id, |o| {
                    apply(&mut o.profile, &patch);
                    o.updated_ms = now;
                    Ok(())
                })?;
                self.audit("org.updated", format!("org:{id}"), fields(&patch));
                Ok((200, json!({"organization": org.to_api()})))
            }
            _ => {
                self.visible(id, Permission::OrgDelete)?;
                let org = self.orgs().delete(id)?;
                self.audit(
                    "org.deleted",
                    format!("org:{id}"),
                    json!({"slug": org.profile.slug, "teams": org.teams.len()}),
                );
                Ok(ok("Organization deleted"))
            }
        }
    }

    fn org_members(&self, id: u64) -> Result<Answer, ApiError> {
        let org = self.visible(id, Permission::OrgView)?;
        let users = UserStore::new(self.kv);
        let numbers = UserNumbers::new(self.kv);
        let mut members = Vec::new();
        for uid in &org.members {
            let Some(u) = users.get(uid)? else { continue };
            let mut teams = self.teams().teams_of(uid)?;
            teams.retain(|t| org.teams.contains(t));
            members.push(json!({
                "id": numbers.number(uid)?,
                "username": u.username,
                "role": u.role.as_str(),
                "is_admin": u.role.permissions().iter().any(|p| p == "*"),
                "is_active": !u.disabled,
                "teams": teams,
            }));
        }
        Ok((
            200,
            json!({"organization": org.to_api(), "members": members}),
        ))
    }

    fn org_member(&self, id: u64, user: &str) -> Result<Answer, ApiError> {
        methods(self.req, &["POST", "DELETE"])?;
        self.visible(id, Permission::OrgManageMembers)?;
        let target = UserNumbers::new(self.kv).resolve(user)?;
        let event = format!("org:{id}");
        if self.req.method.eq_ignore_ascii_case("POST") {
            let added = self.orgs().add_member(id, &target.id)?;
            if added {
                self.audit("org.member_added", event, json!({"user": target.id}));
            }
            let message = if added {
                "User added to organization"
            } else {
                "User is already a member of this organization"
            };
            return Ok(ok(message));
        }
        if !self.orgs().remove_member(id, &target.id)? {
            return Err(ApiError::new(
                404,
                "not_a_member",
                "User is not a member of this organization",
            ));
        }
        self.audit("org.member_removed", event, json!({"user": target.id}));
        Ok(ok("User removed from organization"))
    }

    fn team_list(&self, org_id: u64) -> Result<Answer, ApiError> {
        methods(self.req, &["GET", "POST"])?;
        if self.req.method.eq_ignore_ascii_case("POST") {
            self.visible(org_id, Permission::TeamCreate)?;
            let profile = new_profile(&self.req.body)?;
            let team = self.teams().create(org_id, profile, self.req.now_ms)?;
            self.audit(
                "team.created",
                format!("team:{}", team.id),
                json!({"org_id": org_id, "slug": team.profile.slug}),
            );
            return Ok((201, json!({"team": team.to_api()})));
        }
        let org = self.visible(org_id, Permission::TeamView)?;
        let teams: Vec<Value> = self.active_teams(&org)?.iter().map(Team::to_api).collect();
        Ok((200, json!({"organization": org.to_api(), "teams": teams})))
    }

    fn team(&self, org_id: u64, id: u64) -> Result<Answer, ApiError> {
        methods(self.req, &["GET", "PATCH", "DELETE"])?;
        let target = format!("team:{id}");
        match self.req.method.to_ascii_uppercase().as_str() {
            "GET" => {
                self.visible(org_id, Permission::TeamView)?;
                let team = self.teams().load(org_id, id)?;
                Ok((200, json!({"team": team.to_api()})))
            }
            "PATCH" => {
                self.visible(org_id, Permission::TeamEdit)?;
                self.teams().load(org_id, id)?;
                let patch = profile_patch(&self.req.body)?;
                let now = self.req.now_ms;
                let team = self.teams().update(id, |t| {
                    apply(&mut t.profile, &patch);
                    t.updated_ms = now;
                    Ok(())
                })?;
                self.audit("team.updated", target, fields(&patch));
                Ok((200, json!({"team": team.to_api()})))
            }
            _ => {
                self.visible(org_id, Permission::TeamDelete)?;
                let team = self.teams().delete(org_id, id)?;
                self.audit(
                    "team.deleted",
                    target,
                    json!({"org_id": org_id, "slug": team.profile.slug}),
                );
                Ok(ok("Team deleted"))
            }
        }
    }

    fn team_members(&self, org_id: u64, id: u64) -> Result<Answer, ApiError> {
        methods(self.req, &["GET", "POST"])?;
        if self.req.method.eq_ignore_ascii_case("GET") {
            self.visible(org_id, Permission::TeamView)?;
            let team = self.teams().load(org_id, id)?;
            return Ok((
                200,
                json!({"team": team.to_api(), "members": self.member_list(&team)?}),
            ));
        }
        self.visible(org_id, Permission::TeamManageMembers)?;
        self.teams().load(org_id, id)?;
        let (user, role) = membership(&self.req.body, true)?;
        let target = UserNumbers::new(self.kv).resolve(&user)?;
        // A team member belongs to the team's organization: join it first
        // (refused when the user is in another one).
        if self.orgs().add_member(org_id, &target.id)? {
            self.audit(
                "org.member_added",
                format!("org:{org_id}"),
                json!({"user": target.id, "via_team": id}),
            );
        }
        if !self
            .teams()
            .add_member(id, &target.id, &role, self.req.now_ms)?
        {
            return Err(ApiError::new(
                409,
                "already_member",
                "User already a team member",
            ));
        }
        self.audit(
            "team.member_added",
            format!("team:{id}"),
            json!({"user": target.id, "role": role}),
        );
        Ok(ok("User added to team"))
    }

    fn member_list(&self, team: &Team) -> Result<Vec<Value>, ApiError> {
        let users = UserStore::new(self.kv);
        let numbers = UserNumbers::new(self.kv);
        let mut out = Vec::new();
        for m in &team.members {
            let n = numbers.number(&m.user)?;
            let username = users.get(&m.user)?.map(|u| u.username);
            out.push(json!({
                "id": n,
                "user_id": n,
                "username": username,
                "role": m.role,
                "joined_at": crate::kernel::clock::rfc3339(m.joined_ms),
            }));
        }
        Ok(out)
    }

    fn team_member(&self, org_id: u64, id: u64, user: &str) -> Result<Answer, ApiError> {
        methods(self.req, &["PATCH", "DELETE"])?;
        self.visible(org_id, Permission::TeamManageMembers)?;
        self.teams().load(org_id, id)?;
        let target = UserNumbers::new(self.kv).resolve(user)?;
        let event = format!("team:{id}");
        if self.req.method.eq_ignore_ascii_case("PATCH") {
            let (_, role) = membership(&self.req.body, false)?;
            self.teams().set_role(id, &target.id, &role)?;
            self.audit(
                "team.member_role_changed",
                event,
                json!({"user": target.id, "role": role}),
            );
            return Ok(ok(&format!("Role updated to {role}")));
        }
        if !self.teams().remove_member(id, &target.id)? {
            return Err(not_a_member());
        }
        self.audit("team.member_removed", event, json!({"user": target.id}));
        Ok(ok("User removed from team"))
    }
}
