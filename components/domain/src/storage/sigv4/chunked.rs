//! `aws-chunked` bodies: signed chunks as the AWS CLI sends them, and
//! unsigned chunks with a trailer as boto3 sends them over HTTPS.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::*;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
