//! The S3-compatible endpoint under `/api/cloud/storage` (path-style): enough of
//! S3 for boto3 and the AWS CLI to upload a job's weights and for users to get
//! them back. One bucket, `outputs`; a job writes under `<job_id>/`.
//!
//! Who may do what:
//! - **Job credentials** (SigV4 with access key = job id and secret = the job's
//!   upload secret, or SimpleTuner's `X-Upload-Token` / `X-SimpleTuner-Secret`
//!   header): read, write, list and delete under the job's own prefix, while the
//!   job is active and for [`UPLOAD_GRACE_MS`] after it ends.
//! - **Users** (session, API key): read and list the outputs of jobs they may
//!   view (`job.view` rules); others' objects are `NoSuchKey`.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::job::Job;
use crate::jobs::JobStore;
use crate::kv::{KvError, KvStore, create_once};
use crate::objstore::{Manifest, ObjectStore, StoreError};
use crate::secrets::constant_time_eq;
use crate::sigv4::{self, SigError, Signed};

/// The route prefix the endpoint is mounted at.
pub const MOUNT: &str = "/api/cloud/storage";
/// The one bucket.
pub const BUCKET: &str = "outputs";
/// How long a job's credentials outlive the job (a final upload racing the
/// terminal status must not be lost).
pub const UPLOAD_GRACE_MS: u64 = 2 * 3600 * 1000;
const SIGNING_KEY: &str = "storage:signing-key";

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

/// An S3 error: status, S3 code and message (rendered as S3's XML).
#[derive(Debug, Clone, PartialEq)]
pub struct S3Error {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

fn s3err(status: u16, code: &'static str, message: impl Into<String>) -> S3Error {
    S3Error {
        status,
        code,
        message: message.into(),
    }
}

fn access_denied(message: impl Into<String>) -> S3Error {
    s3err(403, "AccessDenied", message)
}

fn internal(e: impl std::fmt::Debug) -> S3Error {
    s3err(500, "InternalError", format!("storage failed: {e:?}"))
}

impl From<KvError> for S3Error {
    fn from(e: KvError) -> Self {
        internal(e)
    }
}

impl From<StoreError> for S3Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Kv(e) => internal(e),
            StoreError::NoSuchUpload => s3err(
                404,
                "NoSuchUpload",
                "The specified multipart upload does not exist.",
            ),
            StoreError::InvalidPart(n) => s3err(
                400,
                "InvalidPart",
                format!("Part {n} was not uploaded or its ETag does not match."),
            ),
            StoreError::InvalidPartOrder => s3err(
                400,
                "InvalidPartOrder",
                "The list of parts must be non-empty and in ascending order.",
            ),
            StoreError::EntityTooSmall(n) => s3err(
                400,
                "EntityTooSmall",
                format!("Part {n} is smaller than the 5 MiB minimum for all but the last part."),
            ),
            StoreError::EntityTooLarge { size, max } => s3err(
                400,
                "EntityTooLarge",
                format!(
                    "The object is {size} bytes; this server accepts at most {max} bytes per object (variable storage_max_object_mb)."
                ),
            ),
        }
    }
}

/// Who is calling.
pub enum Caller {
    Job(Box<Job>),
    User(Principal),
}

pub struct Context<'a> {
    pub kv: &'a dyn KvStore,
    pub now_ms: u64,
    pub max_object: u64,
    /// The caller's user identity from session/API key, if any (resolved by the
    /// component; an invalid credential is an error already).
    pub user: Option<Principal>,
    /// Public origin, for `output_url`.
    pub public_url: Option<String>,
}

/// The per-installation key upload secrets are derived from (created once).
fn signing_key(kv: &dyn KvStore) -> Result<Vec<u8>, KvError> {
    if let Some(k) = kv.get(SIGNING_KEY)?.filter(|k| k.len() == 32) {
        return Ok(k);
    }
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).expect("system randomness");
    create_once(kv, SIGNING_KEY, &fresh)?;
    kv.get(SIGNING_KEY)?
        .filter(|k| k.len() == 32)
        .ok_or_else(|| KvError("storage signing key unreadable".into()))
}

/// A job's S3 credentials: (access key = job id, secret). The secret is derived
/// (HMAC of the job id under this installation's key), so it is stored nowhere
/// and no job response can leak it.
pub fn job_credentials(kv: &dyn KvStore, job_id: &str) -> Result<(String, String), KvError> {
    let key = signing_key(kv)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("upload:{job_id}").as_bytes());
    let secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok((job_id.to_string(), secret))
}

/// `GET /api/cloud/jobs/{id}/outputs`: what a job stored here, with download
/// links (fetch them with the same session or API key).
pub fn job_outputs(
    kv: &dyn KvStore,
    job: &Job,
    public_url: Option<&str>,
) -> Result<serde_json::Value, KvError> {
    let store = ObjectStore::new(kv, u64::MAX);
    let prefix = format!("{}/", job.job_id);
    let (items, _) = store.list(BUCKET, &prefix, None, usize::MAX)?;
    let origin = public_url.unwrap_or("").trim_end_matches('/');
    let outputs: Vec<serde_json::Value> = items
        .iter()
        .map(|(key, e)| {
            let path = format!("{MOUNT}/{BUCKET}/{}", sigv4::aws_encode(key, false));
            serde_json::json!({
                "key": key,
                "name": &key[prefix.len()..],
                "size": e.size,
                "etag": e.etag,
                "uploaded_at": rfc3339(e.uploaded_ms),
                "download_path": path,
                "download_url": format!("{origin}{path}"),
            })
        })
        .collect();
    let total: u64 = items.iter().map(|(_, e)| e.size).sum();
    Ok(serde_json::json!({
        "job_id": job.job_id,
        "status": job.status.as_str(),
        "output_url": job.output_url,
        "delivery": job.delivery.as_ref().map(|d| d.to_api(&job.job_id)),
        "outputs": outputs,
        "count": items.len(),
        "total_bytes": total,
    }))
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
    match dispatch(ctx, req) {
        Ok(r) => r,
        Err(e) => error_response(&e, &resource, head),
    }
}

fn error_response(e: &S3Error, resource: &str, head: bool) -> S3Response {
    let body = if head {
        Vec::new()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            e.code,
            xml_escape(&e.message),
            xml_escape(resource),
            request_id()
        )
        .into_bytes()
    };
    S3Response {
        status: e.status,
        headers: vec![("content-type".into(), "application/xml".into())],
        body,
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase()
}

/// Authenticates the caller: SigV4 or upload-token headers → job; otherwise
/// the user the component resolved.
fn caller(ctx: &Context, req: &S3Request, key: &str) -> Result<(Caller, Vec<u8>), S3Error> {
    let signed = Signed {
        method: &req.method,
        raw_path: &req.raw_path,
        raw_query: &req.raw_query,
        headers: &req.headers,
    };
    let claimed = sigv4::claimed(&signed).map_err(sig_error)?;
    if let Some(claimed) = claimed {
        let job = job_for_key(ctx, &claimed.access_key)?;
        let (_, secret) = job_credentials(ctx.kv, &job.job_id)?;
        sigv4::verify(&signed, &claimed, &secret, ctx.now_ms).map_err(sig_error)?;
        let hash = sigv4::payload_hash(&signed, &claimed);
        let body = if hash.starts_with("STREAMING-")
            || req
                .header("content-encoding")
                .is_some_and(|c| c.contains("aws-chunked"))
        {
            let signed_chunks = hash.starts_with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
            let body = sigv4::decode_aws_chunked(
                &req.body,
                signed_chunks.then_some((&claimed, secret.as_str())),
            )
            .map_err(sig_error)?;
            if let Some(n) = req.header("x-amz-decoded-content-length")
                && n.parse::<usize>().ok() != Some(body.len())
            {
                return Err(s3err(
                    400,
                    "IncompleteBody",
                    "The body is shorter or longer than x-amz-decoded-content-length.",
                ));
            }
            body
        } else {
            sigv4::check_payload(hash, &req.body).map_err(sig_error)?;
            req.body.clone()
        };
        return Ok((Caller::Job(Box::new(job)), body));
    }
    if let Some(presigned) = crate::sigv2::claimed(&signed) {
        if !matches!(req.method.as_str(), "GET" | "HEAD") {
            return Err(access_denied(
                "Signature Version 2 is accepted only for presigned downloads; sign with SigV4.",
            ));
        }
        let job = job_for_key(ctx, &presigned.access_key)?;
        let (_, secret) = job_credentials(ctx.kv, &job.job_id)?;
        crate::sigv2::verify(&signed, &presigned, &secret, ctx.now_ms).map_err(sig_error)?;
        return Ok((Caller::Job(Box::new(job)), Vec::new()));
    }
    let token = req
        .header("x-upload-token")
        .or_else(|| req.header("x-simpletuner-secret"));
    if let Some(token) = token {
        let job_id = job_of(key);
        let job = JobStore::new(ctx.kv)
            .get(job_id)
            .map_err(|e| internal(e.message))?;
        let (_, secret) = job_credentials(ctx.kv, job_id)?;
        return match job {
            Some(job) if constant_time_eq(token, &secret) => {
                Ok((Caller::Job(Box::new(job)), req.body.clone()))
            }
            _ => Err(access_denied(
                "The upload token does not belong to the job this key is under.",
            )),
        };
    }
    match &ctx.user {
        Some(p) => Ok((Caller::User(p.clone()), req.body.clone())),
        None => Err(access_denied(
            "Sign the request with the job's credentials (SigV4), send X-Upload-Token, or sign in.",
        )),
    }
}

/// The job an access key names.
fn job_for_key(ctx: &Context, access_key: &str) -> Result<Job, S3Error> {
    JobStore::new(ctx.kv)
        .get(access_key)
        .map_err(|e| internal(e.message))?
        .ok_or_else(|| {
            s3err(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        })
}

fn sig_error(e: SigError) -> S3Error {
    match e {
        SigError::Malformed(m) => s3err(400, "AuthorizationHeaderMalformed", m),
        SigError::Mismatch => s3err(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ),
        SigError::Skewed => s3err(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ),
        SigError::Expired => access_denied("Request has expired"),
        SigError::PayloadMismatch => s3err(
            400,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Access {
    Read,
    Write,
}

/// May `caller` touch `key` (or list under it, for a prefix)?
fn authorize(ctx: &Context, caller: &Caller, key: &str, access: Access) -> Result<(), S3Error> {
    match caller {
        Caller::Job(job) => {
            let own = format!("{}/", job.job_id);
            if !key.starts_with(&own) {
                return Err(access_denied(format!(
                    "These credentials may only use keys under {own}"
                )));
            }
            if job.status.is_terminal()
                && job
                    .completed_ms
                    .is_some_and(|done| ctx.now_ms > done + UPLOAD_GRACE_MS)
            {
                return Err(access_denied(
                    "The job's upload credentials expired (2 hours after the job ended).",
                ));
            }
            Ok(())
        }
        Caller::User(p) => {
            if access == Access::Write {
                return Err(access_denied(
                    "Objects are written by jobs; users may read and list them.",
                ));
            }
            let visible = JobStore::new(ctx.kv)
                .get(job_of(key))
                .map_err(|e| internal(e.message))?
                .is_some_and(|j| p.can("job.view", &j.owner));
            if visible { Ok(()) } else { Err(no_such_key()) }
        }
    }
}

fn no_such_key() -> S3Error {
    s3err(404, "NoSuchKey", "The specified key does not exist.")
}

fn dispatch(ctx: &Context, req: &S3Request) -> Result<S3Response, S3Error> {
    let (bucket, key) = target(&req.raw_path)?;
    let method = req.method.as_str();
    if bucket.is_empty() {
        return match method {
            "GET" => {
                caller(ctx, req, "")?;
                Ok(list_buckets())
            }
            _ => Err(method_not_allowed()),
        };
    }
    if bucket != BUCKET {
        return Err(s3err(
            404,
            "NoSuchBucket",
            format!("The specified bucket does not exist; this server has one bucket, {BUCKET:?}."),
        ));
    }
    let store = ObjectStore::new(ctx.kv, ctx.max_object);
    if key.is_empty() {
        return bucket_op(ctx, req, &store);
    }
    let (who, body) = caller(ctx, req, &key)?;
    let upload_id = req.param("uploadId");
    match (method, upload_id) {
        ("GET", None) | ("HEAD", None) => {
            authorize(ctx, &who, &key, Access::Read)?;
            get_object(req, &store, &key)
        }
        ("PUT", None) => {
            authorize(ctx, &who, &key, Access::Write)?;
            if req.header("x-amz-copy-source").is_some() {
                return Err(not_implemented("CopyObject"));
            }
            check_content_md5(req, &body)?;
            let m = store.put(
                BUCKET,
                &key,
                &body,
                &content_type(req),
                metadata(req),
                ctx.now_ms,
            )?;
            stored(ctx, &who, &m);
            Ok(ok_headers(200, vec![("etag".into(), m.etag)]))
        }
        ("DELETE", None) => {
            authorize(ctx, &who, &key, Access::Write)?;
            store.delete(BUCKET, &key)?;
            Ok(ok_headers(204, vec![]))
        }
        ("POST", None) if req.param("uploads").is_some() => {
            authorize(ctx, &who, &key, Access::Write)?;
            let id =
                store.create_upload(BUCKET, &key, &content_type(req), metadata(req), ctx.now_ms)?;
            Ok(xml(
                200,
                format!(
                    "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{BUCKET}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
                    xml_escape(&key)
                ),
            ))
        }
        ("PUT", Some(id)) => {
            authorize(ctx, &who, &key, Access::Write)?;
            let number: u32 = req
                .param("partNumber")
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=crate::objstore::MAX_PARTS).contains(n))
                .ok_or_else(|| {
                    s3err(
                        400,
                        "InvalidArgument",
                        "Part number must be an integer between 1 and 10000, inclusive",
                    )
                })?;
            check_content_md5(req, &body)?;
            let etag = store.upload_part(&id, BUCKET, &key, number, &body)?;
            Ok(ok_headers(200, vec![("etag".into(), etag)]))
        }
        ("POST", Some(id)) => {
            authorize(ctx, &who, &key, Access::Write)?;
            let parts = parse_complete(&body)?;
            let m = store.complete_upload(&id, BUCKET, &key, &parts, ctx.now_ms)?;
            stored(ctx, &who, &m);
            Ok(xml(
                200,
                format!(
                    "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Location>{}</Location><Bucket>{BUCKET}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
                    xml_escape(&object_url(ctx, &key)),
                    xml_escape(&key),
                    xml_escape(&m.etag)
                ),
            ))
        }
        ("DELETE", Some(id)) => {
            authorize(ctx, &who, &key, Access::Write)?;
            store.abort_upload(&id, BUCKET, &key)?;
            Ok(ok_headers(204, vec![]))
        }
        ("GET", Some(_)) => Err(not_implemented("ListParts")),
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> S3Error {
    s3err(
        405,
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
    )
}

fn not_implemented(what: &str) -> S3Error {
    s3err(
        501,
        "NotImplemented",
        format!("{what} is not implemented by this server."),
    )
}

fn bucket_op(ctx: &Context, req: &S3Request, store: &ObjectStore) -> Result<S3Response, S3Error> {
    let q = req.query();
    let prefix = req.param("prefix").unwrap_or_default();
    match req.method.as_str() {
        "HEAD" => {
            caller(ctx, req, &prefix)?;
            Ok(ok_headers(200, vec![]))
        }
        "GET" if q.iter().any(|(k, _)| k == "location") => {
            caller(ctx, req, &prefix)?;
            Ok(xml(200, "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></LocationConstraint>".into()))
        }
        "GET" if q.iter().any(|(k, _)| k == "uploads" || k == "versions") => {
            Err(not_implemented("This bucket listing"))
        }
        "GET" => {
            let (who, _) = caller(ctx, req, &prefix)?;
            let allowed = match &who {
                Caller::User(p) if p.has("job.view.all") && job_of(&prefix).is_empty() => Ok(()),
                _ => authorize(ctx, &who, &prefix, Access::Read),
            };
            allowed.map_err(|e| {
                if e.code == "NoSuchKey" {
                    access_denied("List with a prefix of a job you may view: <job_id>/")
                } else {
                    e
                }
            })?;
            list_objects(req, store, &prefix)
        }
        "PUT" => Err(s3err(
            409,
            "BucketAlreadyOwnedByYou",
            "The bucket already exists.",
        )),
        "POST" => Err(not_implemented("DeleteObjects")),
        _ => Err(method_not_allowed()),
    }
}

fn list_buckets() -> S3Response {
    xml(
        200,
        format!(
            "<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>cloudtuner</ID><DisplayName>cloudtuner</DisplayName></Owner><Buckets><Bucket><Name>{BUCKET}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"
        ),
    )
}

fn list_objects(req: &S3Request, store: &ObjectStore, prefix: &str) -> Result<S3Response, S3Error> {
    let max_keys: usize = match req.param("max-keys") {
        None => 1000,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| {
                s3err(
                    400,
                    "InvalidArgument",
                    "max-keys must be a non-negative integer",
                )
            })?
            .min(1000),
    };
    let delimiter = req.param("delimiter").filter(|d| !d.is_empty());
    let token = req.param("continuation-token");
    let start_after = req.param("start-after");
    let after = match &token {
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    s3err(
                        400,
                        "InvalidArgument",
                        "The continuation token is not valid.",
                    )
                })?,
        ),
        None => start_after.clone(),
    };
    let url = req.param("encoding-type").as_deref() == Some("url");
    let enc = |s: &str| {
        if url {
            sigv4::aws_encode(s, false)
        } else {
            xml_escape(s)
        }
    };
    // Walk the sorted index, folding keys under a delimiter into common prefixes.
    let mut contents = String::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut count = 0;
    let mut last: Option<String> = None;
    let mut cursor = after.clone();
    let mut truncated = false;
    'outer: loop {
        let (page, more) = store.list(BUCKET, prefix, cursor.as_deref(), 1000)?;
        for (k, e) in &page {
            cursor = Some(k.clone());
            let folded = delimiter.as_ref().and_then(|d| {
                k[prefix.len()..]
                    .find(d.as_str())
                    .map(|i| k[..prefix.len() + i + d.len()].to_string())
            });
            if let Some(cp) = &folded
                && prefixes.last() == Some(cp)
            {
                continue;
            }
            if count == max_keys {
                truncated = true;
                break 'outer;
            }
            count += 1;
            last = Some(k.clone());
            match folded {
                Some(cp) => prefixes.push(cp),
                None => contents.push_str(&format!(
                    "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                    enc(k),
                    s3_time(e.uploaded_ms),
                    xml_escape(&e.etag),
                    e.size
                )),
            }
        }
        if !more {
            break;
        }
    }
    let common: String = prefixes
        .iter()
        .map(|p| {
            format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                enc(p)
            )
        })
        .collect();
    let next = match (&last, truncated) {
        (Some(l), true) => {
            // Resume after the whole common prefix, not inside it.
            let resume = prefixes
                .last()
                .filter(|p| l.starts_with(p.as_str()))
                .map(|p| format!("{p}\u{10FFFF}"))
                .unwrap_or_else(|| l.clone());
            format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(resume)
            )
        }
        _ => String::new(),
    };
    let body = format!(
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{BUCKET}</Name><Prefix>{}</Prefix>{}{}<KeyCount>{count}</KeyCount><MaxKeys>{max_keys}</MaxKeys>{}{}<IsTruncated>{truncated}</IsTruncated>{next}{contents}{common}</ListBucketResult>",
        enc(prefix),
        delimiter
            .as_ref()
            .map(|d| format!("<Delimiter>{}</Delimiter>", enc(d)))
            .unwrap_or_default(),
        if url {
            "<EncodingType>url</EncodingType>"
        } else {
            ""
        },
        token
            .map(|t| format!("<ContinuationToken>{}</ContinuationToken>", xml_escape(&t)))
            .unwrap_or_default(),
        start_after
            .map(|s| format!("<StartAfter>{}</StartAfter>", enc(&s)))
            .unwrap_or_default(),
    );
    Ok(xml(200, body))
}

fn get_object(req: &S3Request, store: &ObjectStore, key: &str) -> Result<S3Response, S3Error> {
    let m = store.head(BUCKET, key)?.ok_or_else(no_such_key)?;
    let mut headers = vec![
        ("etag".to_string(), m.etag.clone()),
        ("last-modified".to_string(), http_date(m.uploaded_ms)),
        ("content-type".to_string(), m.content_type.clone()),
        ("accept-ranges".to_string(), "bytes".to_string()),
    ];
    for (k, v) in &m.metadata {
        if let Some(v) = v.as_str() {
            headers.push((format!("x-amz-meta-{k}"), v.to_string()));
        }
    }
    let (status, start, end) = match req.header("range") {
        Some(r) => {
            let (s, e) = parse_range(r, m.size).ok_or_else(|| {
                s3err(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                )
            })?;
            headers.push((
                "content-range".into(),
                format!("bytes {s}-{}/{}", e - 1, m.size),
            ));
            (206, s, e)
        }
        None => (200, 0, m.size),
    };
    if req.method == "HEAD" {
        headers.push(("content-length".into(), (end - start).to_string()));
        return Ok(S3Response {
            status,
            headers,
            body: Vec::new(),
        });
    }
    let body = store.read(&m, start, end)?;
    Ok(S3Response {
        status,
        headers,
        body,
    })
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → half-open range within `size`.
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (a.parse().ok()?, (b.parse::<u64>().ok()? + 1).min(size)),
    };
    (start < end && start < size).then_some((start, end))
}

fn check_content_md5(req: &S3Request, body: &[u8]) -> Result<(), S3Error> {
    use md5::{Digest, Md5};
    if let Some(given) = req.header("content-md5") {
        let actual = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body));
        if given.trim() != actual {
            return Err(s3err(
                400,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok(())
}

fn content_type(req: &S3Request) -> String {
    req.header("content-type")
        .unwrap_or("binary/octet-stream")
        .to_string()
}

fn metadata(req: &S3Request) -> Map<String, Value> {
    req.headers
        .iter()
        .filter_map(|(k, v)| {
            k.to_ascii_lowercase()
                .strip_prefix("x-amz-meta-")
                .map(|name| (name.to_string(), Value::String(v.clone())))
        })
        .collect()
}

fn object_url(ctx: &Context, key: &str) -> String {
    format!(
        "{}{MOUNT}/{BUCKET}/{}",
        ctx.public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/'),
        sigv4::aws_encode(key, false)
    )
}

/// After a job stored an object: point the job's `output_url` at it when the
/// job delivers to this server — the weights (`.safetensors`) win, else the
/// first object. Best effort: the object is stored either way.
fn stored(ctx: &Context, who: &Caller, m: &Manifest) {
    let Caller::Job(job) = who else { return };
    let url = object_url(ctx, &m.key);
    let weights = m.key.ends_with(".safetensors");
    let _ = JobStore::new(ctx.kv).update::<()>(&job.job_id, |j| {
        let local = j.delivery.as_ref().is_some_and(|d| d.local);
        let current_is_local = j
            .output_url
            .as_deref()
            .is_some_and(|u| u.contains(&format!("{MOUNT}/{BUCKET}/")));
        let current_is_weights = j
            .output_url
            .as_deref()
            .is_some_and(|u| u.ends_with(".safetensors"));
        if local && (!current_is_local || (weights && !current_is_weights)) {
            j.output_url = Some(url.clone());
        }
        Ok(())
    });
}

fn ok_headers(status: u16, headers: Vec<(String, String)>) -> S3Response {
    S3Response {
        status,
        headers,
        body: Vec::new(),
    }
}

fn xml(status: u16, body: String) -> S3Response {
    S3Response {
        status,
        headers: vec![("content-type".into(), "application/xml".into())],
        body: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}").into_bytes(),
    }
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn s3_time(ms: u64) -> String {
    // S3 lists times with milliseconds: 2026-01-01T00:00:00.000Z.
    let base = rfc3339(ms / 1000 * 1000);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms % 1000)
}

pub fn http_date(ms: u64) -> String {
    use time::macros::format_description;
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The `(PartNumber, ETag)` list of a `CompleteMultipartUpload` body.
fn parse_complete(body: &[u8]) -> Result<Vec<(u32, String)>, S3Error> {
    use quick_xml::events::Event;
    let malformed = || {
        s3err(
            400,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
        )
    };
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut parts = Vec::new();
    let (mut number, mut etag): (Option<u32>, Option<String>) = (None, None);
    // Text arrives in pieces: plain runs and entity references (`&quot;`).
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|_| malformed())? {
            Event::Start(_) => text.clear(),
            Event::Text(t) => text.push_str(&t.decode().map_err(|_| malformed())?),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|_| malformed())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|_| malformed())?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(malformed)?
                            .to_string()
                    }
                };
                text.push_str(&resolved);
            }
            Event::End(e) => {
                match e.local_name().as_ref() {
                    b"PartNumber" => number = Some(text.trim().parse().map_err(|_| malformed())?),
                    b"ETag" => etag = Some(text.trim().to_string()),
                    b"Part" => parts.push((
                        number.take().ok_or_else(malformed)?,
                        etag.take().ok_or_else(malformed)?,
                    )),
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if parts.is_empty() {
        return Err(malformed());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_http_rules() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-5", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn complete_bodies_parse_like_boto3_sends_them() {
        let body = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>&quot;abc&quot;</ETag><PartNumber>1</PartNumber></Part><Part><ETag>"def"</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>"#;
        assert_eq!(
            parse_complete(body).unwrap(),
            vec![(1, "\"abc\"".to_string()), (2, "\"def\"".to_string())]
        );
        assert_eq!(parse_complete(b"<oops").unwrap_err().code, "MalformedXML");
    }

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

    #[test]
    fn times_render_as_s3_does() {
        assert_eq!(s3_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            http_date(1_700_000_000_123),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }
}
