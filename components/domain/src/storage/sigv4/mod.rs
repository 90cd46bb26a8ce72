//! AWS Signature Version 4 verification for the S3-compatible storage endpoint:
//! the `Authorization: AWS4-HMAC-SHA256 ...` header form, the presigned-query
//! form (`X-Amz-Signature=...`), and `aws-chunked` bodies (signed chunks as the
//! AWS CLI sends them, unsigned-with-trailer as boto3 sends over HTTPS).
//!
//! The server recomputes the canonical request from what it received, so the
//! path and query are decoded and re-encoded with AWS's rules rather than
//! trusted byte for byte.
//!
//! `aws-chunked` bodies are decoded in [`chunked`]; AWS's URI encoding is in
//! [`encoding`].

mod chunked;
mod encoding;

pub use chunked::{check_payload, decode_aws_chunked};
pub use encoding::{aws_encode, decode_query, percent_decode};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{
    OffsetDateTime, PrimitiveDateTime, format_description::FormatItem, macros::format_description,
};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How far a header-signed request's clock may be from ours (S3 allows 15 min).
const MAX_SKEW_MS: i64 = 15 * 60 * 1000;
/// Presigned URLs live at most 7 days, as on S3.
const MAX_EXPIRES_SECS: u64 = 7 * 24 * 3600;
const AMZ_DATE: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Why a signature was refused; maps onto S3 error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// Malformed Authorization header or query (`AuthorizationHeaderMalformed`,
    /// `AuthorizationQueryParametersError`).
    Malformed(String),
    /// The signature does not match (`SignatureDoesNotMatch`).
    Mismatch,
    /// The request time is too far from ours (`RequestTimeTooSkewed`).
    Skewed,
    /// A presigned URL past its expiry (`AccessDenied`, "Request has expired").
    Expired,
    /// The body's SHA-256 differs from `x-amz-content-sha256` (`XAmzContentSHA256Mismatch`).
    PayloadMismatch,
}

/// What the request claims: who signed it, when, for which scope, over what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub access_key: String,
    /// `YYYYMMDD/region/service/aws4_request`.
    pub scope: String,
    pub amz_date: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// Presigned: `X-Amz-Expires` in seconds; `None` for the header form.
    pub expires_secs: Option<u64>,
}

/// The parts of the request a signature covers. `raw_path` and `raw_query`
/// are as received (still percent-encoded); header names are lower-case.
pub struct Signed<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
}

impl Signed<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Which SigV4 form the request uses, if any.
pub fn claimed(req: &Signed) -> Result<Option<Claimed>, SigError> {
    if let Some(auth) = req.header("authorization")
        && auth.starts_with(ALGORITHM)
    {
        return parse_header(auth, req).map(Some);
    }
    let query = decode_query(req.raw_query);
    if query.iter().any(|(k, _)| k == "X-Amz-Algorithm") {
        return parse_query(&query).map(Some);
    }
    Ok(None)
}

fn parse_header(auth: &str, req: &Signed) -> Result<Claimed, SigError> {
    let malformed = |m: &str| SigError::Malformed(m.to_string());
    let rest = auth[ALGORITHM.len()..].trim();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return Err(malformed("Authorization header is not `Key=Value, ...`"));
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(malformed(
            "Authorization header needs Credential, SignedHeaders and Signature",
        ));
    };
    let amz_date = req
        .header("x-amz-date")
        .or_else(|| req.header("date"))
        .ok_or_else(|| malformed("X-Amz-Date header is missing"))?;
    build(credential, signed, signature, amz_date, None)
}

fn parse_query(query: &[(String, String)]) -> Result<Claimed, SigError> {
    let get = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| SigError::Malformed(format!("query parameter {k} is missing")))
    };
    if get("X-Amz-Algorithm")? != ALGORITHM {
        return Err(SigError::Malformed(format!(
            "X-Amz-Algorithm must be {ALGORITHM}"
        )));
    }
    let expires: u64 = get("X-Amz-Expires")?
        .parse()
        .map_err(|_| SigError::Malformed("X-Amz-Expires must be a number".into()))?;
    if expires == 0 || expires > MAX_EXPIRES_SECS {
        return Err(SigError::Malformed(
            "X-Amz-Expires must be between 1 and 604800 seconds".into(),
        ));
    }
    build(
        get("X-Amz-Credential")?,
        get("X-Amz-SignedHeaders")?,
        get("X-Amz-Signature")?,
        get("X-Amz-Date")?,
        Some(expires),
    )
}

fn build(
    credential: &str,
    signed: &str,
    signature: &str,
    amz_date: &str,
    expires_secs: Option<u64>,
) -> Result<Claimed, SigError> {
    let (access_key, scope) = credential
        .split_once('/')
        .ok_or_else(|| SigError::Malformed("Credential must be <key>/<scope>".into()))?;
    let scope_parts: Vec<&str> = scope.split('/').collect();
    if scope_parts.len() != 4 || scope_parts[3] != "aws4_request" {
        return Err(SigError::Malformed(
            "Credential scope must be <date>/<region>/<service>/aws4_request".into(),
        ));
    }
    if !amz_date.starts_with(scope_parts[0]) {
        return Err(SigError::Malformed(
            "the credential date does not match X-Amz-Date".into(),
        ));
    }
    if scope_parts[2] != "s3" {
        return Err(SigError::Malformed(
            "the credential service must be s3".into(),
        ));
    }
    let signed_headers: Vec<String> = signed.split(';').map(|h| h.to_ascii_lowercase()).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed("the host header must be signed".into()));
    }
    Ok(Claimed {
        access_key: access_key.to_string(),
        scope: scope.to_string(),
        amz_date: amz_date.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
        expires_secs,
    })
}

fn amz_date_ms(amz_date: &str) -> Result<i64, SigError> {
    PrimitiveDateTime::parse(amz_date, AMZ_DATE)
        .map(|t| (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| SigError::Malformed("X-Amz-Date must look like 20260101T000000Z".into()))
}

/// Formats a time the way `X-Amz-Date` wants it (used by tests and clients).
pub fn format_amz_date(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| t.format(AMZ_DATE).ok())
        .unwrap_or_default()
}

/// The payload hash the signature covers: the `x-amz-content-sha256` header
/// for the header form (S3 requires it), `UNSIGNED-PAYLOAD` for presigned URLs.
pub fn payload_hash<'a>(req: &'a Signed, claimed: &Claimed) -> &'a str {
    match claimed.expires_secs {
        Some(_) => UNSIGNED_PAYLOAD,
        None => req
            .header("x-amz-content-sha256")
            .unwrap_or(UNSIGNED_PAYLOAD),
    }
}

/// Checks the signature with the secret that belongs to `claimed.access_key`,
/// and the request time against `now_ms`. The body is checked separately
/// ([`check_payload`], [`decode_aws_chunked`]).
pub fn verify(req: &Signed, claimed: &Claimed, secret: &str, now_ms: u64) -> Result<(), SigError> {
    let signed_at = amz_date_ms(&claimed.amz_date)?;
    let now = now_ms as i64;
    match claimed.expires_secs {
        None if (now - signed_at).abs() > MAX_SKEW_MS => return Err(SigError::Skewed),
        Some(exp) if now > signed_at + exp as i64 * 1000 => return Err(SigError::Expired),
        // A URL presigned for the future (clock skew) is accepted within the skew.
        Some(_) if signed_at - now > MAX_SKEW_MS => return Err(SigError::Skewed),
        _ => {}
    }
    let canonical = canonical_request(req, claimed, payload_hash(req, claimed));
    let expected = signature(secret, claimed, &canonical);
    if bool::from(expected.as_bytes().ct_eq(claimed.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

/// The signature a client with `secret` computes over `canonical`.
pub fn signature(secret: &str, claimed: &Claimed, canonical: &str) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        claimed.amz_date,
        claimed.scope,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    hex::encode(hmac(
        &signing_key(secret, &claimed.scope),
        string_to_sign.as_bytes(),
    ))
}

fn signing_key(secret: &str, scope: &str) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part.as_bytes());
    }
    key
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The canonical request of SigV4 (for S3: no path normalisation, single
/// encoding).
pub fn canonical_request(req: &Signed, claimed: &Claimed, payload_hash: &str) -> String {
    let path = aws_encode(&percent_decode(req.raw_path), false);
    let mut query: Vec<(String, String)> = decode_query(req.raw_query)
        .into_iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (aws_encode(&k, true), aws_encode(&v, true)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let headers: String = claimed
        .signed_headers
        .iter()
        .map(|name| {
            let values: Vec<String> = req
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    format!(
        "{}\n{path}\n{query}\n{headers}\n{}\n{payload_hash}",
        req.method,
        claimed.signed_headers.join(";")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// AWS's documented example "GET Object" (s3 sig-v4-header-based-auth):
    /// secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, examplebucket/test.txt,
    /// Range bytes=0-9, 20130524T000000Z.
    #[test]
    fn matches_the_aws_documented_get_object_example() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ]);
        let req = Signed {
            method: "GET",
            raw_path: "/test.txt",
            raw_query: "",
            headers: &h,
        };
        let c = claimed(&req).unwrap().unwrap();
        assert_eq!(c.access_key, "AKIAIOSFODNN7EXAMPLE");
        let when = amz_date_ms("20130524T000000Z").unwrap() as u64;
        verify(&req, &c, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", when).unwrap();
        assert_eq!(verify(&req, &c, "wrong", when), Err(SigError::Mismatch));
        assert_eq!(
            verify(
                &req,
                &c,
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                when + 16 * 60 * 1000
            ),
            Err(SigError::Skewed)
        );
    }

    /// AWS's documented presigned example (sigv4-query-string-auth): GET
    /// /test.txt, 86400 s, 20130524T000000Z.
    #[test]
    fn matches_the_aws_documented_presigned_example() {
        let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let req = Signed {
            method: "GET",
            raw_path: "/test.txt",
            raw_query: q,
            headers: &h,
        };
        let c = claimed(&req).unwrap().unwrap();
        let when = amz_date_ms("20130524T000000Z").unwrap() as u64;
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        verify(&req, &c, secret, when + 3_600_000).unwrap();
        assert_eq!(
            verify(&req, &c, secret, when + 86_401_000),
            Err(SigError::Expired)
        );
    }
}
