//! Training jobs: the record and its transitions, storage and listing,
//! submit (configs, datasets, delivery, idempotency), the lifecycle against the
//! provider (refresh, cancel, delete, webhooks, sync) and retention.

pub mod approvals;
pub mod configs;
pub mod datasets;
pub mod delivery;
pub mod entry;
pub mod estimate;
pub mod idempotency;
pub mod legacy_index;
pub mod lifecycle;
pub mod listing;
pub mod log_stream;
pub mod logs;
pub mod models;
pub mod outputs;
pub mod pages;
pub mod progress;
pub mod prometheus;
pub mod record;
pub mod retention;
pub mod retry;
pub mod store;
pub mod submit;
pub mod summary;
pub mod sync;
pub mod webhooks;

#[cfg(test)]
mod provider_tests;
#[cfg(test)]
mod quota_settlement_tests;
