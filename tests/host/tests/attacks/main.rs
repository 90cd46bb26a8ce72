//! The attacker's suite: each test is one thing an attacker tries against the
//! running app (through the real components, over HTTP or S3), and what must
//! happen instead. Grouped by who attacks: the anonymous internet, another
//! tenant, a key with fewer scopes, a trainer holding an upload secret.
//! `SECURITY.md` names the threat model these tests hold to.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod events;
mod jobs;
mod storage;
