//! `/api/cloud/notifications/{channels,channels/{id},channels/{id}/test,
//! history,events,status}`: SimpleTuner's routes and shapes, so its CLI
//! (`simpletuner notifications channels / channel-create / channel-test /
//! history / events / status`) works unmodified.
//!
//! Permission: `job.view.own` (today's notification permission); which
//! channels a caller reaches is [`super::manages`]. Every change and test is
//! in the event log, with the masked target only.
//!
//! Deliberate differences from SimpleTuner 4.10.1 (its defects):
//! - channels belong to a user or a team; SimpleTuner's were global, every
//!   user saw and tested every channel;
//! - the URL is masked in every answer (SimpleTuner returned Slack's secret
//!   webhook URL to anyone who listed channels);
//! - targets pass the SSRF policy of [`crate::notify::targets`];
//! - delete answers 200 with JSON (its 204 makes its own CLI fail parsing);
//! - events reach channels without a per-event "preference" row, and job
//!   events are emitted at all (its routes emitted `cloud.job.*` names its
//!   notifier never mapped, so no job event was ever delivered).

use std::borrow::Borrow;

use serde_json::{Map, Value, json};

use super::history;
use super::send::test_send;
use super::{
    APPROVAL_EVENTS, Channel, ChannelStore, JOB_EVENTS, Kind, Owner, load_managed, manages, mask,
    visible,
};
use crate::auth::orgs::teams::{TeamStore, team_not_found};
use crate::auth::principal::{Permission, Principal};
use crate::kernel::error::ApiError;
use crate::kernel::event_log::{self, NewEvent};
use crate::kernel::http::HttpClient;
use crate::kernel::kv::KvStore;

/// One request under `/api/cloud/notifications`.
pub struct ChannelRequest<'a> {
    pub method: &'a str,
    /// The path after `/api/cloud/notifications` (`/channels/3/test`).
    pub rest: &'a str,
    pub query: &'a [(String, String)],
    /// The JSON body (`Value::Null` when there is none).
    pub body: Value,
    /// The server's origin, for links to jobs in test messages.
    pub public_url: Option<&'a str>,
    pub now_ms: u64,
}

/// (status, body) of a successful answer.
pub type Answer = (u16, Value);

/// Answers one request; `http` is asked for a client only by a test send
/// (so only a test send can meet the outbound budget's 503).
pub async fn handle<C: HttpClient, H: Borrow<C>>(
    kv: &dyn KvStore,
    http: impl FnOnce() -> Result<H, ApiError>,
    p: &Principal,
    req: &ChannelRequest<'_>,
) -> Result<Answer, ApiError> {
    p.require(Permission::JobViewOwn)?;
    let parts: Vec<&str> = req.rest.split('/').filter(|s| !s.is_empty()).collect();
    let ctx = Ctx { kv, p, req };
    match parts.as_slice() {
        ["channels"] => match methods(req, &["GET", "POST"])? {
            "GET" => ctx.list(),
            _ => ctx.create(),
        },
        ["channels", id] => match methods(req, &["GET", "PATCH", "DELETE"])? {
            "GET" => Ok((200, load_managed(kv, p, int(id)?)?.to_api())),
            "PATCH" => ctx.update(int(id)?),
            _ => ctx.delete(int(id)?),
        },
        ["channels", id, "test"] => {
            methods(req, &["POST"])?;
            let channel = load_managed(kv, p, int(id)?)?;
            claim_test(kv, channel.id, req.now_ms)?;
            let http = http()?;
            let out = test_send(kv, http.borrow(), &channel, req.public_url, req.now_ms).await;
            ctx.audit(
                "notification.channel.tested",
                &channel,
                json!({"success": out["success"]}),
            );
            Ok((200, out))
        }
        ["history"] => {
            methods(req, &["GET"])?;
            ctx.history()
        }
        ["events"] => {
            methods(req, &["GET"])?;
            Ok((200, events()))
        }
        ["status"] => {
            methods(req, &["GET"])?;
            ctx.status()
        }
        _ => Err(ApiError::not_found(format!(
            "no route /api/cloud/notifications{}",
            req.rest
        ))),
    }
}

/// Time between two test sends to one channel.
pub const TEST_EVERY_MS: u64 = 10_000;

/// Takes the channel's test turn, or 429: a test goes out at once, so without
/// a pause a caller could make this server POST to a host of their choosing
/// as fast as they can ask.
fn claim_test(kv: &dyn KvStore, id: u64, now_ms: u64) -> Result<(), ApiError> {
    ChannelStore::new(kv)
        .update(id, |c| {
            let next = c.last_test_ms.saturating_add(TEST_EVERY_MS);
            if c.last_test_ms != 0 && now_ms < next {
                let secs = (next - now_ms).div_ceil(1000);
                return Err(ApiError::new(
                    429,
                    "test_too_soon",
                    format!("this channel was just tested; test it again in {secs} s"),
                )
                .with_detail("retry_after_secs", secs));
            }
            c.last_test_ms = now_ms;
            Ok(())
        })
        .map(drop)
}

fn methods<'a>(req: &ChannelRequest, allowed: &[&'a str]) -> Result<&'a str, ApiError> {
    allowed
        .iter()
        .find(|m| m.eq_ignore_ascii_case(req.method))
        .copied()
        .ok_or_else(|| ApiError::method_not_allowed(req.method, allowed))
}

fn int(segment: &str) -> Result<u64, ApiError> {
    segment.parse().map_err(|_| {
        ApiError::new(
            400,
            "invalid_id",
            format!("channel ids are integers, not {segment:?}"),
        )
    })
}

/// Every event a channel may subscribe to, SimpleTuner's `/events` shape.
fn events() -> Value {
    let list: Vec<Value> = JOB_EVENTS
        .iter()
        .map(|e| (e, "Job Lifecycle", true))
        .chain(APPROVAL_EVENTS.iter().map(|e| (e, "Approval", false)))
        .map(|(e, category, emitted)| {
            json!({"id": e, "name": e.replace('.', " "), "category": category,
                   "emitted": emitted})
        })
        .collect();
    json!({"event_types": list})
}

struct Ctx<'a> {
    kv: &'a dyn KvStore,
    p: &'a Principal,
    req: &'a ChannelRequest<'a>,
}

impl Ctx<'_> {
    fn audit(&self, kind: &str, c: &Channel, mut detail: Value) {
        detail["channel_type"] = json!(c.kind.as_str());
        detail["name"] = json!(c.name);
        detail["target"] = json!(mask(&c.url));
        let owner = match &c.owner {
            Owner::User(u) => Some(u.as_str()),
            Owner::Team(t) => {
                detail["team_id"] = json!(t);
                None
            }
        };
        event_log::record(
            self.kv,
            NewEvent {
                kind,
                actor: &self.p.id,
                target: Some(&format!("channel:{}", c.id)),
                owner,
                detail,
            },
            self.req.now_ms,
        );
    }

    fn list(&self) -> Result<Answer, ApiError> {
        let enabled_only = param(self.req, "enabled_only").is_some_and(|v| v == "true" || v == "1");
        let list: Vec<Value> = visible(self.kv, self.p)?
            .iter()
            .filter(|c| !enabled_only || c.is_enabled)
            .map(Channel::to_api)
            .collect();
        Ok((200, json!({"total": list.len(), "channels": list})))
    }

    fn create(&self) -> Result<Answer, ApiError> {
        let body = self
            .req
            .body
            .as_object()
            .ok_or_else(|| ApiError::bad_request("send a JSON object"))?;
        let kind = match body.get("channel_type").and_then(Value::as_str) {
            Some("slack") => Kind::Slack,
            Some("webhook") => Kind::Webhook,
            Some("email") => {
                return Err(ApiError::new(
                    400,
                    "unsupported_channel_type",
                    "email channels are not offered here; use slack or webhook",
                ));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "`channel_type` must be slack or webhook",
                ));
            }
        };
        let owner = self.owner(body)?;
        let allow_private = flag(body, "allow_private")?.unwrap_or(false);
        let url = body
            .get("webhook_url")
            .and_then(Value::as_str)
            .unwrap_or("");
        let url = crate::notify::checked_target(url, allow_private, self.p)?;
        let secret = crate::notify::new_secret();
        let channel = Channel {
            id: 0,
            kind,
            name: name(body.get("name"))?,
            owner,
            created_by: self.p.id.clone(),
            url,
            secret: secret.clone(),
            simpletuner_secret: webhook_secret(body)?,
            events: event_list(body.get("events"))?
                .unwrap_or_else(|| JOB_EVENTS.iter().map(|e| e.to_string()).collect()),
            is_enabled: flag(body, "is_enabled")?.unwrap_or(true),
            allow_private,
            created_ms: self.req.now_ms,
            updated_ms: self.req.now_ms,
            last_test_ms: 0,
        };
        let channel = ChannelStore::new(self.kv).insert(channel)?;
        self.audit("notification.channel.created", &channel, json!({}));
        let mut out = channel.to_api();
        if kind == Kind::Webhook {
            // Shown once, as a subscription's secret is.
            out["signing_secret"] = json!(secret);
            out["message"] = json!("Store the signing_secret now: it is not shown again.");
        }
        Ok((201, out))
    }

    /// The caller, or the team in `team_id` when the caller manages it.
    fn owner(&self, body: &Map<String, Value>) -> Result<Owner, ApiError> {
        let Some(team) = body.get("team_id").filter(|v| !v.is_null()) else {
            return Ok(Owner::User(self.p.id.clone()));
        };
        let team = team
            .as_u64()
            .ok_or_else(|| ApiError::bad_request("`team_id` must be an integer"))?;
        let Some(t) = TeamStore::new(self.kv).get(team)? else {
            return Err(team_not_found(team));
        };
        if !self.p.is_admin() && t.role_of(&self.p.id).is_none() {
            return Err(team_not_found(team));
        }
        let owner = Owner::Team(team);
        if !manages(self.kv, self.p, &owner)? {
            return Err(ApiError::new(
                403,
                "permission_denied",
                "only the team's leads and admins manage its notification channels",
            ));
        }
        Ok(owner)
    }

    fn update(&self, id: u64) -> Result<Answer, ApiError> {
        load_managed(self.kv, self.p, id)?;
        let body = self
            .req
            .body
            .as_object()
            .ok_or_else(|| ApiError::bad_request("send a JSON object"))?;
        let name = body
            .get("name")
            .filter(|v| !v.is_null())
            .map(|v| name(Some(v)))
            .transpose()?;
        let enabled = flag(body, "is_enabled")?;
        let events = event_list(body.get("events"))?;
        let secret = webhook_secret(body)?;
        let allow_private = flag(body, "allow_private")?;
        let url = body.get("webhook_url").and_then(Value::as_str);
        let mut changed: Vec<&str> = Vec::new();
        let channel = ChannelStore::new(self.kv).update(id, |c| {
            changed.clear();
            let private = allow_private.unwrap_or(c.allow_private);
            if let Some(url) = url {
                c.url = crate::notify::checked_target(url, private, self.p)?;
                changed.push("webhook_url");
            } else if private != c.allow_private {
                // Taking the allowance away re-checks the stored target.
                crate::notify::checked_target(&c.url, private, self.p)?;
            }
            if private != c.allow_private {
                c.allow_private = private;
                changed.push("allow_private");
            }
            set(&mut c.name, name.clone(), "name", &mut changed);
            set(&mut c.is_enabled, enabled, "is_enabled", &mut changed);
            set(&mut c.events, events.clone(), "events", &mut changed);
            if secret.is_some() {
                c.simpletuner_secret = secret.clone();
                changed.push("webhook_secret");
            }
            c.updated_ms = self.req.now_ms;
            Ok(())
        })?;
        self.audit(
            "notification.channel.updated",
            &channel,
            json!({"changed": changed}),
        );
        Ok((200, channel.to_api()))
    }

    fn delete(&self, id: u64) -> Result<Answer, ApiError> {
        let channel = load_managed(self.kv, self.p, id)?;
        ChannelStore::new(self.kv).delete(&channel)?;
        self.audit("notification.channel.deleted", &channel, json!({}));
        Ok((200, json!({"success": true, "id": id})))
    }

    fn history(&self) -> Result<Answer, ApiError> {
        let limit = match param(self.req, "limit") {
            None => 50,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=500).contains(n))
                .ok_or_else(|| ApiError::bad_request("`limit` must be 1 to 500"))?,
        };
        let mut ids: Vec<u64> = visible(self.kv, self.p)?.iter().map(|c| c.id).collect();
        if let Some(only) = param(self.req, "channel_id") {
            let only = int(only)?;
            ids.retain(|i| *i == only);
        }
        let entries: Vec<Value> = history::of(self.kv, &ids, param(self.req, "job_id"), limit)?
            .iter()
            .map(history::Entry::to_api)
            .collect();
        Ok((200, json!({"total": entries.len(), "entries": entries})))
    }

    fn status(&self) -> Result<Answer, ApiError> {
        let channels = visible(self.kv, self.p)?;
        let count = |k: Kind| channels.iter().filter(|c| c.kind == k).count();
        let ids: Vec<u64> = channels.iter().map(|c| c.id).collect();
        let recent = history::of(self.kv, &ids, None, usize::MAX)?;
        let delivered = recent.iter().filter(|e| e.delivered).count();
        Ok((
            200,
            json!({
                "initialized": true,
                "channels": {
                    "total": channels.len(),
                    "enabled": channels.iter().filter(|c| c.is_enabled).count(),
                    "by_type": {"slack": count(Kind::Slack), "webhook": count(Kind::Webhook)},
                },
                "response_handlers": {"total": 0, "running": 0},
                "stats": {"recent_delivered": delivered, "recent_failed": recent.len() - delivered},
            }),
        ))
    }
}

fn param<'a>(req: &'a ChannelRequest, name: &str) -> Option<&'a str> {
    crate::kernel::http::param(req.query, name)
}

fn set<T: PartialEq>(field: &mut T, new: Option<T>, name: &'static str, changed: &mut Vec<&str>) {
    if let Some(v) = new
        && *field != v
    {
        *field = v;
        changed.push(name);
    }
}

fn flag(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{name}` must be true or false"
        ))),
    }
}

fn name(v: Option<&Value>) -> Result<String, ApiError> {
    let n = v.and_then(Value::as_str).unwrap_or("").trim();
    if n.is_empty() || n.chars().count() > 100 {
        return Err(ApiError::bad_request("`name` must be 1 to 100 characters"));
    }
    Ok(n.to_string())
}

fn webhook_secret(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("webhook_secret") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            "`webhook_secret` must be 1 to 256 characters",
        )),
    }
}

/// A list of known event names (`None` when absent).
fn event_list(v: Option<&Value>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let known = |e: &str| JOB_EVENTS.contains(&e) || APPROVAL_EVENTS.contains(&e);
    let list = v
        .as_array()
        .ok_or_else(|| ApiError::bad_request("`events` must be an array"))?;
    let mut out: Vec<String> = Vec::new();
    for e in list {
        let e = e.as_str().filter(|e| known(e)).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown event {e}; use {}, {}",
                JOB_EVENTS.join(", "),
                APPROVAL_EVENTS.join(", ")
            ))
        })?;
        if !out.iter().any(|o| o == e) {
            out.push(e.to_string());
        }
    }
    Ok(Some(out))
}
