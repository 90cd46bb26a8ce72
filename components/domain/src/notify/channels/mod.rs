//! Notification channels (SimpleTuner's `/api/cloud/notifications/channels`):
//! a **Slack** incoming webhook or a **generic signed webhook**, owned by a
//! user or by a team, for job events (`job.submitted` ... `job.cancelled`)
//! and approval events (`approval.required` ... `approval.expired`).
//!
//! - Events travel through the same outbox as the signed subscriptions
//!   ([`super::outbox`]): same retries and backoff, same turn-taking, so a
//!   dead channel never delays another's. A 410 disables the channel.
//! - A channel URL is a credential (Slack's webhook URL is one): it is shown
//!   back only masked ([`mask`]), and never written to the event log or the
//!   delivery history. Targets pass the subscriptions' SSRF policy
//!   ([`super::targets`]): private and special-purpose hosts only when an
//!   admin sets `allow_private`.
//! - A user's channel is theirs (others get 404); a team's channel is managed
//!   by the team's leads and admins (team roles) and by admins, and receives
//!   the events of every member's jobs.
//!
//! Layout: `chan:<id>` (the [`Channel`], with its URL and secret),
//! `chans:seq` (ids: integers, as SimpleTuner's CLI parses them),
//! `chans:u:<user>` / `chans:t:<team>` (the owner's ids, CAS),
//! `chans:index` (every id, CAS), `chan-hist:<id>` (its recent deliveries).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::targets;
use crate::auth::orgs::teams::TeamStore;
use crate::auth::principal::Principal;
use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::kv::{self, KvStore, get_json, set_json};

pub mod api;
pub mod history;
pub mod send;
#[cfg(test)]
mod tests;

/// Job events a channel can subscribe to (SimpleTuner's names).
pub const JOB_EVENTS: [&str; 6] = [
    "job.submitted",
    "job.queued",
    "job.started",
    "job.completed",
    "job.failed",
    "job.cancelled",
];
/// Approval events: subscribable now; nothing emits them until approvals
/// (issue 27, item 4) exist.
pub const APPROVAL_EVENTS: [&str; 4] = [
    "approval.required",
    "approval.granted",
    "approval.rejected",
    "approval.expired",
];
/// Channels one user (or one team) may have.
pub const MAX_PER_OWNER: usize = 10;

const SEQ: &str = "chans:seq";
const INDEX: &str = "chans:index";

fn key(id: u64) -> String {
    format!("chan:{id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Slack,
    Webhook,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Webhook => "webhook",
        }
    }
}

/// Who a channel belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "id")]
pub enum Owner {
    User(String),
    Team(u64),
}

impl Owner {
    fn list_key(&self) -> String {
        match self {
            Owner::User(u) => format!("chans:u:{u}"),
            Owner::Team(t) => format!("chans:t:{t}"),
        }
    }

    /// The outbox turn this owner's deliveries take (a user's channels share
    /// their turn with their subscriptions).
    pub fn turn(&self) -> String {
        match self {
            Owner::User(u) => u.clone(),
            Owner::Team(t) => format!("team:{t}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: u64,
    pub kind: Kind,
    pub name: String,
    pub owner: Owner,
    pub created_by: String,
    /// The target: a secret, never shown back in full.
    pub url: String,
    /// Standard Webhooks signing secret (`whsec_...`), shown once.
    pub secret: String,
    /// The caller's own HMAC key for SimpleTuner's `X-SimpleTuner-Signature`.
    #[serde(default)]
    pub simpletuner_secret: Option<String>,
    pub events: Vec<String>,
    pub is_enabled: bool,
    #[serde(default)]
    pub allow_private: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// When it was last sent a test (0: never), for [`api`]'s pause.
    #[serde(default)]
    pub last_test_ms: u64,
}

/// `scheme://host[:port]/***`: enough to recognise a target, nothing of the
/// path or query (where Slack's token is).
pub fn mask(url: &str) -> String {
    match targets::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/***",
                u.scheme(),
                u.host_str().unwrap_or_default()
            )
        }
        Err(_) => "***".into(),
    }
}

impl Channel {
    /// SimpleTuner's `ChannelResponse`, the URL masked, plus the owner and
    /// events.
    pub fn to_api(&self) -> Value {
        let (team_id, owner) = match &self.owner {
            Owner::User(u) => (Value::Null, json!(u)),
            Owner::Team(t) => (json!(t), Value::Null),
        };
        json!({
            "id": self.id,
            "channel_type": self.kind.as_str(),
            "name": self.name,
            "is_enabled": self.is_enabled,
            "webhook_url": mask(&self.url),
            "events": self.events,
            "team_id": team_id,
            "owner": owner,
            "allow_private": self.allow_private,
            "created_at": rfc3339(self.created_ms),
            "updated_at": rfc3339(self.updated_ms),
        })
    }

    pub fn wants(&self, event: &str) -> bool {
        self.is_enabled && self.events.iter().any(|e| e == event)
    }
}

pub fn not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::new(404, "channel_not_found", format!("Channel {id} not found"))
}

pub struct ChannelStore<'a> {
    kv: &'a dyn KvStore,
}

impl<'a> ChannelStore<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    pub fn get(&self, id: u64) -> Result<Option<Channel>, ApiError> {
        Ok(get_json(self.kv, &key(id))?)
    }

    fn many(&self, ids: &[u64]) -> Result<Vec<Channel>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new()); // no store call for nobody's channels
        }
        let keys: Vec<String> = ids.iter().map(|id| key(*id)).collect();
        let mut out = Vec::new();
        for raw in self.kv.get_many(&keys)?.into_iter().flatten() {
            out.push(
                serde_json::from_slice(&raw)
                    .map_err(|e| ApiError::storage(format!("corrupt channel: {e}")))?,
            );
        }
        Ok(out)
    }

    pub fn of(&self, owner: &Owner) -> Result<Vec<Channel>, ApiError> {
        let ids: Vec<u64> = get_json(self.kv, &owner.list_key())?.unwrap_or_default();
        self.many(&ids)
    }

    pub fn all(&self) -> Result<Vec<Channel>, ApiError> {
        let ids: Vec<u64> = get_json(self.kv, INDEX)?.unwrap_or_default();
        self.many(&ids)
    }

    /// The channels that hear about `user`'s jobs: their own and their teams'.
    pub fn hearing(&self, user: &str) -> Result<Vec<Channel>, ApiError> {
        let mut out = self.of(&Owner::User(user.to_string()))?;
        for team in TeamStore::new(self.kv).teams_of(user)? {
            out.extend(self.of(&Owner::Team(team))?);
        }
        Ok(out)
    }

    /// Stores a new channel: its owner's slot first (the count is checked in
    /// the same CAS), then the record, then the index.
    pub fn insert(&self, mut channel: Channel) -> Result<Channel, ApiError> {
        let n = self.kv.increment(SEQ, 1)?;
        channel.id = u64::try_from(n).map_err(|_| ApiError::storage("chans:seq is negative"))?;
        let mut full = false;
        kv::edit_json(self.kv, &channel.owner.list_key(), |ids: &mut Vec<u64>| {
            full = ids.len() >= MAX_PER_OWNER;
            if !full {
                ids.push(channel.id);
            }
        })?;
        if full {
            return Err(ApiError::new(
                409,
                "too_many_channels",
                format!(
                    "there are {MAX_PER_OWNER} notification channels here, the most one user or team may have; delete one first"
                ),
            )
            .with_detail("max", MAX_PER_OWNER));
        }
        set_json(self.kv, &key(channel.id), &channel)?;
        kv::edit_json(self.kv, INDEX, |ids: &mut Vec<u64>| ids.push(channel.id))?;
        Ok(channel)
    }

    /// Changes a channel by CAS.
    pub fn update(
        &self,
        id: u64,
        mut f: impl FnMut(&mut Channel) -> Result<(), ApiError>,
    ) -> Result<Channel, ApiError> {
        let out = kv::update(self.kv, &key(id), |cur| {
            let mut c: Channel = serde_json::from_slice(cur)
                .map_err(|e| ApiError::storage(format!("corrupt channel: {e}")))?;
            f(&mut c)?;
            Ok(serde_json::to_vec(&c).expect("channels serialise"))
        })
        .map_err(|e| match e {
            kv::UpdateError::Rejected(api) => api,
            kv::UpdateError::Missing => not_found(id),
            other => other.into_kv("channel").into(),
        })?;
        serde_json::from_slice(&out).map_err(|e| ApiError::storage(format!("corrupt channel: {e}")))
    }

    pub fn delete(&self, channel: &Channel) -> Result<(), ApiError> {
        let id = channel.id;
        kv::edit_json(self.kv, &channel.owner.list_key(), |ids: &mut Vec<u64>| {
            ids.retain(|i| *i != id)
        })?;
        kv::edit_json(self.kv, INDEX, |ids: &mut Vec<u64>| {
            ids.retain(|i| *i != id)
        })?;
        self.kv.delete(&key(id))?;
        self.kv.delete(&history::key(id))?;
        Ok(())
    }
}

/// Whether `p` manages `owner`'s channels: their own; a team's when they
/// lead or administer it; every one when they are an admin.
pub fn manages(kv: &dyn KvStore, p: &Principal, owner: &Owner) -> Result<bool, ApiError> {
    if p.is_admin() {
        return Ok(true);
    }
    Ok(match owner {
        Owner::User(u) => *u == p.id,
        Owner::Team(t) => TeamStore::new(kv)
            .get(*t)?
            .and_then(|team| team.role_of(&p.id).map(|r| r == "lead" || r == "admin"))
            .unwrap_or(false),
    })
}

/// The channels `p` manages (admins: all), oldest first.
pub fn visible(kv: &dyn KvStore, p: &Principal) -> Result<Vec<Channel>, ApiError> {
    let store = ChannelStore::new(kv);
    let mut out = if p.is_admin() {
        store.all()?
    } else {
        let mut own = store.of(&Owner::User(p.id.clone()))?;
        let teams = TeamStore::new(kv);
        for team in teams.many(&teams.teams_of(&p.id)?)? {
            if matches!(team.role_of(&p.id), Some("lead" | "admin")) {
                own.extend(store.of(&Owner::Team(team.id))?);
            }
        }
        own
    };
    out.sort_by_key(|c| c.id);
    Ok(out)
}

/// Channel `id` if `p` manages it; 404 otherwise (as one that does not
/// exist: ids are guessable integers).
pub fn load_managed(kv: &dyn KvStore, p: &Principal, id: u64) -> Result<Channel, ApiError> {
    match ChannelStore::new(kv).get(id)? {
        Some(c) if manages(kv, p, &c.owner)? => Ok(c),
        _ => Err(not_found(id)),
    }
}
