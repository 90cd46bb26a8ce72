//! What every capability builds on: key-value storage, outbound HTTP, time,
//! the error shape and secret handling. Imports nothing else of the crate.

pub mod clock;
pub mod counters;
#[cfg(test)]
pub mod counting;
pub mod error;
pub mod event_log;
pub mod http;
pub mod kv;
pub mod outbound_budget;
#[cfg(test)]
pub mod scripted;
pub mod secrets;
pub mod signing;
pub mod sync_token;
