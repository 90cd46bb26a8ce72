//! Installation-wide event counters for `/api/metrics/prometheus`: one
//! key-value counter per series (`prom:<name>` or `prom:<name>:<label>`),
//! bumped where the event happens with one atomic increment, and never a
//! reason for the event itself to fail.

use super::kv::KvStore;

/// A counted event: the Prometheus series it feeds, and its one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Submit,
    JobFinished(&'static str),
    SyncPass,
    SyncError,
    SyncProviderRequest,
    Webhook(&'static str),
    Notification(&'static str),
}

impl Event {
    pub fn key(self) -> String {
        match self {
            Event::Submit => "prom:submits".into(),
            Event::JobFinished(status) => format!("prom:jobs_finished:{status}"),
            Event::SyncPass => "prom:sync_passes".into(),
            Event::SyncError => "prom:sync_errors".into(),
            Event::SyncProviderRequest => "prom:sync_provider_requests".into(),
            Event::Webhook(result) => format!("prom:webhooks:{result}"),
            Event::Notification(result) => format!("prom:notifications:{result}"),
        }
    }
}

/// Adds `n` to the event's counter. A counter that cannot be written is
/// lost, not the request: metrics must not break what they measure.
pub fn count(kv: &dyn KvStore, event: Event, n: u64) {
    if n > 0 {
        let _ = kv.increment(&event.key(), n as i64);
    }
}

/// The counter's value (0 when never counted), without creating it.
pub fn read(kv: &dyn KvStore, event: Event) -> u64 {
    super::kv::read_counter(kv, &event.key()).map_or(0, |v| v.max(0) as u64)
}
