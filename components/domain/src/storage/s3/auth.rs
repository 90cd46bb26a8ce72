//! Who is calling the S3 API, and what they may touch: job credentials
//! (SigV4, presigned SigV2, upload tokens) or a signed-in user.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::api_keys::{self, ApiKey};
use crate::auth::principal::Action;
use crate::auth::principal::Principal;
use crate::kernel::kv::{KvError, KvStore, create_once};
use crate::kernel::secrets::constant_time_eq;
use crate::storage::sigv4::{self, Signed};

use super::errors::{S3Error, access_denied, no_such_key, s3err, sig_error};
use super::{Context, S3Request, UPLOAD_GRACE_MS, job_of};

const SIGNING_KEY: &str = "storage:signing-key";

/// A job as the S3 API sees it: whose it is and when it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Uploader {
    pub job_id: String,
    pub owner: String,
    /// When the job reached a terminal status; `None` while it is active.
    pub ended_ms: Option<u64>,
}

/// What the S3 API needs of jobs (implemented by `jobs::store::JobStore`), so
/// storage does not depend on the job record.
pub trait JobDirectory {
    fn uploader(&self, job_id: &str) -> Result<Option<Uploader>, KvError>;
    /// A job stored an object at `key`, downloadable at `url` (best effort).
    fn object_stored(&self, job_id: &str, key: &str, url: &str);
}

/// Who is calling.
pub(super) enum Caller {
    Job(Uploader),
    User(Principal),
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
        .ok_or_else(|| KvError::new("storage signing key unreadable"))
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

/// Authenticates the caller: SigV4 or upload-token headers → job; otherwise
/// the user the component resolved. With the caller comes the body when it
/// differs from the one received (aws-chunked framing removed); `None` means
/// the body as received (not copied: a body may be hundreds of megabytes).
pub(super) fn caller(
    ctx: &Context,
    req: &S3Request,
    key: &str,
) -> Result<(Caller, Option<Vec<u8>>), S3Error> {
    let signed = Signed {
        method: &req.method,
        raw_path: &req.raw_path,
        raw_query: &req.raw_query,
        headers: &req.headers,
    };
    let claimed = sigv4::claimed(&signed).map_err(sig_error)?;
    if let Some(claimed) = claimed {
        let (who, secret) = match claimed.access_key.strip_prefix(KEY_ACCESS_PREFIX) {
            Some(key_id) => {
                let (principal, secret) = api_key_caller(ctx, key_id)?;
                (Caller::User(principal), secret)
            }
            None => {
                let job = job_for_key(ctx, &claimed.access_key)?;
                let (_, secret) = job_credentials(ctx.kv, &job.job_id)?;
                (Caller::Job(job), secret)
            }
        };
        sigv4::verify(&signed, &claimed, &secret, ctx.now_ms).map_err(sig_error)?;
        let body = signed_body(req, &signed, &claimed, &secret)?;
        return Ok((who, body));
    }
    if let Some(presigned) = crate::storage::sigv2::claimed(&signed) {
        if !matches!(req.method.as_str(), "GET" | "HEAD") {
            return Err(access_denied(
                "Signature Version 2 is accepted only for presigned downloads; sign with SigV4.",
            ));
        }
        let job = job_for_key(ctx, &presigned.access_key)?;
        let (_, secret) = job_credentials(ctx.kv, &job.job_id)?;
        crate::storage::sigv2::verify(&signed, &presigned, &secret, ctx.now_ms)
            .map_err(sig_error)?;
        return Ok((Caller::Job(job), None));
    }
    let token = req
        .header("x-upload-token")
        .or_else(|| req.header("x-simpletuner-secret"));
    if let Some(token) = token {
        let job_id = job_of(key);
        let job = ctx.jobs.uploader(job_id)?;
        let (_, secret) = job_credentials(ctx.kv, job_id)?;
        return match job {
            Some(job) if constant_time_eq(token, &secret) => Ok((Caller::Job(job), None)),
            _ => Err(access_denied(
                "The upload token does not belong to the job this key is under.",
            )),
        };
    }
    match &ctx.user {
        Some(p) => Ok((Caller::User(p.clone()), None)),
        None => Err(access_denied(
            "Sign the request with the job's credentials (SigV4), send X-Upload-Token, or sign in.",
        )),
    }
}

/// The request body, its signature or hash checked: `None` when it is the
/// body as received, the decoded bytes when aws-chunked framing was removed.
///
/// Only the signed payload hash says whether the body is aws-chunked
/// (`STREAMING-*`): `Content-Encoding` may be unsigned, and trusting it would
/// let anyone who can alter a request skip the hash the signature covers.
fn signed_body(
    req: &S3Request,
    signed: &Signed,
    claimed: &sigv4::Claimed,
    secret: &str,
) -> Result<Option<Vec<u8>>, S3Error> {
    let hash = sigv4::payload_hash(signed, claimed);
    if !hash.starts_with("STREAMING-") {
        sigv4::check_payload(hash, &req.body).map_err(sig_error)?;
        return Ok(None);
    }
    let signed_chunks = hash.starts_with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    let body = sigv4::decode_aws_chunked(&req.body, signed_chunks.then_some((claimed, secret)))
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
    Ok(Some(body))
}

/// What an API key's S3 access key id starts with (a job's is its job id).
pub const KEY_ACCESS_PREFIX: &str = "key_";

/// The S3 credential pair of an API key: (access key id, secret access key).
/// The secret is derived from the key's stored hash under this installation's
/// key, so it is stored nowhere; it is shown once, with the key.
pub fn api_key_credentials(kv: &dyn KvStore, key: &ApiKey) -> Result<(String, String), KvError> {
    let signing = signing_key(kv)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&signing).expect("any key length");
    mac.update(format!("apikey:{}:{}", key.id, key.key_hash).as_bytes());
    let secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok((format!("{KEY_ACCESS_PREFIX}{}", key.id), secret))
}

/// The user behind an API key's S3 access key, and the secret to check the
/// signature with.
fn api_key_caller(ctx: &Context, key_id: &str) -> Result<(Principal, String), S3Error> {
    let unknown = |m: String| s3err(403, "InvalidAccessKeyId", m);
    let key = api_keys::by_id(ctx.kv, key_id)
        .map_err(|e| unknown(e.message))?
        .ok_or_else(|| {
            unknown("The AWS Access Key Id you provided does not exist in our records.".into())
        })?;
    let (_, secret) = api_key_credentials(ctx.kv, &key)?;
    let principal =
        api_keys::principal_of(ctx.kv, key, ctx.now_ms).map_err(|e| unknown(e.message))?;
    Ok((principal, secret))
}

/// The job an access key names.
fn job_for_key(ctx: &Context, access_key: &str) -> Result<Uploader, S3Error> {
    ctx.jobs.uploader(access_key)?.ok_or_else(|| {
        s3err(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    })
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Access {
    Read,
    Write,
}

/// May `caller` touch `key` (or list under it, for a prefix)?
pub(super) fn authorize(
    ctx: &Context,
    caller: &Caller,
    key: &str,
    access: Access,
) -> Result<(), S3Error> {
    match caller {
        Caller::Job(job) => {
            let own = format!("{}/", job.job_id);
            if !key.starts_with(&own) {
                return Err(access_denied(format!(
                    "These credentials may only use keys under {own}"
                )));
            }
            if job
                .ended_ms
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
            let visible = ctx
                .jobs
                .uploader(job_of(key))?
                .is_some_and(|j| p.can(Action::JobView, &j.owner));
            if visible { Ok(()) } else { Err(no_such_key()) }
        }
    }
}
