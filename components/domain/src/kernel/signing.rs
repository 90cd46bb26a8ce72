//! Standard Webhooks signatures (the scheme Replicate signs with, and the one
//! cloudtuner signs its own notifications with): `webhook-id`,
//! `webhook-timestamp` (±5 min) and `webhook-signature` (one or more
//! space-separated `v1,<base64>`) over `"{id}.{timestamp}.{body}"`,
//! HMAC-SHA256 keyed with the base64 part of a `whsec_` secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::kernel::error::ApiError;
use crate::kernel::secrets::constant_time_eq;

pub const TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    MissingHeaders,
    BadTimestamp,
    OutsideTolerance,
    BadSecret,
    NoMatch,
}

impl SignatureError {
    pub fn to_api_error(&self) -> ApiError {
        let m = match self {
            SignatureError::MissingHeaders => {
                "webhook-id, webhook-timestamp and webhook-signature are required"
            }
            SignatureError::BadTimestamp => "webhook-timestamp is not a Unix time",
            SignatureError::OutsideTolerance => "webhook-timestamp is more than 5 minutes from now",
            SignatureError::BadSecret => "the signing secret is not a whsec_ base64 secret",
            SignatureError::NoMatch => "no webhook-signature matches",
        };
        ApiError::new(401, "invalid_signature", m)
    }
}

/// The three Standard Webhooks headers.
#[derive(Debug, Clone, Default)]
pub struct SignedHeaders {
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
}

pub fn sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> Result<String, SignatureError> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| SignatureError::BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SignatureError::BadSecret)?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks the timestamp window only (cheap; before any secret is fetched).
pub fn check_timestamp(
    h: &SignedHeaders,
    now_secs: u64,
) -> Result<(String, u64, String), SignatureError> {
    let (Some(id), Some(ts), Some(sig)) = (&h.id, &h.timestamp, &h.signature) else {
        return Err(SignatureError::MissingHeaders);
    };
    let ts: u64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if ts.abs_diff(now_secs) > TOLERANCE_SECS {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok((id.clone(), ts, sig.clone()))
}

pub fn verify(
    secret: &str,
    h: &SignedHeaders,
    body: &[u8],
    now_secs: u64,
) -> Result<(), SignatureError> {
    let (id, ts, signatures) = check_timestamp(h, now_secs)?;
    let expected = sign(secret, &id, ts, body)?;
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.trim().strip_prefix("v1,"))
        .any(|sig| constant_time_eq(sig, &expected));
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, ts: u64, sig: &str) -> SignedHeaders {
        SignedHeaders {
            id: Some(id.into()),
            timestamp: Some(ts.to_string()),
            signature: Some(sig.into()),
        }
    }

    #[test]
    fn shared_test_vectors_verify() {
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        assert_eq!(
            verify(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                &h,
                br#"{"test": 2432232314}"#,
                1614265330
            ),
            Ok(())
        );
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let h = headers(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        );
        assert_eq!(
            verify(
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                &h,
                body,
                1649367553
            ),
            Ok(())
        );
    }

    #[test]
    fn negative_cases_fail() {
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        let ts = 1649367553;
        let good = "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(
            verify(
                secret,
                &headers(id, ts, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="),
                body,
                ts
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(secret, &headers(id, ts, "v1,"), body, ts),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(
                secret,
                &headers(id, ts, &format!("v1,{}", &good[8..])),
                body,
                ts
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                &headers(id, ts, &format!("v1,{good}")),
                body,
                ts
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(
                secret,
                &headers(id, ts, &format!("v1,{good}")),
                body,
                ts + TOLERANCE_SECS + 1
            ),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(
                secret,
                &headers(id, ts, &format!("v1,{good}")),
                body,
                ts - TOLERANCE_SECS - 1
            ),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(secret, &SignedHeaders::default(), body, ts),
            Err(SignatureError::MissingHeaders)
        );
        // Several signatures (key rotation): any v1 match passes; other schemes are skipped.
        let multi = format!("v1a,xyz v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,{good}");
        assert_eq!(verify(secret, &headers(id, ts, &multi), body, ts), Ok(()));
        // A tampered body fails.
        assert_eq!(
            verify(secret, &headers(id, ts, &format!("v1,{good}")), b"{}", ts),
            Err(SignatureError::NoMatch)
        );
    }
}
