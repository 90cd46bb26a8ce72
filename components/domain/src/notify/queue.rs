//! The outbox's entries and how they are queued, shared by subscriptions
//! (outbox.rs) and channels (channels/send.rs), so neither imports the other.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::edit_list;
use crate::kernel::error::ApiError;
use crate::kernel::kv::KvStore;

/// The one list of events waiting to be delivered.
pub(crate) const OUTBOX: &str = "notif:outbox";
/// Events one owner may have waiting; beyond it their oldest are dropped.
const MAX_PENDING_PER_OWNER: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub webhook_id: String,
    pub subscription: String,
    /// Whose subscription it is (turns are taken by owner). Empty for
    /// events queued by the first version: they share one turn.
    #[serde(default)]
    pub owner: String,
    pub event: String,
    pub payload: Value,
    pub attempts: u32,
    pub next_ms: u64,
}

/// A job's status change, as notifications see it (built by the job store).
#[derive(Clone)]
pub struct JobEvent<'a> {
    pub job_id: &'a str,
    pub owner: &'a str,
    /// The new status: `queued`, `running`, `completed`, `failed`, ...
    pub status: &'a str,
    /// The job as the API shows it (the event's `data.job`): called only
    /// when someone subscribes, so a status change with no subscribers costs
    /// no serialisation.
    pub view: &'a dyn Fn() -> Value,
}

/// Adds `new` to the outbox (an entry already there, by `webhook_id`, is not
/// added twice); each owner's backlog is bounded: their oldest events go.
pub(crate) fn push(kv: &dyn KvStore, new: Vec<Pending>) -> Result<(), ApiError> {
    edit_list(kv, OUTBOX, |outbox: &mut Vec<Pending>| {
        let mut owners: Vec<String> = Vec::new();
        for p in &new {
            if !outbox.iter().any(|q| q.webhook_id == p.webhook_id) {
                outbox.push(p.clone());
            }
            if !owners.contains(&p.owner) {
                owners.push(p.owner.clone());
            }
        }
        for owner in &owners {
            let mine = outbox.iter().filter(|p| p.owner == *owner).count();
            let mut excess = mine.saturating_sub(MAX_PENDING_PER_OWNER);
            outbox.retain(|p| {
                let drop = excess > 0 && p.owner == *owner;
                excess -= usize::from(drop);
                !drop
            });
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Ok,
    Failed,
    Gone,
}
