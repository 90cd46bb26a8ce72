//! The S3-compatible endpoint under `/api/cloud/storage` (path-style): enough of
//! S3 for boto3 and the AWS CLI to upload a job's weights and for users to get
//! them back, and for users to bring datasets. `outputs`: a job writes under
//! `<job_id>/`.
//!
//! Who may do what:
//! - **Job credentials** (SigV4 with access key = job id and secret = the job's
//!   upload secret, or SimpleTuner's `X-Upload-Token` / `X-SimpleTuner-Secret`
//!   header): read, write, list and delete under the job's own prefix, while the
//!   job is active and for [`UPLOAD_GRACE_MS`] after it ends.
//! - **Users** (session, API key): read and list the outputs of jobs they may
//!   view (`job.view` rules); others' objects are `NoSuchKey`.
//! - **Datasets**: a second bucket, `datasets`, holds each user's own uploaded
//!   datasets (`<dataset>/<path>`), written by users with `dataset.upload`:
//!   signed in (the UI), or SigV4 with an API key's S3 pair
//!   ([`api_key_credentials`]), as `aws s3 sync` and boto3 send it.

mod auth;
mod batch;
mod datasets;
mod errors;
mod ops;
mod space;
mod xml;

pub use auth::{JobDirectory, KEY_ACCESS_PREFIX, Uploader, api_key_credentials, job_credentials};
pub use errors::S3Error;
pub use xml::{http_date, xml_escape};

use crate::auth::principal::Principal;
use crate::kernel::kv::KvStore;
use crate::storage::objects::{ObjectStore, StoreError};
use crate::storage::sigv4;
pub use crate::storage::{BUCKET, MOUNT};

use crate::storage::datasets::{Limits, S3_BUCKET as DATASETS_BUCKET};
use auth::{Access, caller};
use batch::{copy_object, delete_objects, list_parts};
use datasets::Datasets;
use errors::{method_not_allowed, not_implemented, s3err};
use ops::{
    check_content_md5, content_type, get_object, list_buckets, list_objects, metadata, ok_headers,
};
use space::{Outputs, Space};
use xml::{error_response, parse_complete, xml};

/// Default largest object: 2 GiB (LoRAs are 20–500 MB; full fine-tunes more).
pub const DEFAULT_MAX_OBJECT_MB: u64 = 2048;

/// The largest object accepted, from the `storage_max_object_mb` variable.
pub fn max_object_bytes(variable: Option<&str>) -> u64 {
    variable
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_MAX_OBJECT_MB)
        .saturating_mul(1024 * 1024)
}

/// How long a job's credentials outlive the job (a final upload racing the
/// terminal status must not be lost).
pub const UPLOAD_GRACE_MS: u64 = 2 * 3600 * 1000;

/// The incoming request, as the component received it.
pub struct S3Request {
    pub method: String,
    /// Path as received (percent-encoded), starting with [`MOUNT`].
    pub raw_path: String,
    pub raw_query: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl S3Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query(&self) -> Vec<(String, String)> {
        sigv4::decode_query(&self.raw_query)
    }

    fn param(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Debug)]
pub struct S3Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct Context<'a> {
    pub kv: &'a dyn KvStore,
    /// The jobs whose credentials sign uploads (`jobs::store::JobStore`).
    pub jobs: &'a dyn JobDirectory,
    pub now_ms: u64,
    pub max_object: u64,
    /// The caller's user identity from session/API key, if any (resolved by the
    /// component; an invalid credential is an error already).
    pub user: Option<Principal>,
    /// Public origin, for `output_url`.
    pub public_url: Option<String>,
    /// Quota and file bound of uploaded datasets.
    pub dataset_limits: Limits,
}

/// The path below the mount: (bucket, key), both decoded; empty when absent.
fn target(raw_path: &str) -> Result<(String, String), S3Error> {
    let rest = raw_path
        .strip_prefix(MOUNT)
        .ok_or_else(|| s3err(400, "InvalidURI", "not a storage path"))?;
    let rest = rest.trim_start_matches('/');
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let (bucket, key) = (sigv4::percent_decode(bucket), sigv4::percent_decode(key));
    if key.split('/').any(|seg| seg == "..") || key.contains('\0') || key.len() > 1024 {
        return Err(s3err(400, "InvalidArgument", "Invalid object key"));
    }
    Ok((bucket, key))
}

/// The job a key belongs to: its first path segment.
fn job_of(key: &str) -> &str {
    key.split('/').next().unwrap_or("")
}

/// Answers one S3 request.
pub fn handle(ctx: &Context, req: &S3Request) -> S3Response {
    let head = req.method == "HEAD";
    let resource = target(&req.raw_path)
        .map(|(b, k)| format!("/{b}/{k}"))
        .unwrap_or_default();
    let mut out = match dispatch(ctx, req) {
        Ok(r) => r,
        Err(e) => error_response(&e, &resource, head),
    };
    inert(&mut out);
    out
}

/// What every storage response carries so a browser never runs what it holds:
/// stored bytes are the users' and trainers' (an HTML or SVG file would run
/// as this origin, with the viewer's session), and errors echo keys. Objects
/// that would render as a document also download ([`ops::get_object`]).
pub const INERT_HEADERS: [(&str, &str); 2] = [
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", "default-src 'none'; sandbox"),
];

fn inert(out: &mut S3Response) {
    for (name, value) in INERT_HEADERS {
        out.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        out.headers.push((name.to_string(), value.to_string()));
    }
}

fn dispatch(ctx: &Context, req: &S3Request) -> Result<S3Response, S3Error> {
    let (bucket, key) = target(&req.raw_path)?;
    if bucket.is_empty() {
        return match req.method.as_str() {
            "GET" => {
                caller(ctx, req, "")?;
                Ok(list_buckets())
            }
            _ => Err(method_not_allowed()),
        };
    }
    if bucket != BUCKET && bucket != DATASETS_BUCKET {
        return Err(s3err(
            404,
            "NoSuchBucket",
            format!(
                "The specified bucket does not exist; this server has two: {BUCKET:?} (what jobs upload) and {DATASETS_BUCKET:?} (your datasets)."
            ),
        ));
    }
    check_request_size(ctx, req, &bucket)?;
    // A bucket request (listing) names its job by the prefix, for upload tokens.
    let auth_key = if key.is_empty() {
        req.param("prefix").unwrap_or_default()
    } else {
        key.clone()
    };
    let (who, decoded) = caller(ctx, req, &auth_key)?;
    let body: &[u8] = decoded.as_deref().unwrap_or(&req.body);
    let outputs;
    let datasets;
    let space: &dyn Space = if bucket == BUCKET {
        outputs = Outputs {
            ctx,
            who: &who,
            store: ObjectStore::new(ctx.kv, ctx.max_object),
        };
        &outputs
    } else {
        datasets = Datasets::new(ctx, &who)?;
        &datasets
    };
    let store = ObjectStore::new(ctx.kv, ctx.max_object);
    if key.is_empty() {
        bucket_op(req, space, &store, body)
    } else {
        object_op(ctx, req, space, &store, &key, body)
    }
}

/// Refuses a body larger than anything the bucket takes in one request, before
/// its signature is checked, it is hashed or decoded: working through hundreds
/// of megabytes only to refuse them afterwards would hold the instance.
fn check_request_size(ctx: &Context, req: &S3Request, bucket: &str) -> Result<(), S3Error> {
    let datasets = bucket == DATASETS_BUCKET;
    let limit = if datasets {
        crate::storage::datasets::MAX_REQUEST_BYTES
    } else {
        ctx.max_object
    };
    let streaming = req
        .header("x-amz-content-sha256")
        .is_some_and(|h| h.starts_with("STREAMING-"));
    // aws-chunked framing adds under 1% (a ~90-byte header per chunk of 8 KiB
    // or more): allowed on top of the limit, the decoded size is checked after.
    let allowed = if streaming {
        limit.saturating_add(limit / 64 + 64 * 1024)
    } else {
        limit
    };
    let declared = req
        .header("x-amz-decoded-content-length")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let size = req.body.len() as u64;
    if size <= allowed && declared <= limit {
        return Ok(());
    }
    let size = size.max(declared);
    Err(if datasets {
        datasets::request_too_large(size)
    } else {
        StoreError::EntityTooLarge { size, max: limit }.into()
    })
}

fn object_op(
    ctx: &Context,
    req: &S3Request,
    space: &dyn Space,
    store: &ObjectStore,
    key: &str,
    body: &[u8],
) -> Result<S3Response, S3Error> {
    let upload_id = req.param("uploadId");
    let write = !matches!(req.method.as_str(), "GET" | "HEAD");
    space.authorize(key, if write { Access::Write } else { Access::Read })?;
    match (req.method.as_str(), upload_id) {
        ("GET", None) | ("HEAD", None) => {
            let (b, k) = space.locate(key)?;
            get_object(req, store, &b, &k)
        }
        ("PUT", None) if req.header("x-amz-copy-source").is_some() => {
            copy_object(ctx, req, space, store, key)
        }
        ("PUT", None) => {
            check_content_md5(req, body)?;
            let size = body.len() as u64;
            space.admit(key, Some(size), size)?;
            let (b, k) = space.locate(key)?;
            let hold = space.reserve(key, size)?;
            let put = store.put(&b, &k, body, &content_type(req), metadata(req), ctx.now_ms);
            space.release(hold);
            let m = put?;
            space.stored(key, &m);
            Ok(ok_headers(200, vec![("etag".into(), m.etag)]))
        }
        ("DELETE", None) => {
            let (b, k) = space.locate(key)?;
            store.delete(&b, &k)?;
            Ok(ok_headers(204, vec![]))
        }
        ("POST", None) if req.param("uploads").is_some() => {
            space.admit(key, None, 0)?;
            let (b, k) = space.locate(key)?;
            let id = store.create_upload(&b, &k, &content_type(req), metadata(req), ctx.now_ms)?;
            if let Err(e) = space.upload_opened(key, &id) {
                let _ = store.abort_upload(&id, &b, &k);
                return Err(e);
            }
            Ok(xml(
                200,
                format!(
                    "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
                    space.name(),
                    xml_escape(key)
                ),
            ))
        }
        ("PUT", Some(id)) => {
            let number: u32 = req
                .param("partNumber")
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=crate::storage::objects::MAX_PARTS).contains(n))
                .ok_or_else(|| {
                    s3err(
                        400,
                        "InvalidArgument",
                        "Part number must be an integer between 1 and 10000, inclusive",
                    )
                })?;
            check_content_md5(req, body)?;
            space.admit(key, None, body.len() as u64)?;
            let (b, k) = space.locate(key)?;
            if store.upload(&id, &b, &k)?.is_none() {
                return Err(StoreError::NoSuchUpload.into());
            }
            space.reserve_part(&id, number, body.len() as u64)?;
            let etag = store.upload_part(&id, &b, &k, number, body)?;
            Ok(ok_headers(200, vec![("etag".into(), etag)]))
        }
        ("POST", Some(id)) => {
            let parts = parse_complete(body)?;
            let (b, k) = space.locate(key)?;
            let stored_parts = store.list_parts(&id, &b, &k)?;
            let size = parts
                .iter()
                .filter_map(|(n, _)| stored_parts.iter().find(|(s, _)| s == n))
                .map(|(_, p)| p.blob.size)
                .sum();
            space.admit(key, Some(size), 0)?;
            let m = store.complete_upload(&id, &b, &k, &parts, ctx.now_ms)?;
            space.upload_closed(&id);
            space.stored(key, &m);
            Ok(xml(
                200,
                format!(
                    "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
                    xml_escape(&space.url(key)),
                    space.name(),
                    xml_escape(key),
                    xml_escape(&m.etag)
                ),
            ))
        }
        ("DELETE", Some(id)) => {
            let (b, k) = space.locate(key)?;
            store.abort_upload(&id, &b, &k)?;
            space.upload_closed(&id);
            Ok(ok_headers(204, vec![]))
        }
        ("GET", Some(id)) => list_parts(req, space, store, key, &id),
        _ => Err(method_not_allowed()),
    }
}

/// A request to a bucket itself: listing, its location, DeleteObjects.
fn bucket_op(
    req: &S3Request,
    space: &dyn Space,
    store: &ObjectStore,
    body: &[u8],
) -> Result<S3Response, S3Error> {
    let q = req.query();
    let prefix = req.param("prefix").unwrap_or_default();
    match req.method.as_str() {
        "HEAD" => Ok(ok_headers(200, vec![])),
        "GET" if q.iter().any(|(k, _)| k == "location") => {
            Ok(xml(200, "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></LocationConstraint>".into()))
        }
        "GET" if q.iter().any(|(k, _)| k == "uploads" || k == "versions") => {
            Err(not_implemented("This bucket listing"))
        }
        "GET" => {
            space.authorize_list(&prefix)?;
            list_objects(req, space, &prefix)
        }
        "PUT" => Err(s3err(
            409,
            "BucketAlreadyOwnedByYou",
            "The bucket already exists.",
        )),
        "POST" if q.iter().any(|(k, _)| k == "delete") => delete_objects(req, space, store, body),
        _ => Err(method_not_allowed()),
    }
}

/// The objects a job stored here, with download links (fetched with the same
/// session or API key): (objects, total bytes).
pub fn job_objects(
    kv: &dyn KvStore,
    job_id: &str,
    public_url: Option<&str>,
) -> Result<(Vec<serde_json::Value>, u64), crate::kernel::kv::KvError> {
    let store = ObjectStore::new(kv, u64::MAX);
    let prefix = format!("{job_id}/");
    let (items, _) = store.list(BUCKET, &prefix, None, usize::MAX)?;
    let origin = public_url.unwrap_or("").trim_end_matches('/');
    let objects = items
        .iter()
        .map(|(key, e)| {
            let path = format!("{MOUNT}/{BUCKET}/{}", sigv4::aws_encode(key, false));
            serde_json::json!({
                "key": key,
                "name": &key[prefix.len()..],
                "size": e.size,
                "etag": e.etag,
                "uploaded_at": crate::kernel::clock::rfc3339(e.uploaded_ms),
                "download_path": path,
                "download_url": format!("{origin}{path}"),
            })
        })
        .collect();
    Ok((objects, items.iter().map(|(_, e)| e.size).sum()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_not_escape() {
        assert!(target("/api/cloud/storage/outputs/j/../x").is_err());
        assert_eq!(
            target("/api/cloud/storage/outputs/j/a%20b.bin").unwrap(),
            ("outputs".to_string(), "j/a b.bin".to_string())
        );
        assert_eq!(
            target("/api/cloud/storage").unwrap(),
            (String::new(), String::new())
        );
    }
}
