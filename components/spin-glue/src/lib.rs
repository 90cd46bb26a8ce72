//! Everything a component needs from Spin, behind the domain's traits: the
//! key-value store, outbound HTTP, variables, and the one handler shape.
//!
//! Every component reads the same:
//!
//! ```ignore
//! #[http_component]
//! fn handle(req: Request) -> Response {
//!     respond(run(&req))
//! }
//!
//! fn run(req: &Request) -> Outcome {
//!     let call = Call::new(req, &["GET"])?;          // 405 for other methods, store opened
//!     let p = call.principal_with(Permission::ConfigView)?; // 401 / 403
//!     Ok(json(200, &domain_entry_point(&call.kv, &p)?))
//! }
//! ```

#![forbid(unsafe_code)]

mod audit;
mod call;
mod http;
mod kv;
mod reply;
mod settings;
mod stream;
mod submit;

pub use call::{Call, MAX_JSON_BODY, allow_methods, matched_route};
pub use cloudtuner_domain::kernel::outbound_budget::Purpose;
pub use http::{BudgetedHttp, SpinHttp, background_http, hourly_budget, http};
pub use kv::{AppKv, DEFAULT_REDIS_PREFIX};
pub use reply::{Outcome, json, json_bytes, render_error, respond};
pub use settings::{provider as provider_settings, variable};
pub use stream::{EventStream, answer, open_event_stream, sleep_ms};
pub use submit::SubmitInputs;
