//! `GET /api/cloud/publishing/status[?config=<saved config>]`: which delivery
//! path (Hub, external S3, this server, Replicate only) a submit would use, and why.

use cloudtuner_domain::configs::ConfigStore;
use cloudtuner_domain::delivery::status;
use cloudtuner_domain::error::ApiError;
use cloudtuner_domain::http::param;
use cloudtuner_spin::{
    SpinKv, json, provider_settings, query, require_method, require_principal, respond, variable,
};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    let run = || {
        require_method(&req, &["GET"])?;
        let kv = SpinKv::open_default()?;
        let principal = require_principal(&req, &kv)?;
        let params = query(&req);
        let config = match param(&params, "config") {
            None => None,
            Some(name) => Some(
                ConfigStore::new(&kv)
                    .get(&principal.id, name)?
                    .ok_or_else(|| ApiError::not_found(format!("no saved config named {name:?}")))?
                    .config,
            ),
        };
        let public_url = provider_settings(&kv).public_url;
        let mut body = status(
            config.as_ref(),
            variable("hf_token").is_some(),
            public_url.as_deref(),
        );
        body["config_name"] = serde_json::json!(param(&params, "config"));
        Ok(json(200, &body))
    };
    respond(run())
}
