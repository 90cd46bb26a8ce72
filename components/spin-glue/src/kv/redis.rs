//! A shared Redis, reached through Spin's outbound Redis interface
//! (`fermyon:spin/redis@2.0.0`), as the domain's [`KvStore`]: the store for
//! several Spin instances serving one installation.
//!
//! Every guarantee is made on the server, never by the connection: a
//! compare-and-swap is one Lua script (`EVAL`), a create-if-absent is
//! `SET NX`, a counter is `INCRBY`, a page of records is one `MGET`. (Spin's
//! own `type = "redis"` key-value backend cannot give these; see
//! [`cloudtuner_domain::kernel::kv::CAS_BROKEN`].)

use cloudtuner_domain::kernel::kv::{KvError, KvStore};
use spin_sdk::redis::{Connection, Error, RedisParameter, RedisResult};

/// GET-compare-SET in one atomic step: Redis runs a script with no other
/// command in between. A missing key reads as `false`, so it never matches.
const SWAP_SCRIPT: &[u8] = b"if redis.call('GET', KEYS[1]) == ARGV[1] then \
    redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";

pub struct RedisKv {
    conn: Connection,
    /// Namespaces this installation's keys, so one Redis can hold several.
    prefix: String,
    /// Where the store is, without credentials, for messages.
    address: String,
}

impl RedisKv {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`).
    pub fn open(url: &str, prefix: &str) -> Result<Self, KvError> {
        let address = without_credentials(url);
        let conn = Connection::open(url).map_err(|e| match e {
            Error::InvalidAddress => KvError::new(format!(
                "redis_url {address} is not a valid Redis address, or its host is not the one \
                 the variable redis_host allows (set redis_host to the host:port of redis_url)"
            )),
            e => classify(&address, "connect", e),
        })?;
        Ok(RedisKv {
            conn,
            prefix: prefix.to_string(),
            address,
        })
    }

    fn key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    fn fail(&self, what: &str) -> impl Fn(Error) -> KvError + '_ {
        let what = what.to_string();
        move |e| classify(&self.address, &what, e)
    }

    /// One command through `execute`, with the store's key prefix applied by
    /// the caller.
    fn run(&self, command: &str, args: Vec<RedisParameter>) -> Result<Vec<RedisResult>, KvError> {
        self.conn
            .execute(command, &args)
            .map_err(self.fail(command))
    }

    fn one_int(&self, command: &str, args: Vec<RedisParameter>) -> Result<i64, KvError> {
        match self.run(command, args)?.as_slice() {
            [RedisResult::Int64(n)] => Ok(*n),
            other => Err(unexpected(command, other)),
        }
    }
}

impl KvStore for RedisKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = String::from_utf8(self.key(key)).expect("keys are UTF-8");
        self.conn.get(&key).map_err(self.fail("GET"))
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let key = String::from_utf8(self.key(key)).expect("keys are UTF-8");
        self.conn.set(&key, value).map_err(self.fail("SET"))
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.run("DEL", vec![RedisParameter::Binary(self.key(key))])
            .map(drop)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.one_int("EXISTS", vec![RedisParameter::Binary(self.key(key))])? > 0)
    }
    /// Counters are decimal text in Redis (8-byte little-endian on Spin's
    /// embedded store); the domain only ever reads them through `increment`.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.one_int(
            "INCRBY",
            vec![
                RedisParameter::Binary(self.key(key)),
                RedisParameter::Int64(delta),
            ],
        )
    }
    fn swap(&self, key: &str, seen: Option<&[u8]>, new: &[u8]) -> Result<bool, KvError> {
        let Some(seen) = seen else {
            // The trait's rule for every store: no expected value is an upsert.
            return self.set(key, new).map(|()| true);
        };
        let swapped = self.one_int(
            "EVAL",
            vec![
                RedisParameter::Binary(SWAP_SCRIPT.to_vec()),
                RedisParameter::Int64(1),
                RedisParameter::Binary(self.key(key)),
                RedisParameter::Binary(seen.to_vec()),
                RedisParameter::Binary(new.to_vec()),
            ],
        )?;
        Ok(swapped == 1)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let args = keys
            .iter()
            .map(|k| RedisParameter::Binary(self.key(k)))
            .collect();
        let values = self.run("MGET", args)?;
        if values.len() != keys.len() {
            return Err(unexpected("MGET", &values));
        }
        values
            .into_iter()
            .map(|v| match v {
                RedisResult::Binary(b) => Ok(Some(b)),
                RedisResult::Nil => Ok(None),
                other => Err(unexpected("MGET", &[other])),
            })
            .collect()
    }
    /// `SET NX`: the server creates the key for exactly one caller.
    fn create(&self, key: &str, value: &[u8]) -> Result<bool, KvError> {
        let args = vec![
            RedisParameter::Binary(self.key(key)),
            RedisParameter::Binary(value.to_vec()),
            RedisParameter::Binary(b"NX".to_vec()),
        ];
        match self.run("SET", args)?.as_slice() {
            [RedisResult::Status(s)] if s == "OK" => Ok(true),
            [RedisResult::Nil] => Ok(false),
            other => Err(unexpected("SET NX", other)),
        }
    }
    fn delete_created(&self, key: &str) -> Result<(), KvError> {
        self.delete(key)
    }
}

/// A connection or server failure in words, as a kind the API can answer
/// with: a Redis that cannot be reached is 503 `storage_unavailable` (try
/// again), anything else is the server's error.
fn classify(address: &str, what: &str, e: Error) -> KvError {
    match e {
        Error::TooManyConnections => KvError::unavailable(format!(
            "the shared Redis at {address} has no free connection right now"
        )),
        Error::TypeError => KvError::new(format!("Redis {what}: a key holds the wrong type")),
        Error::InvalidAddress => KvError::new(format!("Redis {what}: invalid address {address}")),
        Error::Other(message) if is_unreachable(&message) => KvError::unavailable(format!(
            "the shared Redis at {address} cannot be reached ({what}: {message})"
        )),
        Error::Other(message) => KvError::new(format!("Redis {what} failed: {message}")),
    }
}

/// Whether a Redis client error means "not reachable" (refused, reset,
/// closed, timed out, `LOADING` its data after a restart) rather than a
/// refused command: the domain's one list of such words.
fn is_unreachable(message: &str) -> bool {
    cloudtuner_domain::kernel::kv::is_unavailable_text(message)
}

fn unexpected(command: &str, got: &[RedisResult]) -> KvError {
    let shape: Vec<&str> = got
        .iter()
        .map(|r| match r {
            RedisResult::Nil => "nil",
            RedisResult::Status(_) => "status",
            RedisResult::Int64(_) => "integer",
            RedisResult::Binary(_) => "bytes",
        })
        .collect();
    KvError::new(format!(
        "Redis {command} answered an unexpected reply ({})",
        shape.join(", ")
    ))
}

/// `redis://user:secret@host:6379/0` → `redis://host:6379/0`: a password
/// never reaches a message.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            format!("{scheme}://{rest}")
        }
        None => "(unparsable redis_url)".to_string(),
    }
}
