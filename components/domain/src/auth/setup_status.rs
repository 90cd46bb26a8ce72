//! Whether sign-in is set up, in the shapes SimpleTuner's CLI reads:
//! `GET /api/cloud/auth/setup` and its alias `GET /api/auth/setup/status`
//! (`simpletuner auth setup` checks it first), and
//! `GET /api/users/meta/auth-status` (`simpletuner auth status`). Public, as
//! in SimpleTuner: a client must know whether to sign in before it can.

use serde_json::{Value, json};

use crate::auth::users::UserStore;
use crate::kernel::error::ApiError;

/// `{"needs_setup", "has_admin", "user_count"}`.
pub fn setup(users: &UserStore) -> Result<Value, ApiError> {
    let needs = users.needs_setup()?;
    Ok(json!({"needs_setup": needs, "has_admin": !needs, "user_count": users.count()?}))
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
    fn both_shapes_follow_the_first_admin() {
        let kv = MemoryKv::default();
        let users = UserStore::new(&kv);
        assert_eq!(
            setup(&users).unwrap(),
            json!({"needs_setup": true, "has_admin": false, "user_count": 0})
        );
        assert_eq!(auth_status(&users).unwrap()["in_use"], false);
        users
            .setup_first_admin("root", "correct horse battery staple", 1)
            .unwrap();
        assert_eq!(
            setup(&users).unwrap(),
            json!({"needs_setup": false, "has_admin": true, "user_count": 1})
        );
        assert_eq!(
            auth_status(&users).unwrap(),
            json!({"in_use": true, "user_count": 1, "has_external_providers": false})
        );
    }
}
