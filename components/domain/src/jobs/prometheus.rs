//! `GET /api/metrics/prometheus`: the installation's numbers in Prometheus's
//! text exposition format (version 0.0.4), for a scraper. Jobs by status come
//! from the active index and the finished counters; the rest are counters
//! bumped where things happen (`kernel::counters`) and the current spend
//! windows. About 20 key reads a scrape, whatever the number of jobs.

use std::fmt::Write as _;

use crate::billing::limits::global_spend_usd;
use crate::kernel::counters::{Event, read};
use crate::kernel::error::ApiError;
use crate::kernel::kv::KvStore;
use crate::providers::replicate::PROVIDER;
use crate::providers::settings::Period;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }
}

/// The exposition; `active` is the active index's count per status.
pub fn exposition(
    kv: &dyn KvStore,
    active: &[(&str, u64)],
    now_ms: u64,
) -> Result<String, ApiError> {
    let mut t = Text(String::new());
    t.family(
        "cloudtuner_jobs_active",
        "gauge",
        "Jobs not yet ended, by status.",
    );
    for (status, n) in active {
        t.sample(
            "cloudtuner_jobs_active",
            &[("provider", PROVIDER), ("status", status)],
            n,
        );
    }
    t.family(
        "cloudtuner_jobs_finished_total",
        "counter",
        "Jobs that ended, by final status.",
    );
    for status in ["completed", "failed", "cancelled"] {
        let n = read(kv, Event::JobFinished(status));
        t.sample(
            "cloudtuner_jobs_finished_total",
            &[("provider", PROVIDER), ("status", status)],
            n,
        );
    }
    t.family(
        "cloudtuner_submits_total",
        "counter",
        "Jobs submitted (idempotent replays not counted).",
    );
    t.sample("cloudtuner_submits_total", &[], read(kv, Event::Submit));
    t.family(
        "cloudtuner_spend_usd",
        "gauge",
        "Spend in the current calendar window (UTC): settled costs plus reservations of running jobs.",
    );
    for (window, period) in [
        ("day", Period::Daily),
        ("week", Period::Weekly),
        ("month", Period::Monthly),
    ] {
        let usd = global_spend_usd(kv, period, now_ms)?;
        t.sample(
            "cloudtuner_spend_usd",
            &[("window", window)],
            format!("{usd:.6}"),
        );
    }
    for (name, event, help) in [
        (
            "cloudtuner_sync_passes_total",
            Event::SyncPass,
            "Sync passes run (cron or POST /api/cloud/jobs/sync).",
        ),
        (
            "cloudtuner_sync_errors_total",
            Event::SyncError,
            "Errors those passes reported.",
        ),
        (
            "cloudtuner_sync_provider_requests_total",
            Event::SyncProviderRequest,
            "Requests sync passes made to Replicate.",
        ),
    ] {
        t.family(name, "counter", help);
        t.sample(name, &[], read(kv, event));
    }
    t.family(
        "cloudtuner_webhooks_total",
        "counter",
        "Replicate webhooks received, by signature verification result.",
    );
    for result in ["verified", "rejected"] {
        t.sample(
            "cloudtuner_webhooks_total",
            &[("result", result)],
            read(kv, Event::Webhook(result)),
        );
    }
    t.family(
        "cloudtuner_notifications_total",
        "counter",
        "User notification deliveries, by result (failed ones are retried).",
    );
    for result in ["sent", "failed"] {
        t.sample(
            "cloudtuner_notifications_total",
            &[("result", result)],
            read(kv, Event::Notification(result)),
        );
    }
    Ok(t.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::counters::count;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn counters_and_gauges_are_exposed_with_their_types() {
        let kv = MemoryKv::default();
        count(&kv, Event::JobFinished("failed"), 2);
        count(&kv, Event::Webhook("rejected"), 1);
        let text = exposition(&kv, &[("running", 3)], 0).unwrap();
        assert!(
            text.contains("# TYPE cloudtuner_jobs_active gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("cloudtuner_jobs_active{provider=\"replicate\",status=\"running\"} 3\n")
        );
        assert!(text.contains(
            "cloudtuner_jobs_finished_total{provider=\"replicate\",status=\"failed\"} 2\n"
        ));
        assert!(text.contains(
            "cloudtuner_jobs_finished_total{provider=\"replicate\",status=\"completed\"} 0\n"
        ));
        assert!(text.contains("cloudtuner_webhooks_total{result=\"rejected\"} 1\n"));
        assert!(text.contains("cloudtuner_spend_usd{window=\"month\"} 0.000000\n"));
        // Every sample belongs to a family declared before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.last().map(String::as_str), Some(name), "{line}");
            }
        }
    }
}
