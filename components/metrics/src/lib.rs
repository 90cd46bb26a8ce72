//! `GET /api/metrics?days=N` (alias `/api/cloud/metrics`): totals, jobs by
//! status and cost by day — the caller's own unless `job.view.all`.

use cloudtuner_domain::clock::now_ms;
use cloudtuner_domain::costs::metrics;
use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::http::param;
use cloudtuner_domain::job::ALL_STATUSES;
use cloudtuner_domain::jobs::JobStore;
use cloudtuner_spin::{
    SpinKv, json, query, require_method, require_permission, require_principal, respond,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond((|| {
        require_method(&req, &["GET"])?;
        let kv = SpinKv::open_default()?;
        let p = require_principal(&req, &kv)?;
        require_permission(&p, "job.view.own")?;
        let days = match param(&query(&req), "days") {
            None => 30,
            Some(d) => d
                .parse::<u64>()
                .ok()
                .filter(|d| (1..=365).contains(d))
                .ok_or_else(|| ApiError::bad_request("`days` must be 1-365"))?,
        };
        let scope = (!p.has("job.view.all")).then_some(p.id.as_str());
        let index = JobStore::new(&kv).index(scope)?;
        let active: Vec<_> = ALL_STATUSES
            .iter()
            .filter(|s| !s.is_terminal())
            .map(|s| (*s, index.iter().filter(|e| e.1 == *s).count() as u64))
            .collect();
        Ok(json(200, &metrics(&kv, scope, &active, days, now_ms())?))
    })())
}
