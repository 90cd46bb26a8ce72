//! Tests of [`super`]: applying what Replicate reports to a job.

use super::*;
use crate::jobs::store::JobStore;
use crate::kernel::kv::MemoryKv;

fn job() -> Job {
    serde_json::from_value(json!({
        "job_id": "j", "owner": "local", "provider": "replicate", "status": "queued",
        "config_name": null, "created_ms": 0, "started_ms": null, "completed_ms": null,
        "updated_ms": 0, "refreshed_ms": null, "cost_usd": null, "cost_estimated": false,
        "hardware_profile": "h100-x8", "hardware_type": "8x H100", "error_message": null,
        "output_url": null, "prediction_id": "p1", "provider_status": "starting",
        "model": null, "version": null, "tracker_run_name": null, "webhook_url": null,
        "input_sha256": null, "dataset_file_url": null, "config": {}, "dataloader_config": []
    }))
    .unwrap()
}

#[test]
fn completed_prediction_sets_status_times_output_and_profile_cost() {
    let mut j = job();
    apply_prediction(
        &mut j,
        &json!({"status": "processing", "started_at": "2026-01-01T00:00:00Z"}),
        1,
    );
    assert_eq!(j.status, JobStatus::Running);
    apply_prediction(
        &mut j,
        &json!({
            "status": "succeeded", "started_at": "2026-01-01T00:00:00Z",
            "completed_at": "2026-01-01T00:10:00Z", "metrics": {"predict_time": 600.0},
            "output": {"version": "x", "weights": "https://r/out.tar"}
        }),
        parse_rfc3339_ms("2026-01-01T01:00:00Z").unwrap(),
    );
    assert_eq!(j.status, JobStatus::Completed);
    assert_eq!(
        j.completed_ms,
        parse_rfc3339_ms("2026-01-01T00:10:00Z"),
        "the provider's own completion time"
    );
    assert_eq!(j.output_url.as_deref(), Some("https://r/out.tar"));
    // 8 × the H100 rate × predict_time, not the L40S rate.
    let expected = 600.0 * 8.0 * crate::providers::catalog::H100.cost_per_second;
    assert!(
        (j.cost_usd.unwrap() - expected).abs() < 1e-6,
        "{:?}",
        j.cost_usd
    );
    assert!(!j.cost_estimated);
    assert_eq!(j.duration_seconds(0), Some(600.0));
}

#[test]
fn a_provider_clock_ahead_of_ours_never_dates_a_job_in_the_future() {
    let mut j = job();
    let now = parse_rfc3339_ms("2026-01-01T23:59:00Z").unwrap();
    apply_prediction(
        &mut j,
        &json!({
            "status": "succeeded", "started_at": "2026-01-01T23:55:00Z",
            "completed_at": "2026-01-02T00:05:00Z", "metrics": {"predict_time": 600.0}
        }),
        now,
    );
    assert_eq!(j.completed_ms, Some(now));
    // The reported ten minutes are kept.
    assert_eq!(j.duration_seconds(now), Some(600.0));
}

#[test]
fn late_events_never_revive_or_regress_a_job() {
    let mut j = job();
    apply_prediction(
        &mut j,
        &json!({"status": "failed", "error": "CUDA out of memory"}),
        5,
    );
    assert_eq!(j.status, JobStatus::Failed);
    assert_eq!(j.error_message.as_deref(), Some("CUDA out of memory"));
    let before = j.clone();
    apply_prediction(&mut j, &json!({"status": "processing", "logs": "late"}), 6);
    assert_eq!(
        (j.status, j.provider_status.clone()),
        (before.status, before.provider_status)
    );
    let mut r = job();
    r.transition(JobStatus::Running, 1).unwrap();
    apply_prediction(&mut r, &json!({"status": "starting"}), 2);
    assert_eq!(r.status, JobStatus::Running);
    // Unknown provider statuses are recorded but move nothing.
    apply_prediction(&mut r, &json!({"status": "warming"}), 3);
    assert_eq!(
        (r.status, r.provider_status.as_deref()),
        (JobStatus::Running, Some("warming"))
    );
}

#[test]
fn delete_needs_a_terminal_job_and_cancel_refuses_terminal_ones() {
    let kv = MemoryKv::default();
    let store = JobStore::new(&kv);
    store.create(&mut job()).unwrap();
    let p = Principal::admin("local");
    let err = delete(&store, &p, "j", 0).unwrap_err();
    assert_eq!((err.status, err.code), (409, "invalid_job_state"));
    assert_eq!(
        err.details["allowed_states"],
        json!(["completed", "failed", "cancelled"])
    );
    store
        .update::<()>("j", |j| {
            j.transition(JobStatus::Completed, 1).unwrap();
            Ok(())
        })
        .unwrap();
    assert_eq!(delete(&store, &p, "j", 0).unwrap()["success"], true);
    assert_eq!(delete(&store, &p, "j", 0).unwrap_err().status, 404);
}
