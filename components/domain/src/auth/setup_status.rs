//! Whether sign-in is set up, in the shapes SimpleTuner's CLI reads:
//! `GET /api/cloud/auth/setup` and its alias `GET /api/auth/setup/status`
//! (`simpletuner auth setup` checks it first), and
//! `GET /api/users/meta/auth-status` (`simpletuner auth status`). Public, as
//! in SimpleTuner: a client must know whether to sign in before it can.

use serde_json::{Value, json};

use crate::auth::credentials::{Credentials, admin_token_matches};
use crate::auth::users::UserStore;
use crate::kernel::error::ApiError;

/// `{"needs_setup", "has_admin", "user_count", "requires_admin_token"}`.
pub fn setup(users: &UserStore, admin_token: Option<&str>) -> Result<Value, ApiError> {
    let needs = users.needs_setup()?;
    Ok(
        json!({"needs_setup": needs, "has_admin": !needs, "user_count": users.count()?,
        "requires_admin_token": token_configured(admin_token)}),
    )
}

fn token_configured(admin_token: Option<&str>) -> bool {
    admin_token.is_some_and(|t| admin_token_matches(Some(t), t))
}

/// Who may create the first admin: anyone who reaches the server first,
/// unless the installation has an `admin_token` — then only whoever holds it
/// (`Authorization: Bearer <admin_token>`), or an internet-facing server set
/// up headless would belong to the first stranger to find it. 403
/// `setup_requires_admin_token` otherwise.
pub fn check_may_set_up(admin_token: Option<&str>, creds: &Credentials) -> Result<(), ApiError> {
    if !token_configured(admin_token) {
        return Ok(());
    }
    if creds
        .bearer
        .as_deref()
        .is_some_and(|b| admin_token_matches(admin_token, b))
    {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        "setup_requires_admin_token",
        "this server has an admin_token, so only its holder may create the first admin: send \
         `Authorization: Bearer <admin_token>` with this request (or create users with the \
         admin_token at POST /api/cloud/auth/users)",
    ))
}

/// `{"in_use", "user_count", "has_external_providers"}`: sign-in is in use
/// once the first admin exists (before, only the `admin_token` works); no
/// external identity providers are offered.
pub fn auth_status(users: &UserStore) -> Result<Value, ApiError> {
    Ok(json!({
        "in_use": !users.needs_setup()?,
        "user_count": users.count()?,
        "has_external_providers": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn with_an_admin_token_only_its_holder_sets_up() {
        let token = "an-admin-token-of-some-length";
        let bearer = |b: &str| Credentials {
            bearer: Some(b.into()),
            ..Credentials::default()
        };
        assert!(check_may_set_up(None, &Credentials::default()).is_ok());
        assert!(check_may_set_up(Some("short"), &Credentials::default()).is_ok());
        let err = check_may_set_up(Some(token), &Credentials::default()).unwrap_err();
        assert_eq!((err.status, err.code), (403, "setup_requires_admin_token"));
        assert!(check_may_set_up(Some(token), &bearer("wrong-token-of-some-length")).is_err());
        assert!(check_may_set_up(Some(token), &bearer(token)).is_ok());
    }

    #[test]
    fn both_shapes_follow_the_first_admin() {
        let kv = MemoryKv::default();
        let users = UserStore::new(&kv);
        assert_eq!(
            setup(&users, None).unwrap(),
            json!({"needs_setup": true, "has_admin": false, "user_count": 0,
                "requires_admin_token": false})
        );
        assert_eq!(auth_status(&users).unwrap()["in_use"], false);
        users
            .setup_first_admin("root", "correct horse battery staple", 1)
            .unwrap();
        assert_eq!(
            setup(&users, Some("an-admin-token-of-some-length")).unwrap(),
            json!({"needs_setup": false, "has_admin": true, "user_count": 1,
                "requires_admin_token": true})
        );
        assert_eq!(
            auth_status(&users).unwrap(),
            json!({"in_use": true, "user_count": 1, "has_external_providers": false})
        );
    }
}
