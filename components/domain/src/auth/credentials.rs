//! Turning a request's credentials into a [`Principal`].
//!
//! Accepted, in order: `X-API-Key: stk_...` (SimpleTuner's CLI header);
//! `Authorization: Bearer <API key | session token | admin_token>`; the
//! `cloudtuner_session` cookie (the UI). A credential that is present but wrong
//! is a 401 — never a silent fall-back to anonymous.

use crate::auth::api_keys;
use crate::auth::login::session_user;
use crate::auth::principal::{AuthMethod, Principal};
use crate::kernel::error::ApiError;
use crate::kernel::kv::KvStore;
use crate::kernel::secrets::constant_time_eq;

pub const SESSION_COOKIE: &str = "cloudtuner_session";
/// Objects created with the `admin_token` are owned by this id.
pub const ADMIN_TOKEN_PRINCIPAL: &str = "admin-token";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    pub api_key: Option<String>,
    pub bearer: Option<String>,
    pub session_cookie: Option<String>,
}

impl Credentials {
    /// Reads the three places a credential can be, from a header lookup.
    pub fn from_headers(header: impl Fn(&str) -> Option<String>) -> Self {
        let bearer = header("authorization").and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let session_cookie = header("cookie").and_then(|c| {
            c.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == SESSION_COOKIE && !v.is_empty()).then(|| v.to_string())
            })
        });
        Self {
            api_key: header("x-api-key")
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty()),
            bearer,
            session_cookie,
        }
    }

    /// The session token this request carries, if any (for logout).
    pub fn session_token(&self) -> Option<&str> {
        self.bearer
            .as_deref()
            .filter(|b| b.starts_with("sess_"))
            .or(self.session_cookie.as_deref())
    }
}

/// Whether a `Content-Type` value is JSON (`application/json`, with or
/// without parameters such as `; charset=utf-8`).
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// 415 `unsupported_media_type`: the body must be declared as JSON.
pub fn json_required() -> ApiError {
    ApiError::new(
        415,
        "unsupported_media_type",
        "send the body as JSON with the header `Content-Type: application/json` (required when \
         signed in by the browser's cookie or not signed in, so that other web sites cannot post \
         forms here on your behalf)",
    )
}

impl Credentials {
    /// Whether the request carries a credential only a script can send (an
    /// API key or a bearer token): browsers never add those to a request
    /// another site makes, so such requests cannot be forged cross-site.
    pub fn sent_by_header(&self) -> bool {
        self.api_key.is_some() || self.bearer.is_some()
    }

    /// Whether the caller is authenticated by the session cookie alone (what
    /// a browser attaches by itself).
    pub fn by_cookie(&self) -> bool {
        !self.sent_by_header() && self.session_cookie.is_some()
    }

    /// Login CSRF and cross-site request forgery: a request another web site
    /// can make a browser send without asking (a form, a `no-cors` fetch) is a
    /// `POST` with a form or text body, or none. A cookie-authenticated
    /// request that changes something must therefore be declared JSON, which
    /// only same-origin scripts can send (anything else needs a CORS
    /// preflight, which this server never grants). `DELETE`, `PUT` and
    /// `PATCH` without a body are preflighted anyway and pass.
    pub fn check_cookie_request(
        &self,
        method: &str,
        content_type: Option<&str>,
        body_len: usize,
    ) -> Result<(), ApiError> {
        let safe = ["GET", "HEAD", "OPTIONS"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method));
        let needs_json = !safe && (method.eq_ignore_ascii_case("POST") || body_len > 0);
        if self.by_cookie() && needs_json && !is_json_content_type(content_type) {
            return Err(json_required());
        }
        Ok(())
    }
}

pub fn unauthorized(message: &str) -> ApiError {
    ApiError::new(401, "authentication_required", message.to_string())
}

pub const HOW_TO_AUTHENTICATE: &str = "authentication required: sign in with POST /api/cloud/auth/login \
     and send `Authorization: Bearer <token>`, or send an API key as `Authorization: Bearer stk_...` \
     or `X-API-Key: stk_...`";

/// Whether `presented` is the configured `admin_token` (constant time); a
/// token shorter than 16 characters is never accepted.
pub fn admin_token_matches(admin_token: Option<&str>, presented: &str) -> bool {
    admin_token.is_some_and(|admin| admin.len() >= 16 && constant_time_eq(admin, presented))
}

/// `Ok(None)` for an anonymous request; `Err(401)` for a bad credential.
pub fn authenticate(
    kv: &dyn KvStore,
    creds: &Credentials,
    admin_token: Option<&str>,
    now_ms: u64,
) -> Result<Option<Principal>, ApiError> {
    if let Some(key) = &creds.api_key {
        return api_keys::authenticate(kv, key, now_ms).map(Some);
    }
    if let Some(token) = &creds.bearer {
        if token.starts_with(api_keys::PREFIX) || token.starts_with("st_") {
            return api_keys::authenticate(kv, token, now_ms).map(Some);
        }
        if admin_token_matches(admin_token, token) {
            return Ok(Some(Principal::admin(ADMIN_TOKEN_PRINCIPAL)));
        }
        return match session_user(kv, token, now_ms)? {
            Some(u) => Ok(Some(u.principal(AuthMethod::Session, None))),
            None => Err(unauthorized(
                "the bearer token is not a valid session, API key or admin token (sessions expire after 24 h; sign in again)",
            )),
        };
    }
    if let Some(token) = &creds.session_cookie {
        return match session_user(kv, token, now_ms)? {
            Some(u) => Ok(Some(u.principal(AuthMethod::Session, None))),
            None => Err(unauthorized("your session has expired; sign in again")),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::login::login;
    use crate::auth::principal::Role;
    use crate::auth::users::UserStore;
    use crate::kernel::kv::MemoryKv;

    fn creds(pairs: &[(&str, &str)]) -> Credentials {
        Credentials::from_headers(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn reads_headers_and_cookies() {
        let c = creds(&[
            ("authorization", "Bearer abc"),
            ("cookie", "a=1; cloudtuner_session=sess_x"),
            ("x-api-key", "stk_k"),
        ]);
        assert_eq!(c.bearer.as_deref(), Some("abc"));
        assert_eq!(c.session_cookie.as_deref(), Some("sess_x"));
        assert_eq!(c.api_key.as_deref(), Some("stk_k"));
        assert_eq!(creds(&[("authorization", "Basic abc")]).bearer, None);
    }

    #[test]
    fn cookie_requests_that_change_things_must_be_json() {
        let cookie = creds(&[("cookie", "cloudtuner_session=sess_x")]);
        let json = Some("application/json; charset=utf-8");
        assert!(cookie.check_cookie_request("POST", json, 2).is_ok());
        assert!(cookie.check_cookie_request("GET", None, 0).is_ok());
        assert!(cookie.check_cookie_request("DELETE", None, 0).is_ok());
        for (method, ct, len) in [
            ("POST", None, 0),
            ("POST", Some("text/plain"), 2),
            ("POST", Some("application/x-www-form-urlencoded"), 2),
            ("PUT", Some("multipart/form-data; boundary=x"), 2),
        ] {
            let err = cookie.check_cookie_request(method, ct, len).unwrap_err();
            assert_eq!((err.status, err.code), (415, "unsupported_media_type"));
        }
        // A header credential cannot be forged cross-site: any body type.
        let key = creds(&[("x-api-key", "stk_k"), ("cookie", "cloudtuner_session=s")]);
        assert!(key.check_cookie_request("POST", None, 2).is_ok());
        assert!(!is_json_content_type(Some("text/json")));
    }

    #[test]
    fn sessions_admin_token_and_bad_credentials() {
        let kv = MemoryKv::default();
        UserStore::new(&kv)
            .create("alice", "a long enough password", Role::Lead, 0)
            .unwrap();
        let (_, s) = login(&kv, "alice", "a long enough password", false, 0).unwrap();
        let p = authenticate(
            &kv,
            &creds(&[("authorization", &format!("Bearer {}", s.token))]),
            None,
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.username.as_str(), p.role), ("alice", Role::Lead));
        let p = authenticate(
            &kv,
            &creds(&[("cookie", &format!("cloudtuner_session={}", s.token))]),
            None,
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.username, "alice");
        let admin = "an-admin-token-of-some-length";
        let p = authenticate(
            &kv,
            &creds(&[("authorization", &format!("Bearer {admin}"))]),
            Some(admin),
            1,
        )
        .unwrap()
        .unwrap();
        assert!(p.is_admin());
        assert!(
            authenticate(&kv, &creds(&[]), Some(admin), 1)
                .unwrap()
                .is_none()
        );
        for bad in [
            creds(&[("authorization", "Bearer nope")]),
            creds(&[("x-api-key", "stk_nope")]),
            creds(&[("cookie", "cloudtuner_session=sess_old")]),
        ] {
            assert_eq!(
                authenticate(&kv, &bad, Some(admin), 1).unwrap_err().status,
                401
            );
        }
        // A short admin token is never accepted.
        assert!(
            authenticate(
                &kv,
                &creds(&[("authorization", "Bearer short")]),
                Some("short"),
                1
            )
            .is_err()
        );
    }
}
