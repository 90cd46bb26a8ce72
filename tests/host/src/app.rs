//! Loads a Spin app from its manifest and serves requests the way Spin does:
//! route, add `spin-*` headers, instantiate a fresh component instance per
//! request, and enforce each component's grants.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::cli::OutputFile;
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::HostError;
use crate::cron::SpinCronPre;
use crate::ctx::{Ctx, Grants, Hooks, SpinHost};
use crate::kv::KvBackend;
use crate::manifest::{FileMount, Manifest, expand_template};
use crate::outbound::OutboundPolicy;
use crate::platform::{Limits, OutboundBudget, Platform};
use crate::router::Router;

pub type Body = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// How to run an app.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Path of `spin.toml`; component sources are relative to its directory.
    pub manifest: PathBuf,
    /// Application variable values (what `SPIN_VARIABLE_<NAME>` sets for Spin).
    pub variables: BTreeMap<String, String>,
    /// The SQLite file behind every key-value store.
    pub kv_path: PathBuf,
    /// Where each component's stdout/stderr go (`<id>_stdout.txt`, like Spin).
    pub log_dir: PathBuf,
    /// Replaces the host folder of `files` mounts by guest path (tests mount
    /// their own dataset folders where spin.toml mounts `./datasets`).
    pub mount_overrides: BTreeMap<String, PathBuf>,
    /// The platform the host acts as (what it links, whether cron runs).
    pub platform: Platform,
    /// The limits it enforces (the platform's, or smaller ones in tests).
    pub limits: Limits,
}

impl HostConfig {
    /// A config whose state (KV file, logs) lives in `state_dir`.
    pub fn new(manifest: impl Into<PathBuf>, state_dir: &Path) -> Self {
        Self {
            manifest: manifest.into(),
            variables: BTreeMap::new(),
            kv_path: state_dir.join("sqlite_key_value.db"),
            log_dir: state_dir.join("logs"),
            mount_overrides: BTreeMap::new(),
            platform: Platform::Spin,
            limits: Limits::default(),
        }
    }

    /// Acts as `platform`, with its documented limits.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self.limits = platform.limits();
        self
    }

    /// Enforces `limits` instead (tests shrink them to trip them quickly).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn mount(mut self, guest: &str, host: impl Into<PathBuf>) -> Self {
        self.mount_overrides.insert(guest.to_string(), host.into());
        self
    }

    pub fn variable(mut self, name: &str, value: impl Into<String>) -> Self {
        self.variables.insert(name.to_string(), value.into());
        self
    }

    /// Adds every `SPIN_VARIABLE_<NAME>` from the environment, as Spin does.
    pub fn variables_from_env(mut self) -> Self {
        for (k, v) in std::env::vars() {
            if let Some(name) = k.strip_prefix("SPIN_VARIABLE_") {
                self.variables.insert(name.to_ascii_lowercase(), v);
            }
        }
        self
    }
}

struct Loaded {
    grants: Arc<Grants>,
    proxy: Option<ProxyPre<Ctx>>,
    cron: Option<SpinCronPre<Ctx>>,
    mounts: Vec<(PathBuf, String)>,
    environment: Vec<(String, String)>,
    stdout: OutputFile,
    stderr: OutputFile,
}

struct Inner {
    manifest: Manifest,
    router: Router,
    components: HashMap<String, Loaded>,
    kv: Arc<KvBackend>,
    sqlite: Arc<crate::sqlite::SqliteDb>,
    sqlite_path: PathBuf,
    log_dir: PathBuf,
    /// The application variables as resolved (given values over defaults).
    variables: BTreeMap<String, String>,
    platform: Platform,
    limits: Limits,
    budget: Arc<OutboundBudget>,
}

/// A running app. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
    /// Headers [`App::request`] adds unless the call sets them (tests use it
    /// to act as one caller).
    default_headers: Vec<(String, String)>,
}

/// A response with its body read in full.
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One engine for the process: compiled components are tied to it.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&Config::new()).expect("wasmtime engine"))
}

/// Compiles a component once per process, and once per build on disk: the
/// machine code is cached next to the `.wasm` keyed by its SHA-256, because
/// Cranelift takes 0.2–2 s per component and every test binary loads them all.
pub fn compile(path: &Path) -> Result<Component, HostError> {
    static MEMO: OnceLock<Mutex<HashMap<[u8; 32], Component>>> = OnceLock::new();
    let bytes = std::fs::read(path).map_err(|e| {
        HostError::Component(format!(
            "cannot read {} ({e}); build the components first: \
             cloudtuner-host --build (or spin build) runs spin.toml's build commands",
            path.display()
        ))
    })?;
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(c) = memo.lock().unwrap_or_else(|p| p.into_inner()).get(&hash) {
        return Ok(c.clone());
    }
    let engine = engine();
    let cached = path.with_extension(format!("{}.cwasm", &hex::encode(hash)[..16]));
    // SAFETY: the file is one this function wrote from this engine's own
    // precompile; wasmtime checks version and configuration compatibility.
    let component = match unsafe { Component::deserialize_file(engine, &cached) } {
        Ok(c) => c,
        Err(_) => {
            let compiled = engine
                .precompile_component(&bytes)
                .map_err(|e| HostError::Component(format!("{}: {e}", path.display())))?;
            let _ = std::fs::write(&cached, &compiled);
            // SAFETY: bytes just produced by this engine.
            unsafe { Component::deserialize(engine, &compiled) }
                .map_err(|e| HostError::Component(format!("{}: {e}", path.display())))?
        }
    };
    memo.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(hash, component.clone());
    Ok(component)
}

fn exports(component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine())
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The component's imports and exports, for inspecting what it asks of a host.
pub fn interface_names(component: &Component) -> (Vec<String>, Vec<String>) {
    let imports = component
        .component_type()
        .imports(engine())
        .map(|(name, _)| name.to_string())
        .collect();
    (imports, exports(component))
}

fn resolve_variables(
    manifest: &Manifest,
    provided: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, HostError> {
    let mut values = BTreeMap::new();
    for (name, decl) in &manifest.variables {
        match provided.get(name).or(decl.default.as_ref()) {
            Some(v) => {
                values.insert(name.clone(), v.clone());
            }
            None if decl.required => {
                return Err(HostError::Manifest(format!(
                    "required variable {name} has no value (set SPIN_VARIABLE_{})",
                    name.to_ascii_uppercase()
                )));
            }
            None => {}
        }
    }
    Ok(values)
}

fn log_file(dir: &Path, name: &str) -> Result<OutputFile, HostError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .map_err(|e| HostError::Io(format!("log {name}: {e}")))?;
    Ok(OutputFile::new(file))
}

impl App {
    pub fn load(config: &HostConfig) -> Result<Self, HostError> {
        let manifest = Manifest::load(&config.manifest)?;
        let base_dir = config
            .manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if let Some(cron) = manifest.trigger.cron.first()
            && !config.platform.runs_cron()
        {
            return Err(config.platform.no_cron(&cron.component));
        }
        config.platform.check_stores(
            &manifest
                .component
                .iter()
                .map(|(id, c)| (id.clone(), c.key_value_stores.clone()))
                .collect::<Vec<_>>(),
        )?;
        let values = resolve_variables(&manifest, &config.variables)?;
        let variables = values.clone();
        let router = Router::build(
            manifest
                .trigger
                .http
                .iter()
                .map(|t| (t.route.as_str(), t.component.as_str())),
        )?;
        if let Some(dir) = config.kv_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| HostError::Io(e.to_string()))?;
        }
        std::fs::create_dir_all(&config.log_dir).map_err(|e| HostError::Io(e.to_string()))?;
        let kv = Arc::new(
            KvBackend::open(&config.kv_path).map_err(|e| HostError::Io(format!("{e:?}")))?,
        );

        // Spin's `.spin/sqlite_db.db`, next to the key-value file.
        let sqlite = Arc::new(
            crate::sqlite::SqliteDb::open(&config.kv_path.with_file_name("sqlite_db.db"))
                .map_err(|e| HostError::Io(format!("sqlite: {e}")))?,
        );

        let mut linker: Linker<Ctx> = Linker::new(engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(HostError::wasm)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(HostError::wasm)?;
        SpinHost::add_to_linker::<_, wasmtime::component::HasSelf<Ctx>>(&mut linker, |c| c)
            .map_err(HostError::wasm)?;

        let compiled = manifest
            .component
            .iter()
            .map(|(id, decl)| Ok((id.clone(), compile(&base_dir.join(&decl.source))?)))
            .collect::<Result<HashMap<_, _>, HostError>>()?;
        // The host links more than the platform provides: check by name first.
        config.platform.check_imports(
            &manifest
                .component
                .keys()
                .map(|id| (id.clone(), interface_names(&compiled[id]).0))
                .collect::<Vec<_>>(),
        )?;

        let mut components = HashMap::new();
        for (id, decl) in &manifest.component {
            let component = &compiled[id];
            let outbound = decl
                .allowed_outbound_hosts
                .iter()
                .map(|h| expand_template(h, &values))
                .collect::<Result<Vec<_>, _>>()?;
            let variables = decl
                .variables
                .iter()
                .map(|(k, t)| Ok((k.clone(), expand_template(t, &values)?)))
                .collect::<Result<BTreeMap<_, _>, HostError>>()?;
            let grants = Arc::new(Grants {
                component: id.clone(),
                key_value_stores: decl.key_value_stores.clone(),
                sqlite_databases: decl.sqlite_databases.clone(),
                variables,
                outbound: OutboundPolicy::parse(&outbound)?,
            });
            let mounts = decl
                .files
                .iter()
                .map(|f| match f {
                    FileMount::Path(p) => (base_dir.join(p), format!("/{p}")),
                    FileMount::Mapping {
                        source,
                        destination,
                    } => (base_dir.join(source), destination.clone()),
                })
                .map(|(host, guest): (PathBuf, String)| {
                    let host = config.mount_overrides.get(&guest).cloned().unwrap_or(host);
                    (host, guest)
                })
                .collect();
            let pre = linker.instantiate_pre(component).map_err(|e| {
                HostError::Component(format!(
                    "component {id} imports something this host (and Spin) does not provide: {e}"
                ))
            })?;
            let names = exports(component);
            let proxy = names
                .iter()
                .any(|n| n.starts_with("wasi:http/incoming-handler@0.2"))
                .then(|| ProxyPre::new(pre.clone()))
                .transpose()
                .map_err(HostError::wasm)?;
            let cron = names
                .iter()
                .any(|n| n == "handle-cron-event")
                .then(|| SpinCronPre::new(pre.clone()))
                .transpose()
                .map_err(HostError::wasm)?;
            components.insert(
                id.clone(),
                Loaded {
                    grants,
                    proxy,
                    cron,
                    mounts,
                    environment: decl
                        .environment
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    stdout: log_file(&config.log_dir, &format!("{id}_stdout.txt"))?,
                    stderr: log_file(&config.log_dir, &format!("{id}_stderr.txt"))?,
                },
            );
        }
        for t in &manifest.trigger.http {
            if components[&t.component].proxy.is_none() {
                return Err(HostError::Component(format!(
                    "route {} maps to {}, which does not export wasi:http/incoming-handler",
                    t.route, t.component
                )));
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                manifest,
                router,
                components,
                kv,
                sqlite,
                sqlite_path: config.kv_path.with_file_name("sqlite_db.db"),
                variables,
                log_dir: config.log_dir.clone(),
                platform: config.platform,
                limits: config.limits.clone(),
                budget: Arc::new(OutboundBudget::new(
                    config.limits.outbound_requests_per_hour,
                )),
            }),
            default_headers: Vec::new(),
        })
    }

    /// The same app, with `name: value` sent on every [`App::request`].
    pub fn with_header(&self, name: &str, value: &str) -> App {
        let mut app = self.clone();
        app.default_headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        app.default_headers
            .push((name.to_string(), value.to_string()));
        app
    }

    /// The same app without default headers (an anonymous caller).
    pub fn anonymous(&self) -> App {
        App {
            inner: self.inner.clone(),
            default_headers: Vec::new(),
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The platform the host acts as.
    pub fn platform(&self) -> Platform {
        self.inner.platform
    }

    /// The limits the host enforces.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Outbound HTTP requests the app sent in the last hour (counted only
    /// under a platform that limits them).
    pub fn outbound_requests_this_hour(&self) -> usize {
        self.inner.budget.spent()
    }

    /// The host's embedded store (Spin's `default` SQLite store), which the
    /// app uses unless the variable `redis_url` names a shared Redis.
    pub fn kv(&self) -> &KvBackend {
        &self.inner.kv
    }

    /// Spin's SQLite database `default` (its fault switch, for outage tests).
    pub fn sqlite(&self) -> &crate::sqlite::SqliteDb {
        &self.inner.sqlite
    }

    /// Spin's SQLite database file (`sqlite_db.db` beside the key-value file).
    pub fn sqlite_path(&self) -> PathBuf {
        self.inner.sqlite_path.clone()
    }

    /// An application variable as resolved at load time.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.inner.variables.get(name).map(String::as_str)
    }

    /// Everything every component wrote to stdout/stderr so far.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(&self.inner.log_dir) {
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
        out
    }

    fn store(&self, loaded: &Loaded) -> Result<Store<Ctx>, HostError> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(loaded.stdout.clone())
            .stderr(loaded.stderr.clone())
            .envs(&loaded.environment);
        for (host, guest) in &loaded.mounts {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| HostError::Io(format!("mount {}: {e}", host.display())))?;
        }
        Ok(Store::new(
            engine(),
            Ctx {
                table: ResourceTable::new(),
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                hooks: Hooks {
                    grants: loaded.grants.clone(),
                    budget: self.inner.budget.clone(),
                    platform: self.inner.platform,
                },
                grants: loaded.grants.clone(),
                kv: self.inner.kv.clone(),
                sqlite: self.inner.sqlite.clone(),
            },
        ))
    }

    /// Serves one request as Spin would.
    pub async fn handle<B>(
        &self,
        mut req: http::Request<B>,
        client: SocketAddr,
    ) -> http::Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let path = req.uri().path().to_string();
        match path.as_str() {
            "/.well-known/spin/health" => return plain(200, "OK"),
            "/.well-known/spin/info" => {
                return plain(
                    200,
                    r#"{"version":"cloudtuner-testhost","oci_image_digest":null}"#,
                );
            }
            _ => {}
        }
        if let Some(refused) = self.body_too_large(req.headers()) {
            return refused;
        }
        let Some(route) = self.inner.router.route(&path) else {
            return plain(404, "");
        };
        let loaded = &self.inner.components[&route.component];
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_string();
        if !req.headers().contains_key(http::header::HOST) {
            req.headers_mut()
                .insert(http::header::HOST, host.parse().expect("valid host"));
        }
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone());
        for (k, v) in route.spin_headers("http", &host, &pq, &client.to_string()) {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(&v),
            ) {
                req.headers_mut().insert(k, v);
            }
        }
        let overflow = Arc::new(AtomicBool::new(false));
        let limit = self.inner.limits.request_body_bytes;
        let req = req.map(|body| CappedBody::new(body, limit, overflow.clone()));
        let answer = self.call(loaded, req).await;
        if overflow.load(Ordering::SeqCst) {
            // The guest read past the limit (a body without Content-Length):
            // the platform answers for it, whatever the guest made of the cut.
            return self.too_large_response(limit.unwrap_or_default());
        }
        match answer {
            Ok(resp) => resp,
            Err(e) => {
                eprintln!("[host] {}: {e}", route.component);
                plain(500, "Internal Server Error")
            }
        }
    }

    async fn call<B>(
        &self,
        loaded: &Loaded,
        req: http::Request<B>,
    ) -> Result<http::Response<Body>, HostError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let pre = loaded.proxy.clone().expect("checked at load");
        let component = loaded.grants.component.clone();
        let mut store = self.store(loaded)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(HostError::wasm)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(HostError::wasm)?;
        // The guest runs in its own task so it can keep streaming the body
        // after it has handed over the response head.
        let mut task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, out)
                .await
        });
        let deadline = self
            .inner
            .limits
            .request_time
            .map(|d| tokio::time::Instant::now() + d);
        let head = match deadline {
            None => rx.await,
            Some(at) => match tokio::time::timeout_at(at, rx).await {
                Ok(head) => head,
                Err(_) => {
                    // Aborting the task drops the store: the guest stops at its
                    // next await (outbound I/O, a stream); a guest spinning on
                    // the CPU is not interrupted (the engine has no epochs).
                    task.abort();
                    eprintln!("[host] {component}: cut at the platform's request time limit");
                    return Ok(self.time_limit_response());
                }
            },
        };
        match head {
            Ok(Ok(resp)) => {
                if let Some(at) = deadline {
                    // The head is out; the body may still stream: cut it at the
                    // same deadline (the caller sees the body end early).
                    tokio::spawn(async move {
                        if tokio::time::timeout_at(at, &mut task).await.is_err() {
                            task.abort();
                        }
                    });
                }
                Ok(resp)
            }
            Ok(Err(code)) => Err(HostError::Component(format!("guest error code {code:?}"))),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(HostError::Component("guest set no response".into())),
                Ok(Err(trap)) => Err(HostError::Component(format!("guest trapped: {trap:?}"))),
                Err(join) => Err(HostError::Component(format!("guest task failed: {join}"))),
            },
        }
    }

    /// Test convenience: one request, body read in full.
    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let resp = self
            .request_streaming(method, path_and_query, headers, body)
            .await;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        TestResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// Test convenience: one request, its body left to read as it streams
    /// (server-sent events), frame by frame.
    pub async fn request_streaming(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> http::Response<Body> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, "127.0.0.1:8001");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        for (k, v) in &self.default_headers {
            if !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
                builder = builder.header(k.as_str(), v.as_str());
            }
        }
        let req = builder.body(Full::new(body.into())).expect("valid request");
        self.handle(req, "127.0.0.1:50000".parse().unwrap()).await
    }

    /// Fires the cron export of every component with a `[[trigger.cron]]` (or
    /// of `component` only), as the trigger-cron plugin does on schedule.
    pub async fn fire_cron(&self, component: &str, timestamp: u64) -> Result<(), HostError> {
        if !self.inner.platform.runs_cron() {
            return Err(self.inner.platform.no_cron(component));
        }
        let loaded = self
            .inner
            .components
            .get(component)
            .ok_or_else(|| HostError::Component(format!("no component {component}")))?;
        let pre = loaded.cron.clone().ok_or_else(|| {
            HostError::Component(format!("{component} does not export handle-cron-event"))
        })?;
        let mut store = self.store(loaded)?;
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(HostError::wasm)?;
        instance
            .call_handle_cron_event(
                &mut store,
                crate::cron::fermyon::spin_cron::cron_types::Metadata { timestamp },
            )
            .await
            .map_err(HostError::wasm)?
            .map_err(|e| HostError::Component(format!("cron handler failed: {e:?}")))
    }
}

fn plain(status: u16, body: impl Into<Bytes>) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .body(
            Full::new(body.into())
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("valid response")
}

impl App {
    /// 413 when `Content-Length` already says the body is over the limit, so
    /// the guest never runs.
    fn body_too_large(&self, headers: &http::HeaderMap) -> Option<http::Response<Body>> {
        let limit = self.inner.limits.request_body_bytes?;
        let length: u64 = headers
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (length > limit).then(|| self.too_large_response(limit))
    }

    fn too_large_response(&self, limit: u64) -> http::Response<Body> {
        plain(
            413,
            format!(
                "Payload Too Large: {} accepts request bodies of at most {limit} bytes",
                self.inner.platform.title()
            ),
        )
    }

    /// [inf] Neither Fermyon Cloud nor Akamai documents the answer to a
    /// request cut at the time limit; a 500 with a short plain body is assumed.
    fn time_limit_response(&self) -> http::Response<Body> {
        let secs = self
            .inner
            .limits
            .request_time
            .map_or(0.0, |d| d.as_secs_f64());
        plain(
            500,
            format!(
                "Internal Server Error: the request exceeded {}'s time limit of {secs} s",
                self.inner.platform.title()
            ),
        )
    }
}

/// A request body that stops with an error once more than `limit` bytes have
/// passed (a body without `Content-Length`), and says so in `overflow`.
struct CappedBody<B> {
    inner: std::pin::Pin<Box<B>>,
    limit: Option<u64>,
    seen: u64,
    overflow: Arc<AtomicBool>,
}

impl<B> CappedBody<B> {
    fn new(inner: B, limit: Option<u64>, overflow: Arc<AtomicBool>) -> Self {
        Self {
            inner: Box::pin(inner),
            limit,
            seen: 0,
            overflow,
        }
    }
}

impl<B> http_body::Body for CappedBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.overflow.load(Ordering::SeqCst) {
            return Poll::Ready(None);
        }
        let frame = match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let (Some(limit), Some(data)) = (this.limit, frame.data_ref()) {
            this.seen += data.len() as u64;
            if this.seen > limit {
                this.overflow.store(true, Ordering::SeqCst);
                return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(
                    Some(this.seen),
                ))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
