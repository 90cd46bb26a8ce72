//! AWS Signature Version 4 verification for the S3-compatible storage endpoint:
//! the `Authorization: AWS4-HMAC-SHA256 ...` header form, the presigned-query
//! form (`X-Amz-Signature=...`), and `aws-chunked` bodies (signed chunks as the
//! AWS CLI sends them, unsigned-with-trailer as boto3 sends over HTTPS).
//!
//! The server recomputes the canonical request from what it received, so the
//! path and query are decoded and re-encoded with AWS's rules rather than
//! trusted byte for byte.

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

/// Checks a plain (not chunked) body against the signed payload hash.
pub fn check_payload(hash: &str, body: &[u8]) -> Result<(), SigError> {
    if hash == UNSIGNED_PAYLOAD {
        return Ok(());
    }
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigError::Malformed(format!(
            "x-amz-content-sha256 {hash:?} is not supported"
        )));
    }
    if hex::encode(Sha256::digest(body)).eq_ignore_ascii_case(hash) {
        Ok(())
    } else {
        Err(SigError::PayloadMismatch)
    }
}

/// Decodes an `aws-chunked` body (`STREAMING-*` payload hashes). With signed
/// chunks (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`) every chunk
/// signature is checked in order, seeded by the request signature; trailers
/// (checksums) are read and dropped.
pub fn decode_aws_chunked(
    body: &[u8],
    signed: Option<(&Claimed, &str)>,
) -> Result<Vec<u8>, SigError> {
    let bad = |m: &str| SigError::Malformed(format!("aws-chunked body: {m}"));
    let mut out = Vec::with_capacity(body.len());
    let mut pos = 0;
    let mut previous = signed.map(|(c, _)| c.signature.clone());
    loop {
        let line_end = find_crlf(body, pos).ok_or_else(|| bad("chunk header without CRLF"))?;
        let header = std::str::from_utf8(&body[pos..line_end]).map_err(|_| bad("chunk header"))?;
        let (size_hex, ext) = header.split_once(';').unwrap_or((header, ""));
        let size = usize::from_str_radix(size_hex.trim(), 16).map_err(|_| bad("chunk size"))?;
        let data_start = line_end + 2;
        let data_end = data_start
            .checked_add(size)
            .filter(|e| *e <= body.len())
            .ok_or_else(|| bad("chunk longer than the body"))?;
        let data = &body[data_start..data_end];
        if let (Some((claimed, secret)), Some(prev)) = (signed, previous.as_mut()) {
            let given = ext
                .strip_prefix("chunk-signature=")
                .ok_or(SigError::Mismatch)?;
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{EMPTY_SHA256}\n{}",
                claimed.amz_date,
                claimed.scope,
                hex::encode(Sha256::digest(data))
            );
            let expected = hex::encode(hmac(
                &signing_key(secret, &claimed.scope),
                string_to_sign.as_bytes(),
            ));
            if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
                return Err(SigError::Mismatch);
            }
            *prev = expected;
        }
        out.extend_from_slice(data);
        if size == 0 {
            // Trailers (e.g. x-amz-checksum-crc32) follow the last chunk.
            return Ok(out);
        }
        if body.get(data_end..data_end + 2) != Some(b"\r\n") {
            return Err(bad("chunk data not followed by CRLF"));
        }
        pos = data_end + 2;
    }
}

fn find_crlf(body: &[u8], from: usize) -> Option<usize> {
    body.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// Query pairs, percent-decoded (`+` stays a plus, as S3 reads it); a bare
/// name (`?uploads`) has an empty value.
pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Percent-decodes (invalid escapes are kept as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// AWS's URI encoding: unreserved characters stay, everything else is `%XX`
/// (upper-case); `/` stays in paths.
pub fn aws_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
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

    /// AWS's documented chunked-upload example (sigv4-streaming): 66560 bytes
    /// of 'a' in 64 KiB + 1 KiB chunks; seed signature and first chunk signature.
    #[test]
    fn verifies_signed_chunks_like_the_aws_streaming_example() {
        let claimed = Claimed {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
            amz_date: "20130524T000000Z".into(),
            signed_headers: vec![],
            signature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
            expires_secs: None,
        };
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let mut body = Vec::new();
        let chunk1 = vec![b'a'; 65536];
        let chunk2 = vec![b'a'; 1024];
        body.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        body.extend_from_slice(&chunk1);
        body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        body.extend_from_slice(&chunk2);
        body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        let decoded = decode_aws_chunked(&body, Some((&claimed, secret))).unwrap();
        assert_eq!(decoded.len(), 66560);
        assert!(decoded.iter().all(|b| *b == b'a'));
        // Any flipped byte breaks the chain.
        let mut tampered = body.clone();
        tampered[200] = b'b';
        assert_eq!(
            decode_aws_chunked(&tampered, Some((&claimed, secret))),
            Err(SigError::Mismatch)
        );
    }

    #[test]
    fn unsigned_chunks_with_a_trailer_decode() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        assert_eq!(decode_aws_chunked(body, None).unwrap(), b"hello world");
        assert!(decode_aws_chunked(b"ff\r\nshort\r\n", None).is_err());
    }

    #[test]
    fn payload_hash_is_checked() {
        assert!(check_payload(EMPTY_SHA256, b"").is_ok());
        assert_eq!(
            check_payload(EMPTY_SHA256, b"x"),
            Err(SigError::PayloadMismatch)
        );
        assert!(check_payload(UNSIGNED_PAYLOAD, b"anything").is_ok());
    }

    #[test]
    fn encoding_follows_aws_rules() {
        assert_eq!(aws_encode("a b/c~d+e", false), "a%20b/c~d%2Be");
        assert_eq!(aws_encode("a/b", true), "a%2Fb");
        assert_eq!(percent_decode("a%20b%2Fc%zz"), "a b/c%zz");
        assert_eq!(
            decode_query("uploads&partNumber=2&x=a%2Bb"),
            vec![
                ("uploads".to_string(), String::new()),
                ("partNumber".to_string(), "2".to_string()),
                ("x".to_string(), "a+b".to_string())
            ]
        );
    }
}
