//! Creating keys on a store whose only atomic step for a new key is
//! `increment` (Spin's embedded store): claims, and taking over a claim an
//! outage left without its key.

use super::{KvError, KvStore, MAX_CAS_ATTEMPTS, backoff};

pub(super) fn claim_key(key: &str) -> String {
    format!("claim:{key}")
}

/// Create-if-absent on a store whose only atomic primitive for new keys is
/// `increment`: the caller whose increment of `claim:<key>` returns 1 writes
/// the key; others wait until it is there. Returns true for the creator.
///
/// A claimer that lost the store between its claim and its write leaves a
/// claim with no key. Waiters answer "try again" (503) at first; once the
/// claim has been seen stuck for [`STUCK_CLAIM_TAKEOVER_S`], one waiter takes
/// it over (see [`take_over_stuck_claim`]), so an outage never blocks a key
/// for good.
pub fn claim_create<K: KvStore + ?Sized>(
    kv: &K,
    key: &str,
    initial: &[u8],
) -> Result<bool, KvError> {
    claim_create_at(kv, key, initial, crate::kernel::clock::now_ms() / 1000)
}

/// [`claim_create`] at `now_s` (unix seconds), for tests with a clock.
pub(super) fn claim_create_at<K: KvStore + ?Sized>(
    kv: &K,
    key: &str,
    initial: &[u8],
    now_s: u64,
) -> Result<bool, KvError> {
    if kv.exists(key)? {
        return Ok(false);
    }
    let claim = claim_key(key);
    if kv.increment(&claim, 1)? == 1 {
        kv.set(key, initial)?;
        return Ok(true);
    }
    for attempt in 0..MAX_CAS_ATTEMPTS {
        if kv.exists(key)? {
            return Ok(false);
        }
        backoff(attempt);
    }
    if take_over_stuck_claim(kv, &claim, now_s)? {
        kv.set(key, initial)?;
        return Ok(true);
    }
    // The claimer may have lost the store between its claim and its write
    // (an outage): say so as a retryable condition, not a server fault.
    Err(KvError::unavailable(format!(
        "{key} was claimed but not written yet; try again shortly"
    )))
}

/// How long a claim must have been seen without its key before a waiter
/// takes it over. No live request spends a minute between its `increment`
/// and its write (Fermyon Cloud and Akamai end requests at 30 s), so only a
/// claimer whose write failed is overtaken.
pub const STUCK_CLAIM_TAKEOVER_S: u64 = 60;
/// A claim counter's low bits count claimers; the bits above hold when a
/// waiter first saw the claim without its key (unix seconds, 0: never), so
/// the mark lives in the same 8-byte counter `increment` keeps adding to.
pub(super) const CLAIM_COUNT_BITS: u32 = 20;

/// After a full wait with the key still absent: the first such waiter marks
/// the claim "seen stuck at `now_s`" and answers false; a waiter coming
/// [`STUCK_CLAIM_TAKEOVER_S`] later swaps in a fresh mark and answers true,
/// making it the creator. Both are compare-and-swaps on the counter, which
/// exists (atomic on every store, unlike a swap that creates), so of racing
/// waiters exactly one takes the claim over.
pub(super) fn take_over_stuck_claim<K: KvStore + ?Sized>(
    kv: &K,
    claim: &str,
    now_s: u64,
) -> Result<bool, KvError> {
    let Some(current) = kv.read_for_swap(claim)? else {
        // Deleted meanwhile (the key was deleted with its claim): a retry
        // claims afresh.
        return Ok(false);
    };
    let Ok(bytes) = <[u8; 8]>::try_from(current.as_slice()) else {
        return Ok(false);
    };
    let value = u64::from_le_bytes(bytes);
    let claimers = value & ((1 << CLAIM_COUNT_BITS) - 1);
    let seen_s = value >> CLAIM_COUNT_BITS;
    let take_over = seen_s != 0 && now_s >= seen_s.saturating_add(STUCK_CLAIM_TAKEOVER_S);
    if seen_s != 0 && !take_over {
        return Ok(false);
    }
    let marked = (now_s << CLAIM_COUNT_BITS) | claimers;
    Ok(kv.swap(claim, Some(&current), &marked.to_le_bytes())? && take_over)
}
