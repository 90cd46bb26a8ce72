//! `/api/cloud/datasets/{name}`: `GET` one of the caller's datasets with its
//! files; `DELETE` removes it with every file; `PATCH {"state": "ready"}` ends
//! a browser upload once every announced file is stored.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::kernel::clock::rfc3339;
use cloudtuner_domain::kernel::error::{ApiError, object_with_fields};
use cloudtuner_domain::storage::datasets::DatasetStore;
use cloudtuner_spin::{Call, Outcome, json, respond};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "DELETE", "PATCH"])?;
    // Every method is dataset business: a key scoped elsewhere reaches none.
    let p = call.principal_with(Permission::DatasetUpload)?;
    let name = call.path_param("name")?;
    let store = DatasetStore::new(&call.kv, &p.id);
    match call.method().as_str() {
        "GET" => {
            let d = store.require(&name)?;
            let mut view = store.view(&d)?;
            view["files"] = store
                .files(&name)?
                .into_iter()
                .map(|(path, e)| {
                    j!({"path": path, "size": e.size, "etag": e.etag,
                        "uploaded_at": rfc3339(e.uploaded_ms)})
                })
                .collect();
            Ok(json(200, &view))
        }
        "DELETE" => {
            let files = store.contents(&name)?.files;
            store.delete(&name)?;
            Ok(json(
                200,
                &j!({"success": true, "name": name, "deleted_files": files}),
            ))
        }
        _ => {
            let body = call.json()?;
            let obj = object_with_fields(&body, &["state"], "invalid_request")?;
            if obj.get("state").and_then(Value::as_str) != Some("ready") {
                return Err(ApiError::bad_request(
                    "send {\"state\": \"ready\"} to finish an upload",
                ));
            }
            let d = store.complete(&name, call.now_ms)?;
            Ok(json(200, &store.view(&d)?))
        }
    }
}
