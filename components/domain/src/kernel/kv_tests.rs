//! Unit tests of [`super`] (the key-value contract and its helpers).

use super::*;

#[test]
fn update_applies_the_function_and_reports_missing_keys() {
    let kv = MemoryKv::default();
    assert_eq!(
        update::<()>(&kv, "k", |v| Ok(v.to_vec())),
        Err(UpdateError::Missing)
    );
    kv.set("k", b"1").unwrap();
    let out = update::<()>(&kv, "k", |v| Ok([v, b"2"].concat())).unwrap();
    assert_eq!(out, b"12");
    assert_eq!(
        update(&kv, "k", |_| Err("no")),
        Err(UpdateError::Rejected("no"))
    );
    assert_eq!(kv.get("k").unwrap().unwrap(), b"12");
}

#[test]
fn create_once_has_one_creator() {
    let kv = MemoryKv::default();
    assert!(create_once(&kv, "idx", b"[]").unwrap());
    assert!(!create_once(&kv, "idx", b"[1]").unwrap());
    assert_eq!(kv.get("idx").unwrap().unwrap(), b"[]");
}

#[test]
fn slots_are_claimed_once_and_reusable_after_release() {
    let kv = MemoryKv::default();
    assert!(claim_slot(&kv, "username:a", b"u1").unwrap());
    assert!(!claim_slot(&kv, "username:a", b"u2").unwrap());
    release_slot(&kv, "username:a").unwrap();
    assert!(claim_slot(&kv, "username:a", b"u3").unwrap());
    assert_eq!(kv.get("username:a").unwrap().unwrap(), b"u3");
}

#[test]
fn outages_keep_their_kind_through_update_and_edit() {
    let e: UpdateError<()> = KvError::unavailable("redis down").into();
    assert_eq!(e.into_kv("job:1").kind, KvErrorKind::Unavailable);
    let e = UpdateError::<()>::Contended.into_kv("job:1");
    assert_eq!(e.kind, KvErrorKind::Unavailable);
    assert!(!e.message.contains('{') && e.message.contains("job:1"));
    let e = UpdateError::<()>::Missing.into_kv("job:1");
    assert_eq!(
        (e.kind, e.message.as_str()),
        (KvErrorKind::Failed, "job:1 does not exist")
    );
    assert!(!format!("{}", UpdateError::<()>::Store(KvError::new("x"))).contains("KvError"));
    let down = Down;
    let e = edit_json::<Vec<u8>>(&down, "idx", |v| v.push(1)).unwrap_err();
    assert_eq!(e.kind, KvErrorKind::Unavailable, "{e}");
    assert!(!e.message.contains("KvError") && !e.message.contains("Store("));
}

#[test]
fn store_error_texts_that_mean_try_again_are_unavailable() {
    for text in [
        "LOADING Redis is loading the dataset in memory",
        "BusyLoadingError: Redis is loading",
        "Connection refused (os error 111)",
        "Connection reset by peer",
        "database is locked",
        "attempt to write a readonly database",
        "disk I/O error",
        "unable to open database file",
        "TRYAGAIN Multiple keys request during rehashing of slot",
    ] {
        assert_eq!(
            KvError::from_text(text).kind,
            KvErrorKind::Unavailable,
            "{text}"
        );
    }
    for text in ["WRONGTYPE Operation against a key", "no such table: x"] {
        assert_eq!(KvError::from_text(text).kind, KvErrorKind::Failed, "{text}");
    }
}

/// A store that cannot be reached at all.
struct Down;
impl KvStore for Down {
    fn get(&self, _: &str) -> Result<Option<Vec<u8>>, KvError> {
        Err(KvError::unavailable("down"))
    }
    fn set(&self, _: &str, _: &[u8]) -> Result<(), KvError> {
        Err(KvError::unavailable("down"))
    }
    fn delete(&self, _: &str) -> Result<(), KvError> {
        Err(KvError::unavailable("down"))
    }
    fn exists(&self, _: &str) -> Result<bool, KvError> {
        Err(KvError::unavailable("down"))
    }
    fn increment(&self, _: &str, _: i64) -> Result<i64, KvError> {
        Err(KvError::unavailable("down"))
    }
    fn swap(&self, _: &str, _: Option<&[u8]>, _: &[u8]) -> Result<bool, KvError> {
        Err(KvError::unavailable("down"))
    }
}

#[test]
fn memory_swap_is_an_upsert_without_a_seen_value_like_spin() {
    let kv = MemoryKv::default();
    assert!(kv.swap("k", None, b"a").unwrap());
    assert!(kv.swap("k", None, b"b").unwrap());
    assert!(!kv.swap("k", Some(b"a"), b"c").unwrap());
    assert!(kv.swap("k", Some(b"b"), b"c").unwrap());
}

/// A store whose writes of one key fail while `failing` is set: the outage
/// that strikes between a creator's claim and its write.
struct FailingWrite<'a> {
    inner: &'a MemoryKv,
    key: &'a str,
    failing: std::cell::Cell<bool>,
}
impl KvStore for FailingWrite<'_> {
    fn get(&self, k: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(k)
    }
    fn set(&self, k: &str, v: &[u8]) -> Result<(), KvError> {
        if self.failing.get() && k == self.key {
            return Err(KvError::unavailable("connection reset"));
        }
        self.inner.set(k, v)
    }
    fn delete(&self, k: &str) -> Result<(), KvError> {
        self.inner.delete(k)
    }
    fn exists(&self, k: &str) -> Result<bool, KvError> {
        self.inner.exists(k)
    }
    fn increment(&self, k: &str, d: i64) -> Result<i64, KvError> {
        self.inner.increment(k, d)
    }
    fn swap(&self, k: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        self.inner.swap(k, seen, new)
    }
}

#[test]
fn a_claim_whose_write_was_lost_is_taken_over_after_a_minute() {
    let kv = MemoryKv::default();
    let store = FailingWrite {
        inner: &kv,
        key: "user:ann",
        failing: std::cell::Cell::new(true),
    };
    let t = 1_800_000_000;
    // The creator claims, then loses the store before its write.
    let lost = claim_create_at(&store, "user:ann", b"first", t).unwrap_err();
    assert_eq!(lost.kind, KvErrorKind::Unavailable);
    store.failing.set(false);
    // Right after: "try again" (503), never a second creator at once.
    for later in [0, 1, STUCK_CLAIM_TAKEOVER_S - 1] {
        let e = claim_create_at(&kv, "user:ann", b"x", t + later).unwrap_err();
        assert_eq!(e.kind, KvErrorKind::Unavailable, "{e}");
    }
    assert_eq!(kv.get("user:ann").unwrap(), None);
    // A minute after a waiter first saw it stuck, the next creator takes over.
    assert!(claim_create_at(&kv, "user:ann", b"second", t + STUCK_CLAIM_TAKEOVER_S).unwrap());
    assert_eq!(kv.get("user:ann").unwrap().as_deref(), Some(&b"second"[..]));
    // Exactly once: the key exists now.
    assert!(!claim_create_at(&kv, "user:ann", b"third", t + 1000).unwrap());
    // Deleted with its claim, the key is created afresh at once.
    delete_created(&kv, "user:ann").unwrap();
    assert!(claim_create_at(&kv, "user:ann", b"fourth", t + 1001).unwrap());
}

#[test]
fn of_waiters_racing_for_a_stuck_claim_one_takes_it_over() {
    let kv = MemoryKv::default();
    let t: u64 = 1_800_000_000;
    // A claim left without its key, seen stuck long ago.
    let marked = (t << CLAIM_COUNT_BITS) | 1;
    kv.set("claim:k", &marked.to_le_bytes()).unwrap();
    // Two waiters read the same counter; the first swap wins, the second's fails.
    let seen = kv.read_for_swap("claim:k").unwrap();
    assert!(take_over_stuck_claim(&kv, "claim:k", t + 600).unwrap());
    let new = kv.read_for_swap("claim:k").unwrap();
    assert_ne!(seen, new, "the takeover changes the counter");
    // The other waiter's swap, guarded by what it read, fails.
    assert!(
        !kv.swap("claim:k", seen.as_deref(), &marked.to_le_bytes())
            .unwrap()
    );
    // And the fresh mark makes later waiters wait a minute again.
    assert!(!take_over_stuck_claim(&kv, "claim:k", t + 601).unwrap());
    // Claimers keep counting in the low bits.
    assert_eq!(
        kv.increment("claim:k", 1).unwrap() as u64 & ((1 << CLAIM_COUNT_BITS) - 1),
        2
    );
}
