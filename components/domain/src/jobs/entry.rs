//! One job in a list page: what a list filters and orders by, and the job's
//! list item already rendered as JSON. A list request copies items instead
//! of building them, and reads a page in place: an entry's strings and item
//! borrow the page's bytes (nothing is decoded that the answer does not need).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::jobs::record::JobStatus;
use crate::jobs::summary::Summary;
use crate::kernel::clock::seconds_between;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry<'a> {
    #[serde(borrow)]
    pub job_id: Cow<'a, str>,
    #[serde(borrow)]
    pub owner: Cow<'a, str>,
    #[serde(borrow)]
    pub provider: Cow<'a, str>,
    pub status: JobStatus,
    /// The record's revision this entry was made from: a page keeps the
    /// newest, whatever order concurrent writers reach it in.
    pub rev: u64,
    pub created_ms: u64,
    /// Set while the job runs: its item then lacks `duration_seconds`, which
    /// is added as of the read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since_ms: Option<u64>,
    /// The list item (OpenAPI `JobSummary`), as [`Summary::item`] renders it.
    #[serde(borrow, deserialize_with = "in_place")]
    pub item: Cow<'a, RawValue>,
}

fn in_place<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Cow::Borrowed)
}

impl Entry<'static> {
    pub fn of(s: &Summary) -> Self {
        let item = serde_json::value::to_raw_value(&s.item()).expect("a list item serialises");
        Entry {
            job_id: Cow::Owned(s.job_id.clone()),
            owner: Cow::Owned(s.owner.clone()),
            provider: Cow::Owned(s.provider.clone()),
            status: s.status,
            rev: s.rev,
            created_ms: s.created_ms,
            running_since_ms: s.running_since_ms(),
            item: Cow::Owned(item),
        }
    }
}

impl Entry<'_> {
    /// The entry with its own copies of what it borrowed.
    pub fn into_owned(self) -> Entry<'static> {
        Entry {
            job_id: Cow::Owned(self.job_id.into_owned()),
            owner: Cow::Owned(self.owner.into_owned()),
            provider: Cow::Owned(self.provider.into_owned()),
            status: self.status,
            rev: self.rev,
            created_ms: self.created_ms,
            running_since_ms: self.running_since_ms,
            item: Cow::Owned(self.item.into_owned()),
        }
    }

    /// Appends the list item to `out`, a running job's `duration_seconds`
    /// as of `now_ms`.
    pub fn write_item(&self, now_ms: u64, out: &mut Vec<u8>) {
        let item = self.item.get();
        match (self.running_since_ms, item.strip_suffix('}')) {
            (Some(start), Some(open)) if open.len() > 1 => {
                out.extend_from_slice(open.as_bytes());
                out.extend_from_slice(b",\"duration_seconds\":");
                serde_json::to_writer(&mut *out, &seconds_between(start, now_ms))
                    .expect("a number serialises");
                out.push(b'}');
            }
            _ => out.extend_from_slice(item.as_bytes()),
        }
    }

    /// The list item as a JSON value (for tests and the few callers that
    /// want to look inside).
    pub fn view(&self, now_ms: u64) -> serde_json::Value {
        let mut out = Vec::new();
        self.write_item(now_ms, &mut out);
        serde_json::from_slice(&out).expect("an item is JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::store::tests::job;

    #[test]
    fn a_running_job_shows_its_duration_as_of_the_read() {
        let mut j = job("j", "alice");
        j.status = JobStatus::Running;
        j.started_ms = Some(10_000);
        let stored = serde_json::to_vec(&Entry::of(&Summary::of(&j))).unwrap();
        let entry: Entry = serde_json::from_slice(&stored).unwrap();
        assert!(matches!(entry.item, Cow::Borrowed(_)), "read in place");
        let at = |now| entry.view(now)["duration_seconds"].as_f64();
        assert_eq!((at(12_500), at(70_000)), (Some(2.5), Some(60.0)));
        assert_eq!(entry.view(0)["job_id"], "j");

        // Finished, and never started: fixed when stored.
        j.status = JobStatus::Completed;
        j.completed_ms = Some(13_000);
        let done = Entry::of(&Summary::of(&j));
        assert_eq!(done.view(99_000)["duration_seconds"], 3.0);
        j.started_ms = None;
        let never = Entry::of(&Summary::of(&j));
        assert!(never.view(99_000)["duration_seconds"].is_null());
    }
}
