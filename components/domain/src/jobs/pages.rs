//! The job list's index: job summaries in fixed-size pages, newest first, so
//! a list request reads one or two small values whatever the number of jobs,
//! and a change to one job rewrites one page, not the whole index.
//!
//! Per scope (every job, `all`; one owner's, `u:<owner>`):
//! - `jobpg:<scope>:head` — [`Head`]: the page new jobs go to, how many slots
//!   it has handed out, the jobs per provider and status (so `total` is exact
//!   without reading a page), and the oldest page that may hold entries.
//! - `jobpg:<scope>:<n>` — a page: at most [`PAGE_SIZE`] [`Entry`]s (a job's
//!   list item, rendered, and what filters need), newest first. A job's page
//!   numbers are kept in its record, so an update goes straight to its page.
//! - `jobs:active` — the ids and owners of jobs not yet finished (what the
//!   sync refreshes), bounded by how many jobs run at once.
//!
//! Every value is changed by compare-and-swap ([`edit_json`]), so concurrent
//! writers never lose each other's change; each is bounded in size (a page by
//! `PAGE_SIZE` entries of bounded size, the head by the provider × status
//! pairs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::jobs::entry::Entry;
use crate::jobs::record::{JobStatus, Slots};
use crate::jobs::summary::Summary;
use crate::kernel::kv::{KvError, KvStore, edit_bytes, edit_json, get_json};

/// Jobs per page: a full page is ~16 × 0.7 KB. A list of 50 reads the 4-5
/// pages that hold it in one batch, so it reads little more than it shows,
/// and a change to a job rewrites ~11 KB.
pub const PAGE_SIZE: u64 = 16;

/// Pages one read asks for at most.
const MAX_BATCH: u64 = 32;

/// Which list: every job, or one owner's.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    Owner(&'a str),
}

impl Slots {
    /// The job's page in `scope`.
    pub fn of(self, scope: Scope) -> u64 {
        match scope {
            Scope::All => self.all,
            Scope::Owner(_) => self.owner,
        }
    }
}

impl Scope<'_> {
    fn prefix(self) -> String {
        match self {
            Scope::All => "jobpg:all".into(),
            Scope::Owner(owner) => format!("jobpg:u:{owner}"),
        }
    }

    fn head_key(self) -> String {
        format!("{}:head", self.prefix())
    }

    fn page_key(self, page: u64) -> String {
        format!("{}:{page}", self.prefix())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub page: u64,
    pub assigned: u64,
    /// `"<provider>/<status>"` → jobs.
    pub counts: BTreeMap<String, u64>,
    pub oldest: u64,
}

fn count_key(provider: &str, status: JobStatus) -> String {
    format!("{provider}/{}", status.as_str())
}

impl Head {
    /// Jobs matching the filters (`None` = any).
    pub fn count(&self, status: Option<JobStatus>, provider: Option<&str>) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| {
                let (p, s) = k.split_once('/').unwrap_or((k, ""));
                provider.is_none_or(|want| want == p)
                    && status.is_none_or(|want| want.as_str() == s)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Takes the next slot (a new page when this one is full): its page number.
    fn next_slot(&mut self) -> u64 {
        if self.assigned >= PAGE_SIZE {
            self.page += 1;
            self.assigned = 0;
        }
        self.assigned += 1;
        self.page
    }

    fn add(&mut self, provider: &str, status: JobStatus, delta: i64) {
        let key = count_key(provider, status);
        let n = self.counts.entry(key.clone()).or_default();
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            self.counts.remove(&key);
        }
    }
}

pub fn head(kv: &dyn KvStore, scope: Scope) -> Result<Head, KvError> {
    Ok(get_json(kv, &scope.head_key())?.unwrap_or_default())
}

/// Hands out a slot for a new job and counts it: its page number.
pub fn assign(kv: &dyn KvStore, scope: Scope, s: &Summary) -> Result<u64, KvError> {
    let mut page = 0;
    edit_json::<Head>(kv, &scope.head_key(), |h| {
        page = h.next_slot();
        h.add(&s.provider, s.status, 1);
    })?;
    Ok(page)
}

/// Hands out a slot for a new job without counting it (see [`count`]): its
/// page number. A slot whose job never gets written is only a gap in a page.
pub fn slot(kv: &dyn KvStore, scope: Scope) -> Result<u64, KvError> {
    let mut page = 0;
    edit_json::<Head>(kv, &scope.head_key(), |h| page = h.next_slot())?;
    Ok(page)
}

/// Counts a new job whose record now exists.
pub fn count(kv: &dyn KvStore, scope: Scope, s: &Summary) -> Result<(), KvError> {
    edit_json::<Head>(kv, &scope.head_key(), |h| h.add(&s.provider, s.status, 1))
}

/// Moves one job's count from one status to another.
pub fn recount(
    kv: &dyn KvStore,
    scope: Scope,
    provider: &str,
    from: JobStatus,
    to: JobStatus,
) -> Result<(), KvError> {
    edit_json::<Head>(kv, &scope.head_key(), |h| {
        h.add(provider, from, -1);
        h.add(provider, to, 1);
    })
}

/// A page's entries, read in place from its bytes.
fn entries<'a>(key: &str, raw: &'a [u8]) -> Result<Vec<Entry<'a>>, KvError> {
    serde_json::from_slice(raw).map_err(|e| KvError::new(format!("{key} holds invalid JSON: {e}")))
}

/// Changes one page by compare-and-swap.
fn edit_page(kv: &dyn KvStore, key: &str, f: impl Fn(&mut Vec<Entry<'_>>)) -> Result<(), KvError> {
    edit_bytes(kv, key, b"[]", |cur| {
        // A page that is not JSON (never written so by us) starts over.
        let mut page = entries(key, cur).unwrap_or_default();
        f(&mut page);
        serde_json::to_vec(&page).expect("a page serialises")
    })
}

/// Writes `e` into its page, unless the page already has a newer revision
/// of it (writers may arrive in any order).
pub fn put(kv: &dyn KvStore, scope: Scope, page: u64, e: &Entry<'static>) -> Result<(), KvError> {
    edit_page(kv, &scope.page_key(page), |entries| {
        match entries.iter_mut().find(|x| x.job_id == e.job_id) {
            Some(x) if x.rev <= e.rev => *x = e.clone(),
            Some(_) => {}
            None => {
                entries.push(e.clone());
                entries.sort_by(|a, b| (b.created_ms, &b.job_id).cmp(&(a.created_ms, &a.job_id)));
            }
        }
    })
}

/// Takes a deleted job out of its page and the counts.
pub fn remove(kv: &dyn KvStore, scope: Scope, page: u64, s: &Summary) -> Result<(), KvError> {
    edit_page(kv, &scope.page_key(page), |entries| {
        entries.retain(|e| e.job_id != s.job_id)
    })?;
    edit_json::<Head>(kv, &scope.head_key(), |h| h.add(&s.provider, s.status, -1))
}

/// How many pages one read asks for. The first read takes the pages that
/// should hold `wanted` matches if matches are spread evenly (the head's
/// counts say how dense they are; unfiltered, every entry matches, so it is
/// just the pages that hold `wanted` entries); each later read takes twice
/// as many, up to [`MAX_BATCH`].
fn batch(round: usize, head: &Head, matching: u64, wanted: u64) -> u64 {
    let all = head.count(None, None).max(1);
    let entries = (wanted.saturating_mul(all)).div_ceil(matching.max(1));
    let below = entries.saturating_sub(head.assigned);
    let first = 1 + below.div_ceil(PAGE_SIZE);
    first.saturating_mul(1 << round.min(5)).min(MAX_BATCH)
}

/// Which jobs of a scope a list shows (`None` = any).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub status: Option<JobStatus>,
    pub provider: Option<&'a str>,
}

impl Filter<'_> {
    fn accepts(&self, e: &Entry) -> bool {
        self.status.is_none_or(|s| e.status == s) && self.provider.is_none_or(|p| e.provider == p)
    }

    /// How many jobs match, from the head's counts.
    fn count(&self, head: &Head) -> u64 {
        head.count(self.status, self.provider)
    }
}

/// Hands `take` the page `offset..offset+limit` of the entries `filter`
/// accepts, newest first, reading pages from the head down and stopping as
/// soon as it has them, or has seen all that match. Returns how many match
/// in all (from the head's counts).
pub fn scan(
    kv: &dyn KvStore,
    scope: Scope,
    head: &Head,
    filter: Filter,
    (offset, limit): (usize, usize),
    mut take: impl FnMut(&Entry),
) -> Result<u64, KvError> {
    let matching = filter.count(head);
    let wanted = (offset + limit) as u64;
    let (mut seen, mut taken, mut next, mut round) = (0u64, 0usize, Some(head.page), 0);
    while let Some(top) = next
        && taken < limit
        && seen < matching
    {
        let bottom = top
            .saturating_sub(batch(round, head, matching, wanted) - 1)
            .max(head.oldest);
        let keys: Vec<String> = (bottom..=top).rev().map(|p| scope.page_key(p)).collect();
        for (key, raw) in keys.iter().zip(kv.get_many(&keys)?) {
            let Some(raw) = raw else { continue };
            for e in entries(key, &raw)?.iter().filter(|e| filter.accepts(e)) {
                seen += 1;
                if seen as usize > offset && taken < limit {
                    take(e);
                    taken += 1;
                }
            }
        }
        next = (bottom > head.oldest).then(|| bottom - 1);
        round += 1;
    }
    Ok(matching)
}

/// The oldest entries first (for retention), from at most `max_pages`
/// pages; pages found empty below the head are skipped from then on.
pub fn oldest(
    kv: &dyn KvStore,
    scope: Scope,
    max_pages: u64,
) -> Result<Vec<Entry<'static>>, KvError> {
    let h = head(kv, scope)?;
    let mut out = Vec::new();
    // Empty pages at the bottom (below the head) never fill again: skip them
    // from then on.
    let mut bottom = h.oldest;
    let top = h.page.min(h.oldest + max_pages.saturating_sub(1));
    let keys: Vec<String> = (h.oldest..=top).map(|p| scope.page_key(p)).collect();
    for ((p, key), raw) in (h.oldest..=top).zip(&keys).zip(kv.get_many(&keys)?) {
        let page = match &raw {
            Some(raw) => entries(key, raw)?,
            None => Vec::new(),
        };
        if page.is_empty() && p < h.page && p == bottom {
            bottom = p + 1;
        }
        out.extend(page.into_iter().rev().map(Entry::into_owned));
    }
    if bottom > h.oldest {
        edit_json::<Head>(kv, &scope.head_key(), |h| h.oldest = h.oldest.max(bottom))?;
    }
    Ok(out)
}

const ACTIVE: &str = "jobs:active";

/// `(job id, owner)` of every job not yet finished.
pub fn active(kv: &dyn KvStore) -> Result<Vec<(String, String)>, KvError> {
    Ok(get_json(kv, ACTIVE)?.unwrap_or_default())
}

pub fn set_active(kv: &dyn KvStore, id: &str, owner: &str, active: bool) -> Result<(), KvError> {
    edit_json::<Vec<(String, String)>>(kv, ACTIVE, |list| {
        list.retain(|(i, _)| i != id);
        if active {
            list.push((id.to_string(), owner.to_string()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::record::Job;
    use crate::jobs::store::tests::job;
    use crate::jobs::store::{JobStore, ListQuery};
    use crate::kernel::counting::CountingKv;
    use crate::kernel::kv::MemoryKv;

    fn jobs(store: &JobStore, n: usize) {
        for i in 0..n {
            let mut j = job(
                &format!("j{i:05}"),
                if i % 3 == 0 { "bob" } else { "alice" },
            );
            j.created_ms = i as u64;
            if i % 10 == 0 {
                j.status = JobStatus::Running;
            }
            store.create(&mut j).unwrap();
        }
    }

    fn q(limit: usize, offset: usize) -> ListQuery {
        ListQuery {
            limit,
            offset,
            ..Default::default()
        }
    }

    fn ids<'a>(list: &'a [Entry]) -> Vec<&'a str> {
        list.iter().map(|s| &*s.job_id).collect()
    }

    #[test]
    fn a_list_page_reads_the_head_and_one_batch_of_what_it_shows_whatever_the_total() {
        let mut read = Vec::new();
        for n in [100, 1_000] {
            let kv = CountingKv::default();
            let store = JobStore::new(&kv);
            jobs(&store, n);
            kv.reset();
            let (list, total) = store.list(&q(50, 0)).unwrap();
            assert_eq!((list.len(), total), (50, n));
            assert_eq!(&*list[0].job_id, format!("j{:05}", n - 1), "newest first");
            assert_eq!(
                (kv.count("get"), kv.count("get_many"), kv.total()),
                (1, 1, 2),
                "{n} jobs: the head, then one batch of pages"
            );
            let entry = serde_json::to_vec(&list[0]).unwrap().len();
            read.push((kv.read_bytes(), entry));
            // A later page is still exact, and in order.
            let (page, _) = store.list(&q(50, 30)).unwrap();
            let want: Vec<String> = (n - 80..n - 30).rev().map(|i| format!("j{i:05}")).collect();
            assert_eq!(ids(&page), want);
        }
        // What was read is the 50 entries shown, less than a page more, and
        // the head.
        assert!(
            read.iter()
                .all(|&(bytes, entry)| bytes < (50 + PAGE_SIZE as usize) * entry + 1024),
            "{read:?}"
        );
    }

    #[test]
    fn filters_and_totals_are_exact_and_follow_status_changes() {
        let kv = MemoryKv::default();
        let store = JobStore::new(&kv);
        jobs(&store, 300);
        let running = |store: &JobStore| {
            store
                .list(&ListQuery {
                    status: Some(JobStatus::Running),
                    limit: 500,
                    ..Default::default()
                })
                .unwrap()
        };
        let (list, total) = running(&store);
        assert_eq!((list.len(), total), (30, 30));
        store
            .update::<()>("j00010", |j| {
                j.transition(JobStatus::Completed, 5).map_err(drop)?;
                Ok(())
            })
            .unwrap();
        let (list, total) = running(&store);
        assert_eq!((list.len(), total), (29, 29));
        assert!(!ids(&list).contains(&"j00010"));
        let (bobs, total) = store
            .list(&ListQuery {
                owner: Some("bob".into()),
                limit: 500,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((bobs.len(), total), (100, 100));
        assert!(bobs.iter().all(|s| s.owner == "bob"));
        let (none, total) = store
            .list(&ListQuery {
                provider: Some("kubeflow".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((none.len(), total), (0, 0));
        assert_eq!(store.active().unwrap().len(), 299, "every unfinished job");
    }

    #[test]
    fn a_status_change_writes_a_bounded_number_of_bounded_values() {
        // 200 jobs already fill the changed job's pages; 1,000 add more pages
        // that the change must not touch.
        let mut seen = Vec::new();
        for n in [200, 1_000] {
            let kv = CountingKv::default();
            let store = JobStore::new(&kv);
            jobs(&store, n);
            kv.reset();
            store
                .update::<()>("j00051", |j| {
                    j.transition(JobStatus::Queued, 7).map_err(drop)?;
                    Ok(())
                })
                .unwrap();
            seen.push(kv.writes());
        }
        let (small, large) = (seen[0], seen[1]);
        assert_eq!(
            small.0, 5,
            "record, and a page and a head per scope: {seen:?}"
        );
        assert_eq!(small.0, large.0, "the same values are written: {seen:?}");
        assert!(
            // Two pages of entries under 1 KB each, the record and two heads.
            large.1 <= small.1 + 1024 && large.1 < (2 * PAGE_SIZE as usize + 8) * 1024,
            "bytes do not grow with the number of jobs: {seen:?}"
        );
    }

    #[test]
    fn a_late_writer_never_puts_back_an_older_summary() {
        let kv = MemoryKv::default();
        let store = JobStore::new(&kv);
        let mut j: Job = job("j", "alice");
        store.create(&mut j).unwrap();
        let old = Entry::of(&Summary::of(&store.get("j").unwrap().unwrap()));
        store
            .update::<()>("j", |j| {
                j.transition(JobStatus::Running, 2).map_err(drop)?;
                Ok(())
            })
            .unwrap();
        // The create's write arrives last.
        put(&kv, Scope::All, 0, &old).unwrap();
        let (list, _) = store.list(&q(10, 0)).unwrap();
        assert_eq!(list[0].status, JobStatus::Running);
    }
}
