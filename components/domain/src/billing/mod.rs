//! Money: estimates, spend reservations under cost limits, settlement of
//! finished jobs and the metrics built from it.
//!
//! - **Spend windows are calendar periods in UTC** (day; ISO week from Monday;
//!   month). Each submit *reserves* its estimated cost with an atomic
//!   `increment` of the window's counters (installation-wide and per user, in
//!   micro-dollars); when the job finishes, the reservation is replaced by its
//!   real cost (`predict_time × the job's own rate`). So the spend a limit sees
//!   = settled costs + estimates of jobs still running, and 20 racing submits
//!   cannot all pass a nearly full limit: each sees the total including the
//!   others' reservations, and one that does not fit takes its reservation
//!   back. (Changing the period starts counting in the new period's window.)
//! - **Metrics** come from daily aggregates (`agg:<date>:all` and
//!   `agg:<date>:u:<owner>`) updated once per job when it finishes, so a
//!   report for N days reads N keys, never every job.

pub mod estimate;
pub mod limits;
pub mod metrics;
pub mod quotas;

use time::OffsetDateTime;

pub(crate) fn date(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn day_key(ms: u64) -> String {
    let d = date(ms);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The most any amount counts for, in USD: every sum of amounts then stays
/// far inside an i64 of micro-dollars (9.2e12 USD).
const MAX_AMOUNT_USD: f64 = 1e9;

/// `usd` in micro-dollars, clamped to ±[`MAX_AMOUNT_USD`] (not a number: 0),
/// so no amount can push a counter toward overflow.
pub(crate) fn micros(usd: f64) -> i64 {
    if usd.is_nan() {
        return 0;
    }
    (usd.clamp(-MAX_AMOUNT_USD, MAX_AMOUNT_USD) * 1e6).round() as i64
}

pub(crate) fn usd(micros: i64) -> f64 {
    (micros as f64 / 1e4).round() / 100.0
}
