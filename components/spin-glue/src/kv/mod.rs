//! The app's one key-value store, as the domain's [`KvStore`]: the build's
//! local store unless the variable `redis_url` names a shared Redis.
//!
//! Which one is an installation's choice, the same for every component: the
//! local store for one instance; Redis (through outbound Redis, with atomic
//! compare-and-swap on the server) when several instances serve one
//! installation.
//!
//! The local store is chosen when building, because a host refuses a
//! component that imports an interface it lacks: feature `embedded-kv`
//! (`spin up`, SpinKube: Spin's `default` store with `wasi:keyvalue` atomics
//! and batch), feature `sqlite-kv` (Fermyon Cloud: Spin's SQLite, no
//! `wasi:keyvalue` at all), or neither (Akamai Functions: Redis only). With
//! both, the embedded store wins (the default build's behaviour).

#[cfg(feature = "embedded-kv")]
mod embedded;
mod redis;
#[cfg(feature = "sqlite-kv")]
mod sqlite;

use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::kv::{KvError, KvStore};

#[cfg(feature = "embedded-kv")]
use embedded::SpinKv;
use redis::RedisKv;
#[cfg(feature = "sqlite-kv")]
use sqlite::SqliteKv;

use crate::settings::variable;

/// The prefix of every key in a shared Redis unless `redis_key_prefix` says
/// otherwise: one Redis can hold several installations.
pub const DEFAULT_REDIS_PREFIX: &str = "cloudtuner:";

pub enum AppKv {
    #[cfg(feature = "embedded-kv")]
    Embedded(SpinKv),
    #[cfg(feature = "sqlite-kv")]
    Sqlite(SqliteKv),
    Redis(RedisKv),
}

impl AppKv {
    /// Opens the store the variables select.
    pub fn open() -> Result<Self, ApiError> {
        match variable("redis_url") {
            None => Self::open_local(),
            Some(url) => {
                let prefix =
                    variable("redis_key_prefix").unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into());
                Ok(AppKv::Redis(RedisKv::open(url.trim(), &prefix)?))
            }
        }
    }

    /// The store this build keeps an installation's data in without a Redis.
    #[cfg(feature = "embedded-kv")]
    fn open_local() -> Result<Self, ApiError> {
        Ok(AppKv::Embedded(SpinKv::open_default()?))
    }

    #[cfg(all(feature = "sqlite-kv", not(feature = "embedded-kv")))]
    fn open_local() -> Result<Self, ApiError> {
        Ok(AppKv::Sqlite(SqliteKv::open_default()?))
    }

    #[cfg(not(any(feature = "embedded-kv", feature = "sqlite-kv")))]
    fn open_local() -> Result<Self, ApiError> {
        Err(ApiError::storage(
            "this build keeps its data only in a shared Redis: set the variables redis_url and \
             redis_host (it was built without a local store, e.g. for Akamai Functions)",
        ))
    }

    /// The store [`AppKv::open`] opens (or tried to), named as
    /// [`AppKv::backend`] names it: for reporting a store that did not open.
    pub fn configured_backend() -> &'static str {
        if variable("redis_url").is_some() {
            "redis"
        } else if cfg!(feature = "embedded-kv") {
            "embedded"
        } else if cfg!(feature = "sqlite-kv") {
            "sqlite"
        } else {
            "none"
        }
    }

    /// What the store is, for the health report: `embedded`, `sqlite` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "embedded-kv")]
            AppKv::Embedded(_) => "embedded",
            #[cfg(feature = "sqlite-kv")]
            AppKv::Sqlite(_) => "sqlite",
            AppKv::Redis(_) => "redis",
        }
    }

    fn inner(&self) -> &dyn KvStore {
        match self {
            #[cfg(feature = "embedded-kv")]
            AppKv::Embedded(kv) => kv,
            #[cfg(feature = "sqlite-kv")]
            AppKv::Sqlite(kv) => kv,
            AppKv::Redis(kv) => kv,
        }
    }
}

impl KvStore for AppKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner().get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.inner().set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.inner().delete(key)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.inner().exists(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.inner().increment(key, delta)
    }
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        self.inner().swap(key, seen, new)
    }
    fn read_for_swap(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner().read_for_swap(key)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.inner().get_many(keys)
    }
    fn create(&self, key: &str, value: &[u8]) -> Result<bool, KvError> {
        self.inner().create(key, value)
    }
    fn delete_created(&self, key: &str) -> Result<(), KvError> {
        self.inner().delete_created(key)
    }
}
