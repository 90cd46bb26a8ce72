//! Spend windows and cost limits: each submit reserves its estimate with
//! atomic increments of the window's counters; a job that does not fit under a
//! blocking limit takes its reservation back.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{date, day_key, micros, usd};
use crate::kernel::error::ApiError;
use crate::kernel::kv::{KvStore, read_counter};
use crate::providers::settings::{LimitAction, LimitScope, Period, StoredSettings};

/// The window id of `ms` in `period` (calendar, UTC).
pub fn window(period: Period, ms: u64) -> String {
    let d = date(ms);
    match period {
        Period::Daily => day_key(ms),
        Period::Weekly => {
            let (y, w, _) = d.to_iso_week_date();
            format!("{y:04}-W{w:02}")
        }
        Period::Monthly => format!("{:04}-{:02}", d.year(), u8::from(d.month())),
    }
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Daily => "daily",
        Period::Weekly => "weekly",
        Period::Monthly => "monthly",
    }
}

pub(super) fn spend_keys(period: Period, ms: u64, owner: &str) -> [String; 2] {
    let w = window(period, ms);
    [format!("spend:{w}:all"), format!("spend:{w}:u:{owner}")]
}

const PERIODS: [Period; 3] = [Period::Daily, Period::Weekly, Period::Monthly];

/// Every window a job at `ms` counts in: its day, ISO week and month, for
/// everyone and for its owner. A job reserves (and settles) in all six, so a
/// limit whose period changes later still sees every job of its window.
fn every_spend_key(ms: u64, owner: &str) -> Vec<String> {
    PERIODS
        .iter()
        .flat_map(|p| spend_keys(*p, ms, owner))
        .collect()
}

/// Everyone's spend in `period`'s current window (settled + reserved), in USD.
pub fn global_spend_usd(kv: &dyn KvStore, period: Period, now_ms: u64) -> Result<f64, ApiError> {
    let m = crate::kernel::kv::read_counter(kv, &spend_keys(period, now_ms, "")[0])?;
    Ok(usd(m.max(0)))
}

/// What a job reserved, kept on the job so it can be settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub keys: Vec<String>,
    pub micros: i64,
}

/// The outcome of reserving at submit.
pub enum Check {
    Allowed {
        reservation: Reservation,
        warning: Option<String>,
    },
    Blocked(ApiError),
}

fn limit_line(spend: f64, limit: f64, period: Period) -> String {
    format!("${spend:.2} / ${limit:.2} ({})", period_name(period))
}

/// Reserves `est` in the current windows and applies the limit, if any.
pub fn reserve(
    kv: &dyn KvStore,
    s: &StoredSettings,
    owner: &str,
    est_usd: f64,
    now_ms: u64,
) -> Result<Check, ApiError> {
    let m = super::estimate::reservable_micros(est_usd)?;
    let keys = every_spend_key(now_ms, owner);
    let active = &spend_keys(s.cost_limit_period, now_ms, owner)[match s.cost_limit_scope {
        LimitScope::Global => 0,
        LimitScope::User => 1,
    }];
    let mut after = 0;
    for (i, k) in keys.iter().enumerate() {
        match kv.increment(k, m) {
            Ok(total) if k == active => after = total,
            Ok(_) => {}
            Err(e) => {
                // Whatever was reserved before the failure is given back, so
                // a failing store never leaves part of a reservation behind.
                let _ = release(
                    kv,
                    &Reservation {
                        keys: keys[..i].to_vec(),
                        micros: m,
                    },
                );
                return Err(e.into());
            }
        }
    }
    let reservation = Reservation { keys, micros: m };
    let limit = match (s.cost_limit_enabled, s.cost_limit_amount) {
        (true, Some(a)) => a,
        _ => {
            return Ok(Check::Allowed {
                reservation,
                warning: None,
            });
        }
    };
    let limit_m = micros(limit);
    let spend = usd(after);
    if after > limit_m {
        if s.cost_limit_action == LimitAction::Block {
            release(kv, &reservation)?;
            return Ok(Check::Blocked(
                ApiError::new(
                    402,
                    "cost_limit_exceeded",
                    format!(
                        "Cost limit exceeded: this job (estimated ${est_usd:.2}) would bring spend to ${spend:.2} of the ${limit:.2} {} limit ({} spent or reserved before it).",
                        period_name(s.cost_limit_period),
                        format_args!("${:.2}", usd(after.saturating_sub(m))),
                    ),
                )
                .with_detail("current_spend", usd(after.saturating_sub(m)))
                .with_detail("limit_amount", limit)
                .with_detail("estimated_cost", est_usd),
            ));
        }
        let warning = format!(
            "Spending limit exceeded: {}",
            limit_line(spend, limit, s.cost_limit_period)
        );
        return Ok(Check::Allowed {
            reservation,
            warning: Some(warning),
        });
    }
    let warning = (limit_m > 0 && i128::from(after) * 100 >= i128::from(limit_m) * 80).then(|| {
        format!(
            "Approaching limit: {}",
            limit_line(spend, limit, s.cost_limit_period)
        )
    });
    Ok(Check::Allowed {
        reservation,
        warning,
    })
}

/// Gives a reservation back in every window it took; tries every key even
/// when one fails, and reports the first failure.
pub fn release(kv: &dyn KvStore, r: &Reservation) -> Result<(), ApiError> {
    let mut first = None;
    for k in &r.keys {
        if let Err(e) = kv.increment(k, r.micros.saturating_neg()) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), |e| Err(e.into()))
}

/// `GET /api/cloud/metrics/cost-limit` for an owner (or everyone).
pub fn limit_status(
    kv: &dyn KvStore,
    s: &StoredSettings,
    owner: &str,
    now_ms: u64,
) -> Result<Value, ApiError> {
    let keys = spend_keys(s.cost_limit_period, now_ms, owner);
    let spend_m = match s.cost_limit_scope {
        LimitScope::Global => read_counter(kv, &keys[0])?,
        LimitScope::User => read_counter(kv, &keys[1])?,
    };
    let spend = usd(spend_m.max(0));
    let enabled = s.cost_limit_enabled && s.cost_limit_amount.is_some();
    let limit = s.cost_limit_amount;
    let percent = limit
        .filter(|l| *l > 0.0)
        .map(|l| (spend / l * 1000.0).round() / 10.0)
        .unwrap_or(0.0);
    let exceeded = enabled && limit.is_some_and(|l| spend >= l);
    let warning = enabled && !exceeded && percent >= 80.0;
    let message = if !s.cost_limit_enabled {
        Some("Cost limits not configured".to_string())
    } else if limit.is_none() {
        Some("No limit amount set".to_string())
    } else if exceeded {
        Some(format!(
            "Spending limit exceeded: {}",
            limit_line(spend, limit.unwrap_or(0.0), s.cost_limit_period)
        ))
    } else if warning {
        Some(format!(
            "Approaching limit: {}",
            limit_line(spend, limit.unwrap_or(0.0), s.cost_limit_period)
        ))
    } else {
        None
    };
    Ok(json!({
        "enabled": enabled,
        "limit_amount": limit,
        "period": period_name(s.cost_limit_period),
        "action": s.cost_limit_action,
        "scope": s.cost_limit_scope,
        "window": window(s.cost_limit_period, now_ms),
        "window_type": "calendar (UTC)",
        "current_spend": spend,
        "percent_used": percent,
        "is_exceeded": exceeded,
        "is_warning": warning,
        "message": message,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    fn limited(amount: f64, action: LimitAction) -> StoredSettings {
        StoredSettings {
            cost_limit_enabled: true,
            cost_limit_amount: Some(amount),
            cost_limit_action: action,
            ..Default::default()
        }
    }

    /// A store whose increments of keys containing `fail` fail, as Redis'
    /// `INCRBY` does on overflow.
    struct FailingIncrements {
        inner: MemoryKv,
        fail: &'static str,
    }

    impl KvStore for FailingIncrements {
        fn get(&self, k: &str) -> Result<Option<Vec<u8>>, crate::kernel::kv::KvError> {
            self.inner.get(k)
        }
        fn set(&self, k: &str, v: &[u8]) -> Result<(), crate::kernel::kv::KvError> {
            self.inner.set(k, v)
        }
        fn delete(&self, k: &str) -> Result<(), crate::kernel::kv::KvError> {
            self.inner.delete(k)
        }
        fn exists(&self, k: &str) -> Result<bool, crate::kernel::kv::KvError> {
            self.inner.exists(k)
        }
        fn increment(&self, k: &str, d: i64) -> Result<i64, crate::kernel::kv::KvError> {
            if k.contains(self.fail) {
                return Err(crate::kernel::kv::KvError::new("increment would overflow"));
            }
            self.inner.increment(k, d)
        }
        fn swap(
            &self,
            k: &str,
            seen: Option<&[u8]>,
            new: &[u8],
        ) -> Result<bool, crate::kernel::kv::KvError> {
            self.inner.swap(k, seen, new)
        }
    }

    fn every_counter(kv: &dyn KvStore, ms: u64, owner: &str) -> Vec<i64> {
        every_spend_key(ms, owner)
            .iter()
            .map(|k| read_counter(kv, k).unwrap())
            .collect()
    }

    #[test]
    fn an_estimate_past_the_bound_is_refused_and_reserves_nothing() {
        let kv = MemoryKv::default();
        let s = limited(100.0, LimitAction::Block);
        for est in [
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
            -1.0,
            crate::billing::estimate::MAX_ESTIMATE_USD * 1.01,
        ] {
            let Err(e) = reserve(&kv, &s, "a", est, 0) else {
                panic!("{est} was reserved")
            };
            assert_eq!((e.status, e.code), (400, "estimate_too_large"), "{est}");
        }
        assert_eq!(every_counter(&kv, 0, "a"), [0; 6]);
        // The bound itself fits, and the block limit still holds after it.
        let Check::Blocked(e) =
            reserve(&kv, &s, "a", crate::billing::estimate::MAX_ESTIMATE_USD, 0).unwrap()
        else {
            panic!("a $1M job does not fit a $100 limit")
        };
        assert_eq!(e.status, 402);
        assert_eq!(every_counter(&kv, 0, "a"), [0; 6]);
        let Check::Allowed { .. } = reserve(&kv, &s, "a", 1.0, 0).unwrap() else {
            panic!("a $1 job fits")
        };
    }

    #[test]
    fn a_reservation_that_fails_part_way_gives_back_what_it_took() {
        let ms = 1_795_879_207_000; // 2026-11-28
        // The weekly keys come after the daily ones: two were taken first.
        let kv = FailingIncrements {
            inner: MemoryKv::default(),
            fail: "-W",
        };
        let s = StoredSettings::default();
        let e = reserve(&kv, &s, "a", 5.0, ms)
            .err()
            .expect("the store failed");
        assert_eq!(e.status, 500);
        assert_eq!(every_counter(&kv.inner, ms, "a"), [0; 6]);
    }

    #[test]
    fn amounts_are_clamped_so_counters_cannot_overflow() {
        assert_eq!(micros(f64::NAN), 0);
        assert_eq!(micros(f64::INFINITY), 1_000_000_000_000_000);
        assert_eq!(micros(-f64::MAX), -1_000_000_000_000_000);
        // A limit compared with a huge spend does not overflow.
        let kv = MemoryKv::default();
        let s = limited(
            crate::providers::settings::MAX_COST_LIMIT_USD,
            LimitAction::Warn,
        );
        kv.increment(&spend_keys(Period::Monthly, 0, "a")[0], i64::MAX / 2)
            .unwrap();
        assert!(matches!(
            reserve(&kv, &s, "a", 1.0, 0).unwrap(),
            Check::Allowed {
                warning: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn calendar_windows() {
        let ms = 1_795_879_207_000; // 2026-11-28 (a Saturday)
        assert_eq!(window(Period::Daily, ms), "2026-11-28");
        assert_eq!(window(Period::Weekly, ms), "2026-W48");
        assert_eq!(window(Period::Monthly, ms), "2026-11");
    }

    #[test]
    fn every_window_counts_every_job_whichever_period_was_active() {
        let kv = MemoryKv::default();
        let ms = 1_795_879_207_000; // 2026-11-28
        let weekly = StoredSettings {
            cost_limit_period: Period::Weekly,
            ..limited(10.0, LimitAction::Warn)
        };
        let Check::Allowed { reservation, .. } = reserve(&kv, &weekly, "a", 1.0, ms).unwrap()
        else {
            panic!("a warn limit allows")
        };
        // The job ends costing $3.50 (settlement adjusts every reserved window).
        for k in &reservation.keys {
            kv.increment(k, micros(3.5) - reservation.micros).unwrap();
        }
        for period in PERIODS {
            for scope in [LimitScope::Global, LimitScope::User] {
                let s = StoredSettings {
                    cost_limit_period: period,
                    cost_limit_scope: scope,
                    cost_limit_amount: Some(4.0),
                    ..weekly.clone()
                };
                let status = limit_status(&kv, &s, "a", ms).unwrap();
                assert_eq!(status["current_spend"], 3.5, "{period:?} {scope:?}");
                assert_eq!(status["is_warning"], true, "{period:?} {scope:?}");
            }
        }
        let other = limit_status(
            &kv,
            &StoredSettings {
                cost_limit_scope: LimitScope::User,
                ..weekly.clone()
            },
            "b",
            ms,
        )
        .unwrap();
        assert_eq!(
            other["current_spend"], 0.0,
            "another user's window is theirs"
        );
    }

    #[test]
    fn warn_and_block_at_79_80_and_100_percent() {
        for (spent, action, ok, warns) in [
            (78.0, LimitAction::Block, true, false), // 79 % after this job
            (79.0, LimitAction::Block, true, true),  // 80 %
            (99.0, LimitAction::Block, true, true),  // 100 %: fits exactly
            (99.5, LimitAction::Block, false, false),
            (99.5, LimitAction::Warn, true, true),
        ] {
            let kv = MemoryKv::default();
            let s = limited(100.0, action);
            let Check::Allowed { .. } = reserve(&kv, &s, "a", spent, 0).unwrap() else {
                panic!()
            };
            match reserve(&kv, &s, "a", 1.0, 0).unwrap() {
                Check::Allowed { warning, .. } => {
                    assert!(ok, "{spent}");
                    assert_eq!(warning.is_some(), warns, "{spent}: {warning:?}");
                }
                Check::Blocked(e) => {
                    assert!(!ok, "{spent}");
                    assert_eq!(e.status, 402);
                    assert!(e.message.contains("$100.00"), "{}", e.message);
                }
            }
        }
    }
}
