//! Integer ids for users. cloudtuner's user ids are UUIDs, but SimpleTuner's
//! CLI parses the user ids of `auth orgs add-member` and friends as integers,
//! so every user also gets a number, allocated on first need with the
//! store's atomic `increment`: `user-number:<id>` (a slot holding the
//! number, claimed race-free, so a user never gets two) and
//! `user-by-number:<n>` (the id back).

use crate::auth::users::{User, UserStore};
use crate::kernel::error::ApiError;
use crate::kernel::kv::{KvStore, claim_slot, get_json, set_json};

use super::{next_id, slot_id};

const USER_SEQ: &str = "users:number-seq";

fn number_key(user: &str) -> String {
    format!("user-number:{user}")
}

fn by_number_key(n: u64) -> String {
    format!("user-by-number:{n}")
}

pub struct UserNumbers<'a> {
    kv: &'a dyn KvStore,
}

impl<'a> UserNumbers<'a> {
    pub fn new(kv: &'a dyn KvStore) -> Self {
        Self { kv }
    }

    /// `user`'s number, allocating one the first time.
    pub fn number(&self, user: &str) -> Result<u64, ApiError> {
        if let Some(n) = slot_id(self.kv, &number_key(user))? {
            return Ok(n);
        }
        let n = next_id(self.kv, USER_SEQ)?;
        // The reverse link first: a number anyone can read resolves.
        set_json(self.kv, &by_number_key(n), &user)?;
        if claim_slot(self.kv, &number_key(user), n.to_string().as_bytes())? {
            return Ok(n);
        }
        // A racing request numbered them first: theirs stands (ours is unused).
        let _ = self.kv.delete(&by_number_key(n));
        slot_id(self.kv, &number_key(user))?
            .ok_or_else(|| ApiError::unavailable("the user is being numbered; try again shortly"))
    }

    /// The user a path or body names: their number, or their id or username
    /// (cloudtuner's own clients). 404 `user_not_found` when there is none.
    pub fn resolve(&self, reference: &str) -> Result<User, ApiError> {
        let users = UserStore::new(self.kv);
        let found = match reference.parse::<u64>() {
            Ok(n) => match get_json::<String>(self.kv, &by_number_key(n))? {
                Some(id) => users.get(&id)?,
                None => None,
            },
            Err(_) => match users.get(reference)? {
                Some(u) => Some(u),
                None => users.by_username(reference)?,
            },
        };
        found.ok_or_else(|| {
            ApiError::new(404, "user_not_found", format!("no user {reference}"))
                .with_detail("user_id", reference)
        })
    }
}
