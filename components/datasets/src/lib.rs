//! `/api/cloud/datasets`: `GET` lists the caller's uploaded datasets with their
//! quota; `POST {"name", "files"}` starts a browser upload (the dataset stays
//! `uploading` until `PATCH /api/cloud/datasets/{name} {"state": "ready"}`).
//! The files themselves go to the S3 endpoint, `datasets/<name>/<path>`.

use cloudtuner_domain::auth::principal::Permission;
use cloudtuner_domain::kernel::error::{ApiError, object_with_fields};
use cloudtuner_domain::storage::datasets::{DatasetStore, Limits, MAX_REQUEST_BYTES, S3_BUCKET};
use cloudtuner_domain::storage::{MOUNT, objects::MIN_PART};
use cloudtuner_spin::{Call, Outcome, json, respond, variable};
use serde_json::{Value, json as j};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    respond(run(&req))
}

fn run(req: &Request) -> Outcome {
    let call = Call::new(req, &["GET", "POST"])?;
    // Listing is dataset business too: a key scoped elsewhere sees none.
    let p = call.principal_with(Permission::DatasetUpload)?;
    let limits = Limits::from_variables(
        variable("dataset_quota_mb").as_deref(),
        variable("dataset_max_files").as_deref(),
    );
    let store = DatasetStore::new(&call.kv, &p.id);
    if call.is("GET") {
        let mut items = Vec::new();
        for d in store.list()? {
            items.push(store.view(&d)?);
        }
        let used: u64 = items.iter().filter_map(|d| d["bytes"].as_u64()).sum();
        return Ok(json(
            200,
            &j!({
                "datasets": items,
                "total": items.len(),
                "usage": {"bytes": used, "quota_bytes": limits.quota_bytes,
                          "max_files_per_dataset": limits.max_files},
            }),
        ));
    }
    let body = call.json()?;
    let obj = object_with_fields(&body, &["name", "files"], "invalid_request")?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("name is required: the dataset's name"))?;
    let files = obj.get("files").and_then(Value::as_u64).ok_or_else(|| {
        ApiError::bad_request("files is required: how many files will be uploaded")
    })?;
    let d = store.begin_upload(name, files as usize, &limits, call.now_ms)?;
    let mut view = store.view(&d)?;
    // Where and how to send the files (parts fit Fermyon Cloud's 10 MB bodies).
    view["upload"] = j!({
        "path": format!("{MOUNT}/{S3_BUCKET}/{name}/"),
        "max_request_bytes": MAX_REQUEST_BYTES,
        "part_bytes": 8 * 1024 * 1024,
        "min_part_bytes": MIN_PART,
    });
    Ok(json(201, &view))
}
