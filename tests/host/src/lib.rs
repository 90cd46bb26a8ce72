//! A Spin-compatible host for cloudtuner's tests and for machines without Spin.
//!
//! It reads the real `spin.toml`, routes like Spin (exact > longest prefix >
//! wildcard, `:name` segments, `spin-*` headers), gives each request a fresh
//! component instance, provides Spin's key-value (SQLite, Spin's schema and
//! semantics), Spin's SQLite, variables, `wasi:keyvalue` atomics, and outbound HTTP and Redis
//! limited to `allowed_outbound_hosts`, and can fire cron exports. Users run `spin up`;
//! this host exists so tests can drive the real `.wasm` components.
//!
//! It can also act as the platform the app is deployed to ([`Platform`]:
//! `spin`, the default, `fermyon-cloud` or `akamai`): refuse components that
//! import what the platform lacks, refuse cron triggers where nothing runs
//! them, and enforce the platform's request time, body size and outbound
//! request limits ([`Limits`]); see [`platform`].

pub mod app;
pub mod build;
pub mod cron;
pub mod ctx;
pub mod kv;
pub mod manifest;
pub mod outbound;
pub mod platform;
pub mod redis;
pub mod router;
pub mod server;
pub mod sqlite;

pub use app::{App, Body, HostConfig, TestResponse};
pub use platform::{Limits, Platform};

#[derive(Debug, Clone)]
pub enum HostError {
    Manifest(String),
    Component(String),
    Io(String),
}

impl HostError {
    pub fn wasm(e: wasmtime::Error) -> Self {
        HostError::Component(format!("{e:?}"))
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::Manifest(m) => write!(f, "manifest: {m}"),
            HostError::Component(m) => write!(f, "component: {m}"),
            HostError::Io(m) => write!(f, "io: {m}"),
        }
    }
}

impl std::error::Error for HostError {}

/// The workspace root (where `spin.toml` lives), for tests and tools.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}
