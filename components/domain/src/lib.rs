//! cloudtuner's domain library.
//!
//! Everything here compiles and is tested natively. Storage and outbound HTTP sit
//! behind the narrow traits in [`kv`] and [`http`]; the Spin components implement
//! them (crate `cloudtuner-spin`) and stay thin glue.

pub mod error;
pub mod health;
pub mod http;
pub mod kv;
pub mod providers;
pub mod replicate;

/// The application version reported by `/api/cloud/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
