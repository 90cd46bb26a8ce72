//! `GET /api/cloud/replicate/status`: Replicate's public status page
//! (replicatestatus.com's `/api/v1/summary`) in SimpleTuner's shape
//! `{operational, ongoing_incidents, in_progress_maintenances,
//! scheduled_maintenances, status_page_url, error}`. When the page cannot be
//! read, `operational` is null (unknown, not "fine") and `error` says why.

use serde_json::{Value, json};

use crate::kernel::http::{HttpClient, HttpRequest, Method, TransportError};

/// Where Replicate's status page lives (the `replicate_status_base` variable).
pub const DEFAULT_BASE: &str = "https://www.replicatestatus.com";

fn unknown(error: String) -> Value {
    json!({
        "operational": null,
        "ongoing_incidents": [],
        "in_progress_maintenances": [],
        "scheduled_maintenances": [],
        "status_page_url": null,
        "error": error,
    })
}

pub async fn summary<H: HttpClient>(http: &H, base: &str) -> Value {
    let base = base.trim_end_matches('/');
    let request =
        HttpRequest::new(Method::Get, format!("{base}/api/v1/summary")).header("accept", "*/*");
    let resp = match http.send(request).await {
        Ok(r) => r,
        Err(TransportError::Denied) => {
            return unknown(format!(
                "{base} is not in allowed_outbound_hosts; set replicate_status_base to the status \
                 page's origin"
            ));
        }
        Err(TransportError::Failed(m)) => {
            return unknown(format!("could not read Replicate's status page: {m}"));
        }
    };
    if !(200..300).contains(&resp.status) {
        return unknown(format!(
            "Replicate's status page answered HTTP {}",
            resp.status
        ));
    }
    let Some(data) = resp.json() else {
        return unknown("Replicate's status page did not answer JSON".into());
    };
    let list = |k: &str| {
        data.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (ongoing, in_progress) = (list("ongoing_incidents"), list("in_progress_maintenances"));
    json!({
        "operational": ongoing.is_empty() && in_progress.is_empty(),
        "ongoing_incidents": ongoing,
        "in_progress_maintenances": in_progress,
        "scheduled_maintenances": list("scheduled_maintenances"),
        "status_page_url": data.get("page_url").cloned().unwrap_or(Value::Null),
        "error": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::scripted::{Reply, ScriptedHttp, block_on};

    #[test]
    fn incidents_make_it_not_operational_and_failures_unknown() {
        let http = ScriptedHttp::new();
        http.on(
            Method::Get,
            "/api/v1/summary",
            vec![
                Reply::Json(
                    200,
                    json!({"page_url": "https://status.test", "ongoing_incidents": []}),
                ),
                Reply::Json(
                    200,
                    json!({"ongoing_incidents": [{"name": "GPU queue delays"}]}),
                ),
                Reply::Json(503, json!({})),
                Reply::Lost,
            ],
        );
        let s = block_on(summary(&http, "https://status.test/"));
        assert_eq!(s["operational"], true, "{s}");
        assert_eq!(s["status_page_url"], "https://status.test");
        assert!(s["error"].is_null());
        let s = block_on(summary(&http, "https://status.test"));
        assert_eq!(s["operational"], false);
        assert_eq!(s["ongoing_incidents"][0]["name"], "GPU queue delays");
        for _ in 0..2 {
            let s = block_on(summary(&http, "https://status.test"));
            assert!(s["operational"].is_null(), "unknown, not fine: {s}");
            assert!(s["error"].as_str().unwrap().contains("status page"), "{s}");
        }
    }
}
