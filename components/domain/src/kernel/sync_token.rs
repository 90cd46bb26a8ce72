//! The sync token (`sync_token`): a secret that lets an external scheduler
//! (CI's cron, Akamai's `spin aka cron`, which sends a plain GET without
//! headers) run a sync pass on `/api/cloud/jobs/sync`, as `?token=<token>`
//! or `Authorization: Bearer <token>`. It grants that one thing: it is no
//! user credential, and no other route knows it.

use crate::kernel::secrets::constant_time_eq;

/// Shorter tokens are ignored: a scheduler's token sits in a URL and in
/// cron definitions, so it must be long enough not to be guessed.
pub const MIN_LEN: usize = 32;

/// The configured token, if it is long enough to be used.
pub fn configured(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|t| t.len() >= MIN_LEN)
}

/// What a request to the sync route showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// The sync token (query or bearer): run one pass, no user needed.
    Valid,
    /// A `token` query parameter that is not the sync token: 401.
    Wrong,
    /// No token parameter, and a bearer (if any) that is not the sync
    /// token: the request authenticates as a user, as any other.
    None,
}

/// Checks a request's `token` query parameter and bearer against the
/// configured token (constant time). A bearer that does not match is left
/// to user authentication (it may be a session or an API key).
pub fn check(
    configured: Option<&str>,
    query_token: Option<&str>,
    bearer: Option<&str>,
) -> Presented {
    let matches = |presented: &str| configured.is_some_and(|t| constant_time_eq(t, presented));
    if let Some(q) = query_token {
        return if matches(q) {
            Presented::Valid
        } else {
            Presented::Wrong
        };
    }
    if bearer.is_some_and(matches) {
        return Presented::Valid;
    }
    Presented::None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn short_or_empty_tokens_are_ignored() {
        assert_eq!(configured(None), None);
        assert_eq!(configured(Some("")), None);
        assert_eq!(configured(Some(&TOKEN[..31])), None);
        assert_eq!(configured(Some(TOKEN)), Some(TOKEN));
    }

    #[test]
    fn the_token_is_accepted_in_the_query_or_as_bearer() {
        let c = configured(Some(TOKEN));
        assert_eq!(check(c, Some(TOKEN), None), Presented::Valid);
        assert_eq!(check(c, None, Some(TOKEN)), Presented::Valid);
        assert_eq!(check(c, Some("nope"), Some(TOKEN)), Presented::Wrong);
        assert_eq!(check(c, None, Some("sess_abc")), Presented::None);
        assert_eq!(check(c, None, None), Presented::None);
    }

    #[test]
    fn without_a_usable_token_nothing_matches() {
        let short = configured(Some("short"));
        assert_eq!(check(short, Some("short"), None), Presented::Wrong);
        assert_eq!(check(short, None, Some("short")), Presented::None);
        assert_eq!(check(None, Some(""), None), Presented::Wrong);
    }
}
