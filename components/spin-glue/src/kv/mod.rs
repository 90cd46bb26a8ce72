//! The app's one key-value store, as the domain's [`KvStore`]: Spin's embedded
//! `default` store unless the variable `redis_url` names a shared Redis.
//!
//! Which one is an installation's choice, the same for every component: the
//! embedded store for one `spin up`; Redis (through outbound Redis, with
//! atomic compare-and-swap on the server) when several instances serve one
//! installation.

mod embedded;
mod redis;

use cloudtuner_domain::kernel::error::ApiError;
use cloudtuner_domain::kernel::kv::{KvError, KvStore};

use embedded::SpinKv;
use redis::RedisKv;

use crate::settings::variable;

/// The prefix of every key in a shared Redis unless `redis_key_prefix` says
/// otherwise: one Redis can hold several installations.
pub const DEFAULT_REDIS_PREFIX: &str = "cloudtuner:";

pub enum AppKv {
    Embedded(SpinKv),
    Redis(RedisKv),
}

impl AppKv {
    /// Opens the store the variables select.
    pub fn open() -> Result<Self, ApiError> {
        match variable("redis_url") {
            None => Ok(AppKv::Embedded(SpinKv::open_default()?)),
            Some(url) => {
                let prefix =
                    variable("redis_key_prefix").unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into());
                Ok(AppKv::Redis(RedisKv::open(url.trim(), &prefix)?))
            }
        }
    }

    /// What the store is, for the health report: `embedded` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self {
            AppKv::Embedded(_) => "embedded",
            AppKv::Redis(_) => "redis",
        }
    }

    fn inner(&self) -> &dyn KvStore {
        match self {
            AppKv::Embedded(kv) => kv,
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
