//! AWS Signature Version 2 presigned URLs (`?AWSAccessKeyId=&Expires=&Signature=`).
//! boto3's `generate_presigned_url` for S3 still produces these unless the
//! client is configured for `s3v4`, so a download link made with default
//! boto3 must work. Only the query form is accepted, and only to read.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::storage::MOUNT;
use crate::storage::sigv4::{SigError, Signed, decode_query};

/// Query parameters S3 includes in the V2 canonical resource.
const SUBRESOURCES: [&str; 9] = [
    "partNumber",
    "uploadId",
    "uploads",
    "versionId",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-type",
    "response-expires",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub access_key: String,
    pub expires_secs: u64,
    pub signature: String,
}

/// The V2 presigned parameters, if the query carries them.
pub fn claimed(req: &Signed) -> Option<Presigned> {
    let q = decode_query(req.raw_query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Some(Presigned {
        access_key: get("AWSAccessKeyId")?,
        expires_secs: get("Expires")?.parse().ok()?,
        signature: get("Signature")?,
    })
}

/// Checks a V2 presigned request: not expired, signature over
/// `METHOD\nContent-MD5\nContent-Type\nExpires\n<x-amz headers><path>[?subresources]`.
pub fn verify(req: &Signed, p: &Presigned, secret: &str, now_ms: u64) -> Result<(), SigError> {
    if now_ms / 1000 > p.expires_secs {
        return Err(SigError::Expired);
    }
    let mut amz: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-amz-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    amz.sort();
    let amz: String = amz.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut sub: Vec<(String, String)> = decode_query(req.raw_query)
        .into_iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .collect();
    sub.sort();
    let subresources = if sub.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = sub
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        format!("?{}", parts.join("&"))
    };
    // botocore signs `/bucket/key` without the endpoint's path prefix; other
    // clients sign the whole path. Either is accepted.
    let stripped = req.raw_path.strip_prefix(MOUNT).unwrap_or(req.raw_path);
    let matches = [stripped, req.raw_path].iter().any(|path| {
        let string_to_sign = format!(
            "{}\n{}\n{}\n{}\n{amz}{path}{subresources}",
            req.method,
            req.header("content-md5").unwrap_or(""),
            req.header("content-type").unwrap_or(""),
            p.expires_secs
        );
        let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(string_to_sign.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        bool::from(expected.as_bytes().ct_eq(p.signature.as_bytes()))
    });
    if matches {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from AWS's "Signing and authenticating REST requests"
    /// (query string request authentication): GET /johnsmith/photos/puppy.jpg,
    /// Expires 1175139620.
    #[test]
    fn matches_the_aws_documented_query_string_example() {
        let h: Vec<(String, String)> = vec![];
        let req = Signed {
            method: "GET",
            raw_path: "/johnsmith/photos/puppy.jpg",
            raw_query: "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620",
            headers: &h,
        };
        let p = claimed(&req).unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        verify(&req, &p, secret, 1_175_139_000_000).unwrap();
        assert_eq!(
            verify(&req, &p, "wrong", 1_175_139_000_000),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify(&req, &p, secret, 1_175_139_621_000),
            Err(SigError::Expired)
        );
    }
}
