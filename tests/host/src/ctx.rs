//! Per-request store data and the host side of Spin's interfaces: Spin key-value
//! and variables (fermyon:spin@2.0.0), SQLite (`crate::sqlite`), wasi:keyvalue store + atomics + batch, WASI,
//! wasi-http with an outbound allow-list hook, and outbound Redis (`crate::redis`).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::kv::{CasSnapshot, KvBackend, KvFault, SwapOutcome};
use crate::outbound::OutboundPolicy;
use crate::platform::{OutboundBudget, Platform};

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-host",
    imports: {
        "fermyon:spin/redis": async | trappable,
        default: trappable,
    },
    with: {
        "fermyon:spin/redis.connection": crate::redis::RedisConn,
        "fermyon:spin/key-value.store": SpinStore,
        "fermyon:spin/sqlite.connection": crate::sqlite::SqliteConn,
        "wasi:keyvalue/store.bucket": Bucket,
        "wasi:keyvalue/atomics.cas": Cas,
    },
});

use fermyon::spin::{key_value, variables};
use wasi::keyvalue::{atomics, batch, store};

/// An open Spin store: its label.
pub struct SpinStore(String);
/// An open wasi:keyvalue bucket: its label.
pub struct Bucket(String);
/// A compare-and-swap handle.
pub struct Cas {
    store: String,
    key: String,
    seen: CasSnapshot,
}

/// What one component may do, resolved from the manifest at load time.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub component: String,
    pub key_value_stores: Vec<String>,
    /// `sqlite_databases`: the SQLite databases the component may open.
    pub sqlite_databases: Vec<String>,
    pub variables: BTreeMap<String, String>,
    pub outbound: OutboundPolicy,
}

pub struct Ctx {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub hooks: Hooks,
    pub grants: Arc<Grants>,
    pub kv: Arc<KvBackend>,
    /// The app's SQLite database `default` (`fermyon:spin/sqlite`).
    pub sqlite: Arc<crate::sqlite::SqliteDb>,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outbound HTTP: refused with `HttpRequestDenied` unless the component's
/// `allowed_outbound_hosts` names the destination, as Spin does, and refused
/// once the app has spent its platform's outbound requests for the hour.
pub struct Hooks {
    pub grants: Arc<Grants>,
    /// The app's outbound requests of the last hour (all components share it).
    pub budget: Arc<OutboundBudget>,
    pub platform: Platform,
}

type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

impl wasmtime_wasi_http::WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: IoFuture,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    IoFuture,
                )>,
            > + Send,
    > {
        if !self.grants.outbound.allows_uri(request.uri()) {
            eprintln!(
                "[host] {}: outbound request to {} denied (not in allowed_outbound_hosts)",
                self.grants.component,
                request.uri().authority().map(|a| a.as_str()).unwrap_or("?")
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if !self.budget.try_spend() {
            eprintln!(
                "[host] {}: outbound request to {} refused: {} allows no more outbound \
                 requests this hour",
                self.grants.component,
                request.uri().authority().map(|a| a.as_str()).unwrap_or("?"),
                self.platform.title()
            );
            // [inf] What Fermyon Cloud's guest sees past its 500 requests an hour is not
            // documented. `ConnectionRefused` is a transient network failure: the app
            // can report a provider it could not reach and try again later.
            // `HttpRequestDenied` would say the host is not allowed at all
            // (a configuration error, and untrue), so it is not used. The body is
            // taken first, as a refusing proxy would, so the guest's body writes
            // succeed and it sees the refusal as the response's error code.
            return Box::new(async move {
                use http_body_util::BodyExt;
                let _ = request.into_body().collect().await;
                Err(wasmtime_wasi_http::Error::ConnectionRefused)
            });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (resp, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((resp.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

fn spin_err(e: KvFault) -> key_value::Error {
    let KvFault::Other(m) = e;
    key_value::Error::Other(m)
}

fn wasi_err(e: KvFault) -> store::Error {
    let KvFault::Other(m) = e;
    store::Error::Other(m)
}

impl Ctx {
    fn may_open(&self, label: &str) -> bool {
        self.grants.key_value_stores.iter().any(|s| s == label)
    }
}

impl key_value::Host for Ctx {}

impl key_value::HostStore for Ctx {
    fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<SpinStore>, key_value::Error>> {
        if !self.may_open(&label) {
            return Ok(Err(key_value::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(SpinStore(label))?))
    }

    fn get(
        &mut self,
        s: Resource<SpinStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        let label = &self.table.get(&s)?.0;
        Ok(self.kv.get(label, &key).map_err(spin_err))
    }

    fn set(
        &mut self,
        s: Resource<SpinStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        let label = &self.table.get(&s)?.0;
        Ok(self.kv.set(label, &key, &value).map_err(spin_err))
    }

    fn delete(
        &mut self,
        s: Resource<SpinStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        let label = &self.table.get(&s)?.0;
        Ok(self.kv.delete(label, &key).map_err(spin_err))
    }

    fn exists(
        &mut self,
        s: Resource<SpinStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value::Error>> {
        let label = &self.table.get(&s)?.0;
        Ok(self.kv.exists(label, &key).map_err(spin_err))
    }

    fn get_keys(
        &mut self,
        s: Resource<SpinStore>,
    ) -> wasmtime::Result<Result<Vec<String>, key_value::Error>> {
        let label = &self.table.get(&s)?.0;
        Ok(self.kv.keys(label).map_err(spin_err))
    }

    fn drop(&mut self, s: Resource<SpinStore>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl variables::Host for Ctx {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        if crate::manifest::check_variable_name(&name).is_err() {
            return Ok(Err(variables::Error::InvalidName(name)));
        }
        Ok(match self.grants.variables.get(&name) {
            Some(v) => Ok(v.clone()),
            None => Err(variables::Error::Undefined(format!(
                "no variable for {:?}.{name:?}",
                self.grants.component
            ))),
        })
    }
}

impl store::Host for Ctx {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        if !self.may_open(&identifier) {
            return Ok(Err(store::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(Bucket(identifier))?))
    }
}

impl store::HostBucket for Ctx {
    fn get(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let label = &self.table.get(&b)?.0;
        Ok(self.kv.get(label, &key).map_err(wasi_err))
    }

    fn set(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = &self.table.get(&b)?.0;
        Ok(self.kv.set(label, &key, &value).map_err(wasi_err))
    }

    fn delete(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = &self.table.get(&b)?.0;
        Ok(self.kv.delete(label, &key).map_err(wasi_err))
    }

    fn exists(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let label = &self.table.get(&b)?.0;
        Ok(self.kv.exists(label, &key).map_err(wasi_err))
    }

    /// Spin returns every key in one response and no cursor.
    fn list_keys(
        &mut self,
        b: Resource<Bucket>,
        _cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let label = &self.table.get(&b)?.0;
        Ok(self
            .kv
            .keys(label)
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(wasi_err))
    }

    fn drop(&mut self, b: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl batch::Host for Ctx {
    fn get_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<crate::kv::KeyValue>, store::Error>> {
        let label = &self.table.get(&b)?.0;
        Ok(self.kv.get_many(label, &keys).map_err(wasi_err))
    }

    fn set_many(
        &mut self,
        b: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = &self.table.get(&b)?.0;
        for (k, v) in &key_values {
            if let Err(e) = self.kv.set(label, k, v) {
                return Ok(Err(wasi_err(e)));
            }
        }
        Ok(Ok(()))
    }

    fn delete_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = &self.table.get(&b)?.0;
        for k in &keys {
            if let Err(e) = self.kv.delete(label, k) {
                return Ok(Err(wasi_err(e)));
            }
        }
        Ok(Ok(()))
    }
}

impl atomics::Host for Ctx {
    fn increment(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        let label = self.table.get(&b)?.0.clone();
        Ok(self.kv.increment(&label, &key, delta).map_err(wasi_err))
    }

    fn swap(
        &mut self,
        c: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(c)?;
        match self.kv.swap(&cas.store, &cas.key, &cas.seen, &value) {
            Ok(SwapOutcome::Swapped) => Ok(Ok(())),
            Ok(SwapOutcome::Conflict) => {
                let fresh = self.table.push(Cas {
                    store: cas.store,
                    key: cas.key,
                    seen: CasSnapshot::Unread,
                })?;
                Ok(Err(atomics::CasError::CasFailed(fresh)))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
        }
    }
}

impl atomics::HostCas for Ctx {
    fn new(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        let label = self.table.get(&b)?.0.clone();
        Ok(Ok(self.table.push(Cas {
            store: label,
            key,
            seen: CasSnapshot::Unread,
        })?))
    }

    fn current(
        &mut self,
        c: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (store, key) = {
            let cas = self.table.get(&c)?;
            (cas.store.clone(), cas.key.clone())
        };
        match self.kv.get(&store, &key) {
            Ok(v) => {
                self.table.get_mut(&c)?.seen = CasSnapshot::Read(v.clone());
                Ok(Ok(v))
            }
            Err(e) => Ok(Err(wasi_err(e))),
        }
    }

    fn drop(&mut self, c: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
