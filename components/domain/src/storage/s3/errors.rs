//! S3's errors: the codes boto3 and the AWS CLI understand, rendered as S3's XML.

use crate::kernel::kv::KvError;
use crate::storage::objects::StoreError;
use crate::storage::sigv4::SigError;

/// An S3 error: status, S3 code and message (rendered as S3's XML).
#[derive(Debug, Clone, PartialEq)]
pub struct S3Error {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

pub(super) fn s3err(status: u16, code: &'static str, message: impl Into<String>) -> S3Error {
    S3Error {
        status,
        code,
        message: message.into(),
    }
}

pub(super) fn access_denied(message: impl Into<String>) -> S3Error {
    s3err(403, "AccessDenied", message)
}

/// A store failure: S3's 503 `ServiceUnavailable` (which boto3 and the AWS
/// CLI retry) when the store cannot be reached right now, else 500.
pub(super) fn internal(e: KvError) -> S3Error {
    if e.kind == crate::kernel::kv::KvErrorKind::Unavailable {
        return s3err(
            503,
            "ServiceUnavailable",
            format!(
                "the data store is unavailable right now; retry shortly ({})",
                e.message
            ),
        );
    }
    s3err(500, "InternalError", format!("storage failed: {e}"))
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

pub(super) fn sig_error(e: SigError) -> S3Error {
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

pub(super) fn no_such_key() -> S3Error {
    s3err(404, "NoSuchKey", "The specified key does not exist.")
}

pub(super) fn method_not_allowed() -> S3Error {
    s3err(
        405,
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
    )
}

pub(super) fn not_implemented(what: &str) -> S3Error {
    s3err(
        501,
        "NotImplemented",
        format!("{what} is not implemented by this server."),
    )
}
