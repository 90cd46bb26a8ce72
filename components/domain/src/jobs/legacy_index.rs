//! Moving an installation from the first version's job index (one value per
//! scope, `jobidx:all` / `jobidx:u:<owner>`, `[[id, status, provider], ...]`)
//! to the paged index, once, so an upgrade lists every job it listed before.
//!
//! The first list request that lists nothing (or the next sync pass) and
//! finds the old index claims the move with a create-if-absent, so one caller
//! does it;
//! every job is listed as if created now, oldest first (the pages keep their
//! newest-first order by creation time), then the old values are deleted.

use crate::jobs::entry::Entry;
use crate::jobs::pages::{self, Scope};
use crate::jobs::record::{Job, JobStatus, Slots};
use crate::jobs::store::JobStore;
use crate::jobs::summary::Summary;
use crate::kernel::error::ApiError;
use crate::kernel::kv::get_json;

const LEGACY_ALL: &str = "jobidx:all";
const CLAIM: &str = "jobpg:migrated";

#[derive(serde::Deserialize)]
struct OldEntry(
    String,
    #[allow(dead_code)] JobStatus,
    #[allow(dead_code)] String,
);

/// Moves the old index into pages if there is one to move; how many jobs it
/// listed (0 when there was nothing to do or another caller is doing it).
pub fn migrate(store: &JobStore) -> Result<usize, ApiError> {
    let kv = store.kv();
    let Some(entries) = get_json::<Vec<OldEntry>>(kv, LEGACY_ALL)? else {
        return Ok(0);
    };
    if !kv.create(CLAIM, b"1")? {
        return Ok(0);
    }
    let mut owners = std::collections::BTreeSet::new();
    let mut moved = 0;
    for OldEntry(id, ..) in entries.into_iter().rev() {
        if let Some(job) = store.get(&id)?
            && job.list_pages.is_none()
        {
            owners.insert(job.owner.clone());
            list(store, &job)?;
            moved += 1;
        }
    }
    for owner in owners {
        kv.delete(&format!("jobidx:u:{owner}"))?;
    }
    kv.delete(LEGACY_ALL)?;
    kv.delete(&format!("claim:{LEGACY_ALL}"))?;
    Ok(moved)
}

/// Lists one job of the old index as [`JobStore::create`] lists a new one.
fn list(store: &JobStore, job: &Job) -> Result<(), ApiError> {
    let kv = store.kv();
    let summary = Summary::of(job);
    let slots = Slots {
        all: pages::assign(kv, Scope::All, &summary)?,
        owner: pages::assign(kv, Scope::Owner(&job.owner), &summary)?,
    };
    store
        .update::<()>(&job.job_id, |j| {
            j.list_pages = Some(slots);
            Ok(())
        })
        .map_err(|e| crate::jobs::lifecycle::update_failed(&job.job_id, e))?;
    let entry = Entry::of(&summary);
    for scope in [Scope::All, Scope::Owner(&job.owner)] {
        pages::put(kv, scope, slots.of(scope), &entry)?;
    }
    if !job.status.is_terminal() {
        pages::set_active(kv, &job.job_id, &job.owner, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::store::ListQuery;
    use crate::jobs::store::tests::job;
    use crate::kernel::kv::{KvStore, MemoryKv, set_json};
    use serde_json::json;

    #[test]
    fn an_upgrade_lists_every_job_the_old_index_listed() {
        let kv = MemoryKv::default();
        // Three jobs as the first version stored them: records without list
        // pages, and the one-value index, newest first.
        for (i, owner) in ["alice", "bob", "alice"].iter().enumerate() {
            let mut j = job(&format!("old{i}"), owner);
            j.created_ms = i as u64;
            set_json(&kv, &format!("job:old{i}"), &j).unwrap();
        }
        let index = json!([
            ["old2", "pending", "replicate"],
            ["old1", "pending", "replicate"],
            ["old0", "pending", "replicate"]
        ]);
        set_json(&kv, LEGACY_ALL, &index).unwrap();
        set_json(&kv, "jobidx:u:alice", &json!([])).unwrap();
        let store = JobStore::new(&kv);
        let all = ListQuery {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(store.list(&all).unwrap().1, 0, "not listed before the move");
        assert_eq!(migrate(&store).unwrap(), 3);
        let (list, total) = store.list(&all).unwrap();
        assert_eq!(total, 3);
        let ids: Vec<&str> = list.iter().map(|s| &*s.job_id).collect();
        assert_eq!(ids, ["old2", "old1", "old0"]);
        let alice = ListQuery {
            owner: Some("alice".into()),
            ..all.clone()
        };
        assert_eq!(store.list(&alice).unwrap().1, 2);
        assert!(!kv.exists(LEGACY_ALL).unwrap() && !kv.exists("jobidx:u:alice").unwrap());
        // Once only, and a moved job's changes reach its page.
        assert_eq!(migrate(&store).unwrap(), 0);
        store
            .update::<()>("old1", |j| {
                j.transition(JobStatus::Running, 9).map_err(drop)?;
                Ok(())
            })
            .unwrap();
        let (list, _) = store.list(&all).unwrap();
        assert_eq!(list[1].status, JobStatus::Running);
    }
}
