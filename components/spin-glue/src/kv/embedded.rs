//! Spin's embedded `default` key-value store (SQLite under `spin up`) as the domain's [`KvStore`].

use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::kv::{KvError, KvStore};
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue;
use std::cell::{OnceCell, RefCell};

/// Spin's `default` key-value store: plain operations through
/// `fermyon:spin/key-value`, atomics through `wasi:keyvalue` on the same store.
struct Guarded {
    key: String,
    seen: Option<Vec<u8>>,
    cas: keyvalue::atomics::Cas,
}

pub struct SpinKv {
    store: Store,
    bucket: OnceCell<keyvalue::store::Bucket>,
    /// The CAS handle opened by the last `read_for_swap`, with the key and
    /// the value it saw, used by `swap`.
    cas: RefCell<Option<Guarded>>,
}

impl SpinKv {
    pub fn open_default() -> Result<Self, ApiError> {
        Store::open_default()
            .map(|store| SpinKv {
                store,
                bucket: OnceCell::new(),
                cas: RefCell::new(None),
            })
            .map_err(|e| ApiError::from(kv_err(e)))
    }

    fn bucket(&self) -> Result<&keyvalue::store::Bucket, KvError> {
        if let Some(b) = self.bucket.get() {
            return Ok(b);
        }
        let b = keyvalue::store::open("default").map_err(|e| wasi_err(&e))?;
        Ok(self.bucket.get_or_init(|| b))
    }
}

/// Spin reports its SQLite file's troubles (locked, read-only, I/O) as text:
/// those are an outage (503, retry), anything else a failure.
fn kv_err(e: spin_sdk::key_value::Error) -> KvError {
    use spin_sdk::key_value::Error;
    // The generated `Display` is the variant's debug text: say it in words.
    match e {
        Error::Other(m) => KvError::from_text(format!("the embedded key-value store: {m}")),
        Error::StoreTableFull => {
            KvError::unavailable("the embedded key-value store has too many stores open")
        }
        Error::NoSuchStore => KvError::new("the key-value store `default` does not exist"),
        Error::AccessDenied => KvError::new(
            "this component may not use the key-value store `default` (key_value_stores in spin.toml)",
        ),
    }
}

/// A `wasi:keyvalue` error as the domain's error: an outage when its words
/// say so ([`KvError::from_text`]).
fn wasi_err(e: &keyvalue::store::Error) -> KvError {
    match e {
        keyvalue::store::Error::Other(_) => {
            KvError::from_text(format!("the embedded key-value store: {}", in_words(e)))
        }
        _ => KvError::new(in_words(e)),
    }
}

/// A `wasi:keyvalue` error as an operator reads it.
fn in_words(e: &keyvalue::store::Error) -> String {
    match e {
        keyvalue::store::Error::NoSuchStore => "the key-value store `default` does not exist".into(),
        keyvalue::store::Error::AccessDenied => {
            "this component may not use the key-value store `default` (key_value_stores in spin.toml)"
                .into()
        }
        keyvalue::store::Error::Other(m) => m.clone(),
    }
}

impl KvStore for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.store.get(key).map_err(kv_err)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.store.set(key, value).map_err(kv_err)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.store.delete(key).map_err(kv_err)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.store.exists(key).map_err(kv_err)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        keyvalue::atomics::increment(self.bucket()?, key, delta).map_err(|e| wasi_err(&e))
    }
    /// One host call (`wasi:keyvalue/batch`, one query on Spin's SQLite) for
    /// several keys. Spin answers only the keys that exist, in its own order,
    /// so values are matched back to the keys asked for.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.len() < 2 {
            return keys.iter().map(|k| self.get(k)).collect();
        }
        let mut found: std::collections::HashMap<String, Vec<u8>> =
            keyvalue::batch::get_many(self.bucket()?, keys)
                .map_err(|e| wasi_err(&e))?
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect();
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }
    fn read_for_swap(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let cas = keyvalue::atomics::Cas::new(self.bucket()?, key).map_err(|e| wasi_err(&e))?;
        let current = cas.current().map_err(|e| wasi_err(&e))?;
        *self.cas.borrow_mut() = Some(Guarded {
            key: key.to_string(),
            seen: current.clone(),
            cas,
        });
        Ok(current)
    }
    /// The trait's one rule: `seen` must be what `read_for_swap(key)` just
    /// returned, and the swap happens only if the store still holds it. Spin's
    /// CAS handle is what guards it here, so a `seen` that does not match the
    /// handle's snapshot is refused rather than silently ignored.
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        let Some(seen) = seen else {
            return self.set(key, new).map(|()| true);
        };
        match self.cas.borrow_mut().take() {
            Some(g) if g.key == key && g.seen.as_deref() == Some(seen) => {
                match keyvalue::atomics::swap(g.cas, new) {
                    Ok(()) => Ok(true),
                    Err(keyvalue::atomics::CasError::CasFailed(_)) => Ok(false),
                    Err(keyvalue::atomics::CasError::StoreError(e)) => Err(wasi_err(&e)),
                }
            }
            _ => Err(KvError::new(format!(
                "swap of {key} without a matching read_for_swap"
            ))),
        }
    }
}
