//! cloudtuner's domain library.
//!
//! Everything here compiles and is tested natively. Storage and outbound HTTP sit
//! behind the narrow traits in [`kv`] and [`http`]; the Spin components implement
//! them (crate `cloudtuner-spin`) and stay thin glue.

pub mod apikeys;
pub mod auth;
pub mod authn;
pub mod clock;
pub mod configs;
pub mod costs;
pub mod datasets;
pub mod delivery;
pub mod error;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod job;
pub mod jobs;
pub mod kv;
pub mod lifecycle;
pub mod listing;
pub mod loginguard;
pub mod notify;
pub mod objstore;
pub mod progress;
pub mod providers;
pub mod replicate;
pub mod retention;
pub mod s3api;
pub mod secrets;
pub mod settings;
pub mod sigv2;
pub mod sigv4;
pub mod submit;
pub mod sync;
pub mod users;
pub mod webhooks;

/// The application version reported by `/api/cloud/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
