//! A scripted [`HttpClient`] for the domain's own tests: each route answers
//! from a queue of replies (the last one repeats), every request is recorded,
//! and anything unscripted is a 404, so orchestration (submit, sync, refresh,
//! cancel, webhooks, notifications) is tested natively, branch by branch.

use std::cell::RefCell;
use std::collections::VecDeque;

use serde_json::Value;

use crate::kernel::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status with a JSON body.
    Json(u16, Value),
    /// A status with headers and an empty body (429 with `retry-after`, say).
    Status(u16, Vec<(&'static str, &'static str)>),
    /// No answer at all: the connection failed (or the answer was lost).
    Lost,
}

struct Route {
    method: Method,
    /// Matches when the request URL's path ends with this (query ignored).
    path: String,
    replies: VecDeque<Reply>,
}

#[derive(Default)]
pub struct ScriptedHttp {
    routes: RefCell<Vec<Route>>,
    seen: RefCell<Vec<HttpRequest>>,
}

impl ScriptedHttp {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `replies` for `method path`; the last one keeps answering.
    pub fn on(&self, method: Method, path: &str, replies: Vec<Reply>) -> &Self {
        self.routes.borrow_mut().push(Route {
            method,
            path: path.to_string(),
            replies: replies.into(),
        });
        self
    }

    /// How many requests went to `method path`.
    pub fn count(&self, method: Method, path: &str) -> usize {
        self.seen
            .borrow()
            .iter()
            .filter(|r| r.method == method && path_of(&r.url).ends_with(path))
            .count()
    }

    /// Every request sent, in order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.seen.borrow().clone()
    }
}

fn path_of(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

impl HttpClient for ScriptedHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.seen.borrow_mut().push(request.clone());
        let mut routes = self.routes.borrow_mut();
        let route = routes
            .iter_mut()
            .find(|r| r.method == request.method && path_of(&request.url).ends_with(&r.path));
        let reply = match route {
            None => Reply::Json(404, serde_json::json!({"detail": "not scripted"})),
            Some(r) if r.replies.len() > 1 => r.replies.pop_front().expect("non-empty"),
            Some(r) => r.replies.front().cloned().unwrap_or(Reply::Lost),
        };
        match reply {
            Reply::Json(status, body) => Ok(HttpResponse {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_string().into_bytes(),
            }),
            Reply::Status(status, headers) => Ok(HttpResponse {
                status,
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: Vec::new(),
            }),
            Reply::Lost => Err(TransportError::Failed("connection reset".into())),
        }
    }
}

/// Runs a future to completion (the domain's async is single-threaded).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}
