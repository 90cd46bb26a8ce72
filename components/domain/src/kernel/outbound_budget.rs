//! An hourly budget of outbound HTTP requests for the whole installation
//! (`outbound_requests_per_hour`): Fermyon Cloud allows an app 500 outbound
//! requests an hour and refuses the rest, so a busy hour of syncing must not
//! leave a user unable to submit or cancel.
//!
//! Every outbound request is counted in the store, in one counter per clock
//! hour (`outbound:<unix hour>`, one atomic `increment`). Background work
//! (sync passes, refresh-on-read, webhooks, notifications) may use the budget
//! minus a reserve ([`reserve`], a tenth); user actions (submit, cancel,
//! validate) may use all of it, and once it is all spent they are refused
//! with a 503 and `Retry-After` before they start ([`user_gate`]), never
//! half-way. Without the variable nothing is counted: no store writes at all.

use crate::kernel::error::ApiError;
use crate::kernel::http::{HttpClient, HttpRequest, HttpResponse, TransportError};
use crate::kernel::kv::{KvError, KvStore, read_counter};

const HOUR_MS: u64 = 3_600_000;
/// Remembers which hour's counter exists, so the previous one is deleted
/// when a new hour starts (at most two counters ever exist).
const LAST_HOUR_KEY: &str = "outbound:last_hour";
/// What a refused background request's error says (and how
/// [`is_spent`] recognises it once wrapped in a provider's error).
pub const SPENT: &str = "this hour's outbound request budget for background work is spent";
/// What Fermyon Cloud allows an app per hour, for messages.
pub const FERMYON_CLOUD_LIMIT: u64 = 500;

/// Who a request is for: background work stops short of the reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Background,
    User,
}

/// The configured hourly limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u64,
}

impl Budget {
    /// The budget `outbound_requests_per_hour` sets: `None` (no budget, no
    /// counting) when empty, not a number, or 0.
    pub fn from_variable(value: Option<&str>) -> Option<Budget> {
        value
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&limit| limit > 0)
            .map(|limit| Budget { limit })
    }

    /// What `purpose` may use of the hour.
    pub fn allowed(&self, purpose: Purpose) -> u64 {
        match purpose {
            Purpose::User => self.limit,
            Purpose::Background => self.limit - reserve(self.limit),
        }
    }
}

/// Requests kept for user actions: a tenth of the limit, rounded up (at
/// least one, unless the whole budget is one request).
pub fn reserve(limit: u64) -> u64 {
    if limit < 2 { 0 } else { limit.div_ceil(10) }
}

fn hour_of(now_ms: u64) -> u64 {
    now_ms / HOUR_MS
}

/// The counter key of the hour `now_ms` falls in.
pub fn key(now_ms: u64) -> String {
    format!("outbound:{}", hour_of(now_ms))
}

/// Seconds until the next hour's budget starts (1..=3600).
pub fn resets_in_s(now_ms: u64) -> u64 {
    (HOUR_MS - now_ms % HOUR_MS).div_ceil(1000)
}

/// The hour so far, as the sync report and messages show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub limit: u64,
    pub used: u64,
    pub resets_in_s: u64,
}

impl Usage {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "limit": self.limit,
            "used": self.used,
            "reserved_for_users": reserve(self.limit),
            "resets_in_s": self.resets_in_s,
        })
    }
}

/// Requests made this hour (one read, no write).
pub fn usage(kv: &dyn KvStore, budget: Budget, now_ms: u64) -> Result<Usage, KvError> {
    let used = read_counter(kv, &key(now_ms))?.max(0) as u64;
    Ok(Usage {
        limit: budget.limit,
        used,
        resets_in_s: resets_in_s(now_ms),
    })
}

/// What `purpose` may still send this hour.
pub fn remaining(
    kv: &dyn KvStore,
    budget: Budget,
    purpose: Purpose,
    now_ms: u64,
) -> Result<u64, KvError> {
    let used = usage(kv, budget, now_ms)?.used;
    Ok(budget.allowed(purpose).saturating_sub(used))
}

/// Counts one request. A background request past its share is taken back
/// and refused (`false`); a user request is always counted and sent, since
/// a user action was admitted by [`user_gate`] and must not stop half-way
/// (the gap between the limit and the platform's own absorbs the few).
pub fn take(
    kv: &dyn KvStore,
    budget: Budget,
    purpose: Purpose,
    now_ms: u64,
) -> Result<bool, KvError> {
    let key = key(now_ms);
    let used = kv.increment(&key, 1)?.max(0) as u64;
    if used == 1 {
        forget_previous_hour(kv, now_ms);
    }
    if purpose == Purpose::Background && used > budget.allowed(purpose) {
        kv.increment(&key, -1)?;
        return Ok(false);
    }
    Ok(true)
}

/// The first request of an hour deletes the counter of the last hour that
/// had one. Losing this is harmless (a stale counter is never read again),
/// so failures are ignored.
fn forget_previous_hour(kv: &dyn KvStore, now_ms: u64) {
    let hour = hour_of(now_ms);
    let last = kv
        .get(LAST_HOUR_KEY)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok());
    if last == Some(hour) {
        return;
    }
    if kv.set(LAST_HOUR_KEY, hour.to_string().as_bytes()).is_ok()
        && let Some(last) = last.filter(|&l| l < hour)
    {
        let _ = kv.delete(&format!("outbound:{last}"));
    }
}

/// A user action may start unless the hour's whole budget is spent: then
/// 503 with `Retry-After` (seconds to the next hour) and the numbers.
pub fn user_gate(kv: &dyn KvStore, budget: Budget, now_ms: u64) -> Result<(), ApiError> {
    let usage = usage(kv, budget, now_ms)?;
    if usage.used < usage.limit {
        return Ok(());
    }
    Err(ApiError::new(
        503,
        "outbound_budget_spent",
        format!(
            "this installation has made its {} outbound requests this hour (the \
             outbound_requests_per_hour limit; Fermyon Cloud allows {FERMYON_CLOUD_LIMIT}); \
             try again in {} s, when the next hour's budget starts",
            usage.limit, usage.resets_in_s
        ),
    )
    .with_detail("retry_after_secs", usage.resets_in_s)
    .with_detail("outbound_budget", usage.to_json()))
}

/// Whether a transport error's text is a refusal by this budget (also once
/// a provider client has wrapped it in its own words).
pub fn is_spent(message: &str) -> bool {
    message.contains(SPENT)
}

/// The counting half of [`Budgeted`]: the store, the limit and the purpose.
pub struct Meter<K> {
    pub kv: K,
    pub budget: Budget,
    pub purpose: Purpose,
}

/// An [`HttpClient`] that counts each request against the hour's budget
/// (and refuses background ones past their share) before `inner` sends it.
/// Without a meter it is `inner` alone.
pub struct Budgeted<H, K> {
    inner: H,
    meter: Option<Meter<K>>,
}

impl<H: HttpClient, K: KvStore> Budgeted<H, K> {
    pub fn new(inner: H, meter: Option<Meter<K>>) -> Self {
        Self { inner, meter }
    }

    pub fn meter(&self) -> Option<&Meter<K>> {
        self.meter.as_ref()
    }

    /// The hour so far (`None` without a budget or when it cannot be read).
    pub fn usage(&self, now_ms: u64) -> Option<Usage> {
        let m = self.meter.as_ref()?;
        usage(&m.kv, m.budget, now_ms).ok()
    }

    /// What this client's purpose may still send this hour (`None`: no limit).
    pub fn remaining(&self, now_ms: u64) -> Option<u64> {
        let m = self.meter.as_ref()?;
        // An unreadable counter must not stop the work: the per-request
        // count still applies.
        Some(remaining(&m.kv, m.budget, m.purpose, now_ms).unwrap_or(m.budget.limit))
    }
}

impl<H: HttpClient, K: KvStore> HttpClient for Budgeted<H, K> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        if let Some(m) = &self.meter {
            let now = crate::kernel::clock::now_ms();
            // A store that cannot count does not stop the request: the
            // budget protects the platform's limit, not correctness.
            if let Ok(false) = take(&m.kv, m.budget, m.purpose, now) {
                return Err(TransportError::Failed(format!(
                    "{SPENT} ({} requests an hour, {} kept for user actions; next hour in {} s)",
                    m.budget.limit,
                    reserve(m.budget.limit),
                    resets_in_s(now)
                )));
            }
        }
        self.inner.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::counting::CountingKv;
    use crate::kernel::http::Method;
    use crate::kernel::kv::MemoryKv;
    use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};

    const T0: u64 = 1_800_000_000_000; // some hour's start: 500,000 h
    const SIX: Budget = Budget { limit: 6 };

    #[test]
    fn the_variable_sets_a_budget_only_when_positive() {
        assert_eq!(Budget::from_variable(None), None);
        assert_eq!(Budget::from_variable(Some("")), None);
        assert_eq!(Budget::from_variable(Some("0")), None);
        assert_eq!(Budget::from_variable(Some("x")), None);
        assert_eq!(
            Budget::from_variable(Some(" 450 ")),
            Some(Budget { limit: 450 })
        );
    }

    #[test]
    fn a_tenth_is_kept_for_user_actions() {
        assert_eq!(reserve(450), 45);
        assert_eq!(reserve(6), 1);
        assert_eq!(reserve(1), 0);
        let b = Budget { limit: 450 };
        assert_eq!(
            (b.allowed(Purpose::Background), b.allowed(Purpose::User)),
            (405, 450)
        );
    }

    #[test]
    fn background_stops_at_its_share_and_users_use_the_reserve() {
        let kv = MemoryKv::default();
        let taken = (0..7)
            .filter(|_| take(&kv, SIX, Purpose::Background, T0).unwrap())
            .count();
        assert_eq!(taken, 5, "6 minus a reserve of 1");
        // Refused requests are not counted.
        assert_eq!(usage(&kv, SIX, T0).unwrap().used, 5);
        assert_eq!(remaining(&kv, SIX, Purpose::Background, T0).unwrap(), 0);
        assert_eq!(remaining(&kv, SIX, Purpose::User, T0).unwrap(), 1);
        assert!(user_gate(&kv, SIX, T0).is_ok());
        assert!(take(&kv, SIX, Purpose::User, T0).unwrap());
        let e = user_gate(&kv, SIX, T0 + 1_000).unwrap_err();
        assert_eq!((e.status, e.code), (503, "outbound_budget_spent"));
        assert_eq!(e.details["retry_after_secs"], 3599);
        assert!(e.message.contains("6 outbound requests this hour"));
        assert!(e.message.contains("Fermyon Cloud allows 500"));
    }

    #[test]
    fn a_new_hour_starts_afresh_and_drops_the_old_counter() {
        let kv = MemoryKv::default();
        for _ in 0..6 {
            take(&kv, SIX, Purpose::User, T0).unwrap();
        }
        assert!(user_gate(&kv, SIX, T0 + HOUR_MS - 1).is_err());
        assert_eq!(resets_in_s(T0 + HOUR_MS - 1), 1);
        let next = T0 + HOUR_MS;
        assert!(user_gate(&kv, SIX, next).is_ok());
        assert_eq!(remaining(&kv, SIX, Purpose::Background, next).unwrap(), 5);
        assert!(take(&kv, SIX, Purpose::Background, next).unwrap());
        assert!(!kv.keys().contains(&key(T0)), "{:?}", kv.keys());
        assert!(kv.keys().contains(&key(next)));
        // An idle day later the same: only the newest counter stays.
        let later = next + 24 * HOUR_MS;
        assert!(take(&kv, SIX, Purpose::Background, later).unwrap());
        let counters: Vec<String> = kv
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("outbound:") && k != LAST_HOUR_KEY)
            .collect();
        assert_eq!(counters, vec![key(later)]);
    }

    #[test]
    fn without_a_budget_nothing_is_counted_or_written() {
        let http = ScriptedHttp::new();
        http.on(
            Method::Get,
            "/x",
            vec![Reply::Json(200, serde_json::json!({}))],
        );
        let client: Budgeted<_, CountingKv> = Budgeted::new(http, None);
        for _ in 0..3 {
            assert!(block_on(client.send(HttpRequest::new(Method::Get, "https://h/x"))).is_ok());
        }
        assert_eq!(client.remaining(T0), None);
        assert_eq!(client.usage(T0), None);
    }

    #[test]
    fn the_client_refuses_background_requests_past_the_share_without_sending() {
        let http = ScriptedHttp::new();
        http.on(
            Method::Get,
            "/x",
            vec![Reply::Json(200, serde_json::json!({}))],
        );
        let meter = Meter {
            kv: CountingKv::default(),
            budget: Budget { limit: 2 },
            purpose: Purpose::Background,
        };
        let client = Budgeted::new(http, Some(meter));
        let get = || HttpRequest::new(Method::Get, "https://h/x");
        assert!(block_on(client.send(get())).is_ok());
        let refused = block_on(client.send(get())).unwrap_err();
        match refused {
            TransportError::Failed(m) => assert!(is_spent(&m), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(client.inner.count(Method::Get, "/x"), 1);
        let now = crate::kernel::clock::now_ms();
        assert_eq!(client.usage(now).map(|u| u.used), Some(1));
        assert_eq!(client.remaining(now), Some(0));
    }
}
