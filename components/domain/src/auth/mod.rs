//! Who is calling and what they may do: principals and permissions, users,
//! sessions, API keys, credentials and the sign-in guard.

pub mod api_keys;
pub mod credentials;
pub mod key_records;
pub mod login;
pub mod login_guard;
pub mod orgs;
pub mod principal;
pub mod sessions;
pub mod setup_status;
pub mod users;
