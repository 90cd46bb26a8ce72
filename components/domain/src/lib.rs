//! cloudtuner's domain library, grouped by capability.
//!
//! Everything here compiles and is tested natively. Storage and outbound HTTP sit
//! behind the narrow traits in [`kernel::kv`] and [`kernel::http`]; the Spin
//! components implement them (crate `cloudtuner-spin`) and stay thin glue.
//!
//! Dependencies point one way (lower layers never import higher ones):
//! `kernel` ← `auth` ← `providers` ← `billing`, `notify`, `storage` ← `jobs`.
//! `health` sits beside them and needs only `kernel`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod billing;
pub mod health;
pub mod jobs;
pub mod kernel;
pub mod notify;
pub mod providers;
pub mod storage;

/// The application version reported by `/api/cloud/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
