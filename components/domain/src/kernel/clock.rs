//! Time as the domain uses it: Unix milliseconds in, RFC 3339 strings out.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds from `start_ms` to `end_ms` (0 if it ends before it starts), as
/// `duration_seconds` shows them.
pub fn seconds_between(start_ms: u64, end_ms: u64) -> f64 {
    end_ms.saturating_sub(start_ms) as f64 / 1000.0
}

/// `2026-11-28T15:10:00.123Z`.
pub fn rfc3339(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses RFC 3339 (Replicate's timestamps carry up to 9 fractional digits).
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_replicate_timestamps() {
        assert_eq!(rfc3339(1_000), "1970-01-01T00:00:01Z");
        assert_eq!(
            parse_rfc3339_ms("2023-08-16T19:33:26.678378653Z"),
            Some(1_692_214_406_678)
        );
        assert_eq!(
            parse_rfc3339_ms(&rfc3339(1_692_214_406_678)),
            Some(1_692_214_406_678)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
