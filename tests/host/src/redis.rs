//! Outbound Redis (`fermyon:spin/redis@2.0.0`) as Spin implements it
//! (`crates/factor-outbound-redis`): one multiplexed connection per `open`,
//! refused with `invalid-address` unless `allowed_outbound_hosts` names the
//! address, client and server failures as `other(text)`, and `execute`
//! flattening nested replies into one list.

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, FromRedisValue, Value};
use wasmtime::component::Resource;

use crate::ctx::Ctx;
use crate::ctx::fermyon::spin::redis::{self as wit, Error, RedisParameter, RedisResult};

/// An open connection, as the guest's `connection` resource.
pub struct RedisConn(MultiplexedConnection);

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

/// `scheme://[user:pass@]host[:port][/db]` → (scheme, host, port).
fn destination(address: &str) -> Option<(&str, &str, Option<u16>)> {
    let (scheme, rest) = address.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p.parse().ok()?)),
        _ => (host_port, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some((scheme, host, port))
}

impl Ctx {
    fn redis_conn(&mut self, c: &Resource<RedisConn>) -> wasmtime::Result<MultiplexedConnection> {
        Ok(self.table.get(c)?.0.clone())
    }
}

impl wit::Host for Ctx {}

impl wit::HostConnection for Ctx {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConn>, Error>> {
        let allowed = destination(&address)
            .is_some_and(|(scheme, host, port)| self.grants.outbound.allows(scheme, host, port));
        if !allowed {
            eprintln!(
                "[host] {}: outbound Redis connection denied (not in allowed_outbound_hosts)",
                self.grants.component
            );
            return Ok(Err(Error::InvalidAddress));
        }
        let client = match redis::Client::open(address.as_str()) {
            Ok(c) => c,
            Err(_) => return Ok(Err(Error::InvalidAddress)),
        };
        match client.get_multiplexed_async_connection().await {
            Ok(conn) => Ok(Ok(self.table.push(RedisConn(conn))?)),
            Err(e) => Ok(Err(other(e))),
        }
    }

    async fn publish(
        &mut self,
        c: Resource<RedisConn>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut conn = self.redis_conn(&c)?;
        Ok(conn
            .publish::<_, _, ()>(&channel, &payload)
            .await
            .map_err(other))
    }

    async fn get(
        &mut self,
        c: Resource<RedisConn>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let mut conn = self.redis_conn(&c)?;
        Ok(conn.get::<_, Option<Vec<u8>>>(&key).await.map_err(other))
    }

    async fn set(
        &mut self,
        c: Resource<RedisConn>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut conn = self.redis_conn(&c)?;
        Ok(conn.set::<_, _, ()>(&key, &value).await.map_err(other))
    }

    async fn incr(
        &mut self,
        c: Resource<RedisConn>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let mut conn = self.redis_conn(&c)?;
        Ok(conn.incr(&key, 1).await.map_err(other))
    }

    async fn del(
        &mut self,
        c: Resource<RedisConn>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut conn = self.redis_conn(&c)?;
        Ok(conn.del(&keys).await.map_err(other))
    }

    async fn sadd(
        &mut self,
        c: Resource<RedisConn>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut conn = self.redis_conn(&c)?;
        Ok(conn.sadd(&key, &values).await.map_err(|e| {
            if e.kind() == redis::ErrorKind::TypeError {
                Error::TypeError
            } else {
                other(e)
            }
        }))
    }

    async fn smembers(
        &mut self,
        c: Resource<RedisConn>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let mut conn = self.redis_conn(&c)?;
        Ok(conn.smembers(&key).await.map_err(other))
    }

    async fn srem(
        &mut self,
        c: Resource<RedisConn>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut conn = self.redis_conn(&c)?;
        Ok(conn.srem(&key, &values).await.map_err(other))
    }

    async fn execute(
        &mut self,
        c: Resource<RedisConn>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let mut conn = self.redis_conn(&c)?;
        let mut cmd = redis::cmd(&command);
        for a in arguments {
            match a {
                RedisParameter::Int64(v) => cmd.arg(v),
                RedisParameter::Binary(v) => cmd.arg(v),
            };
        }
        Ok(cmd
            .query_async::<Flattened>(&mut conn)
            .await
            .map(|f| f.0)
            .map_err(other))
    }

    async fn drop(&mut self, c: Resource<RedisConn>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

/// A reply as Spin hands it to the guest: arrays and sets flattened in
/// order, `OK` and simple strings as `status`, booleans as 0/1, doubles and
/// big numbers as their decimal text; maps, attributes, verbatim strings and
/// pushes are refused, as Spin refuses them.
struct Flattened(Vec<RedisResult>);

impl FromRedisValue for Flattened {
    fn from_redis_value(value: &Value) -> redis::RedisResult<Self> {
        fn unsupported(what: &str) -> redis::RedisError {
            redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "Could not convert Redis response",
                format!("Redis {what} type is not supported"),
            ))
        }
        fn append(out: &mut Vec<RedisResult>, value: &Value) -> redis::RedisResult<()> {
            match value {
                Value::Nil => out.push(RedisResult::Nil),
                Value::Int(v) => out.push(RedisResult::Int64(*v)),
                Value::BulkString(b) => out.push(RedisResult::Binary(b.clone())),
                Value::SimpleString(s) => out.push(RedisResult::Status(s.clone())),
                Value::Okay => out.push(RedisResult::Status("OK".into())),
                Value::Array(items) | Value::Set(items) => {
                    return items.iter().try_for_each(|v| append(out, v));
                }
                Value::Double(v) => out.push(RedisResult::Binary(v.to_string().into_bytes())),
                Value::Boolean(v) => out.push(RedisResult::Int64(i64::from(*v))),
                Value::BigNumber(v) => out.push(RedisResult::Binary(v.to_string().into_bytes())),
                Value::Map(_) => return Err(unsupported("Map")),
                Value::Attribute { .. } => return Err(unsupported("Attribute")),
                Value::VerbatimString { .. } => {
                    return Err(unsupported("string with format attribute"));
                }
                Value::Push { .. } => return Err(unsupported("Pub/Sub")),
                Value::ServerError(e) => {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::ResponseError,
                        "Server error",
                        format!("{e:?}"),
                    )));
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        append(&mut out, value)?;
        Ok(Flattened(out))
    }
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn destinations_leave_out_credentials_and_database() {
        assert_eq!(
            destination("redis://:s3cret@127.0.0.1:6380/2"),
            Some(("redis", "127.0.0.1", Some(6380)))
        );
        assert_eq!(destination("redis://cache"), Some(("redis", "cache", None)));
        assert_eq!(destination("redis://"), None);
        assert_eq!(destination("cache:6379"), None);
    }
}
