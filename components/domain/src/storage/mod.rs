//! The S3-compatible object storage trainers upload models to: objects kept
//! in chunks in the key-value store, SigV4/SigV2 request signing, and the S3
//! API over them.

/// The route prefix the S3 endpoint is mounted at.
pub const MOUNT: &str = "/api/cloud/storage";
/// The one bucket.
pub const BUCKET: &str = "outputs";

pub mod datasets;
pub mod objects;
pub mod s3;
pub mod sigv2;
pub mod sigv4;

#[cfg(test)]
pub(crate) mod racing;
