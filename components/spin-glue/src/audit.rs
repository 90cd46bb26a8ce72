//! Every permission denial, audited on one path: whatever answers 403 (a
//! `require`, a hand-built refusal in the domain, a route's own 403 body), the
//! response on its way out records `permission.denied` with who was refused,
//! what they asked for and, when the error names it, the permission.
//!
//! The caller is remembered when [`crate::Call::caller`] resolves it: Spin
//! runs one component instance per request, so the remembered caller is this
//! request's (it is also cleared when a `Call` starts). Anonymous 403s are not
//! recorded: there is no one to name, and anyone could fill the log with them.

use std::cell::RefCell;

use cloudtuner_domain::auth::principal::{AuthMethod, Principal};
use cloudtuner_domain::kernel::clock::now_ms;
use cloudtuner_domain::kernel::event_log;
use serde_json::{Value, json};

use crate::kv::AppKv;

struct Caller {
    id: String,
    key_id: Option<String>,
    method: String,
    path: String,
}

thread_local! {
    static CALLER: RefCell<Option<Caller>> = const { RefCell::new(None) };
}

/// Remembers who this request's caller is.
pub(crate) fn remember(p: &Principal, method: &str, path: &str) {
    let key_id = match &p.method {
        AuthMethod::ApiKey { key_id } => Some(key_id.clone()),
        _ => None,
    };
    CALLER.with(|c| {
        *c.borrow_mut() = Some(Caller {
            id: p.id.clone(),
            key_id,
            method: method.to_string(),
            path: path.chars().take(200).collect(),
        })
    });
}

/// Forgets the remembered caller (a new request starts).
pub(crate) fn forget() {
    CALLER.with(|c| c.borrow_mut().take());
}

/// Records `permission.denied` for the remembered caller, once per request,
/// from a 403's JSON body (`error`, `details.required_permission`) if it has
/// one.
pub(crate) fn denied(body: Option<&Value>) {
    let Some(caller) = CALLER.with(|c| c.borrow_mut().take()) else {
        return;
    };
    let Ok(kv) = AppKv::open() else {
        return;
    };
    let permission = body
        .and_then(|b| b.pointer("/details/required_permission"))
        .and_then(Value::as_str);
    let code = body.and_then(|b| b.get("error")).and_then(Value::as_str);
    event_log::record(
        &kv,
        event_log::NewEvent {
            kind: "permission.denied",
            actor: &caller.id,
            target: None,
            owner: Some(&caller.id),
            detail: json!({"permission": permission, "error": code,
                "method": caller.method, "path": caller.path, "api_key_id": caller.key_id}),
        },
        now_ms(),
    );
}
