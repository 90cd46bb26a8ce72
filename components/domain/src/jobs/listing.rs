//! `GET /api/cloud/jobs`: parameters, visibility, and the optional refresh of
//! active jobs (`sync_active=true`).

use serde_json::{Value, json};

use crate::auth::principal::Permission;
use crate::auth::principal::Principal;
use crate::jobs::entry::Entry;
use crate::jobs::lifecycle::refresh;
use crate::jobs::record::JobStatus;
use crate::jobs::store::{JobStore, ListQuery};
use crate::kernel::error::ApiError;
use crate::kernel::http::{HttpClient, param};
use crate::providers::settings::ProviderSettings;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;
/// `sync_active` asks Replicate about at most this many jobs per request.
pub const SYNC_ACTIVE_BUDGET: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub limit: usize,
    pub offset: usize,
    pub status: Option<JobStatus>,
    pub provider: Option<String>,
    pub sync_active: bool,
}

impl ListParams {
    pub fn parse(params: &[(String, String)]) -> Result<Self, ApiError> {
        let int = |name: &str| -> Result<Option<usize>, ApiError> {
            param(params, name)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        ApiError::bad_request(format!("`{name}` must be a non-negative integer"))
                    })
                })
                .transpose()
        };
        let limit = int("limit")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "`limit` must be 1-{MAX_LIMIT}"
            )));
        }
        let status = param(params, "status")
            .filter(|s| !s.is_empty())
            .map(|s| {
                JobStatus::parse(s).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown status {s:?}; use pending, uploading, queued, running, \
                         completed, failed or cancelled"
                    ))
                })
            })
            .transpose()?;
        let sync_active = match param(params, "sync_active") {
            None | Some("false") | Some("0") | Some("") => false,
            Some("true") | Some("1") => true,
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "`sync_active` must be true or false, not {v:?}"
                )));
            }
        };
        if let Some(t) = param(params, "job_type")
            && t != "cloud"
        {
            return Err(ApiError::bad_request(format!(
                "Invalid job_type: {t}. cloudtuner lists cloud jobs only."
            )));
        }
        Ok(Self {
            limit,
            offset: int("offset")?.unwrap_or(0),
            status,
            provider: param(params, "provider")
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            sync_active,
        })
    }
}

/// The list page `p` asks for. `settings` is read only when `sync_active`
/// asks for a refresh (it costs a store read).
pub async fn list_jobs<H: HttpClient>(
    store: &JobStore<'_>,
    http: &H,
    settings: impl FnOnce() -> ProviderSettings,
    principal: &Principal,
    p: &ListParams,
    now_ms: u64,
) -> Result<JobList, ApiError> {
    if !principal.has(Permission::JobViewOwn) && !principal.has(Permission::JobViewAll) {
        return Err(ApiError::new(
            403,
            "permission_denied",
            "Permission denied: job.view.own",
        ));
    }
    let owner = (!principal.has(Permission::JobViewAll)).then(|| principal.id.clone());
    let mut sync_errors = Vec::new();
    if p.sync_active {
        // Refresh first, so the page reflects it; only the caller's own jobs.
        let active: Vec<String> = store
            .active()?
            .into_iter()
            .rev()
            .filter(|(_, owner)| *owner == principal.id)
            .take(SYNC_ACTIVE_BUDGET)
            .map(|(id, _)| id)
            .collect();
        let forced = settings().always_refresh();
        for id in active {
            if let Some(job) = store.get(&id)?
                && let (_, Some(e)) = refresh(store, http, &forced, job, now_ms).await
            {
                sync_errors.push(json!({"job_id": id, "error": e}));
            }
        }
    }
    let q = ListQuery {
        owner,
        status: p.status,
        provider: p.provider.clone(),
        limit: p.limit,
        offset: p.offset,
    };
    let mut items = Vec::with_capacity(p.limit * 1024);
    let mut listed = 0;
    let mut take = |e: &Entry| {
        if listed > 0 {
            items.push(b',');
        }
        e.write_item(now_ms, &mut items);
        listed += 1;
    };
    let mut total = store.list_into(&q, &mut take)?;
    // An installation upgraded from the one-value index lists nothing until
    // its jobs are moved into pages: the first list that sees none moves them.
    if total == 0 && crate::jobs::legacy_index::migrate(store)? > 0 {
        total = store.list_into(&q, &mut take)?;
    }
    Ok(JobList {
        items,
        total,
        limit: p.limit,
        offset: p.offset,
        sync_errors,
    })
}

/// `{"jobs": [list item...], "total", "limit", "offset", "sync_errors"}`:
/// the items are copied as the pages hold them, not rebuilt.
pub struct JobList {
    /// The list items, comma-separated JSON.
    items: Vec<u8>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub sync_errors: Vec<Value>,
}

impl JobList {
    pub fn into_json(self) -> Vec<u8> {
        let tail = json!({
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "sync_errors": self.sync_errors,
        })
        .to_string();
        let mut out = Vec::with_capacity(self.items.len() + tail.len() + 12);
        out.extend_from_slice(b"{\"jobs\":[");
        out.extend_from_slice(&self.items);
        out.extend_from_slice(b"],");
        // `tail` is an object: its fields follow the items.
        out.extend_from_slice(&tail.as_bytes()[1..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<ListParams, ApiError> {
        ListParams::parse(&crate::kernel::http::parse_query(s))
    }

    #[test]
    fn parses_and_validates_list_parameters() {
        let p = q("").unwrap();
        assert_eq!(
            (p.limit, p.offset, p.status, p.sync_active),
            (50, 0, None, false)
        );
        let p = q("limit=500&offset=3&status=running&provider=replicate&sync_active=true").unwrap();
        assert_eq!(
            (p.limit, p.offset, p.status, p.sync_active),
            (500, 3, Some(JobStatus::Running), true)
        );
        for bad in [
            "limit=0",
            "limit=501",
            "limit=x",
            "offset=-1",
            "status=done",
            "sync_active=maybe",
            "job_type=local",
        ] {
            assert_eq!(q(bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
