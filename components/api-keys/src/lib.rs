//! `/api/cloud/auth/api-keys` (alias `/api/auth/api-keys`): `GET` lists the
//! caller's keys (`?all=true` with `api.keys.all`), `POST {"name",
//! "expires_days"?, "scoped_permissions"?}` creates one and shows it once.

use cloudtuner_domain::auth::api_keys;
use cloudtuner_domain::auth::principal::{Permission, grants};
use cloudtuner_domain::storage::datasets::S3_BUCKET as DATASETS_BUCKET;
use cloudtuner_domain::storage::{MOUNT, s3};
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST"])?;
    let p = call.principal()?;
    if call.is("GET") {
        p.require(Permission::ApiKeysOwn)?;
        let all = call.query_param("all").as_deref() == Some("true");
        let keys = api_keys::list_visible(&call.kv, &p, all)?;
        let items: Vec<Value> = keys.iter().map(|k| k.to_api(call.now_ms)).collect();
        return Ok(json(200, &j!({"api_keys": items, "total": items.len()})));
    }
    let (key, record) = api_keys::create(&call.kv, &p, &call.json()?, call.now_ms)?;
    let mut body = j!({
        "key": key,
        "key_info": record.to_api(call.now_ms),
        "message": "Store this key now: it is not shown again.",
    });
    // A key that may upload datasets is also an S3 credential pair, for
    // `aws s3 sync ./x s3://datasets/x` and boto3 (SigV4 needs a secret the
    // server can recompute: it is derived from the key, shown once, like it).
    let scoped_ok = record
        .scoped_permissions
        .as_ref()
        .is_none_or(|s| grants(s, Permission::DatasetUpload.name()));
    if p.has(Permission::DatasetUpload) && scoped_ok {
        let (access, secret) = s3::api_key_credentials(&call.kv, &record)?;
        // The public origin when set, else the one this request came to.
        let origin = call
            .provider_settings()
            .public_url
            .filter(|u| !u.is_empty())
            .or_else(|| call.header("host").map(|h| format!("http://{h}")))
            .unwrap_or_default();
        body["s3_credentials"] = j!({
            "access_key_id": access,
            "secret_access_key": secret,
            "bucket": DATASETS_BUCKET,
            "endpoint_url": format!("{}{MOUNT}", origin.trim_end_matches('/')),
        });
    }
    Ok(json(201, &body))
}
