//! Getting the trained model back: what a job stored on this server, and the
//! job side of the S3 API ([`JobDirectory`]).

use serde_json::{Value, json};

use crate::jobs::record::Job;
use crate::jobs::store::JobStore;
use crate::kernel::kv::{KvError, KvStore};
use crate::storage::s3::{JobDirectory, Uploader, job_objects};
use crate::storage::{BUCKET, MOUNT};

/// `GET /api/cloud/jobs/{id}/outputs`: the job's delivery and what it stored.
pub fn job_outputs(
    kv: &dyn KvStore,
    job: &Job,
    public_url: Option<&str>,
) -> Result<Value, KvError> {
    let (outputs, total) = job_objects(kv, &job.job_id, public_url)?;
    Ok(json!({
        "job_id": job.job_id,
        "status": job.status.as_str(),
        "output_url": job.output_url,
        "delivery": job.delivery.as_ref().map(|d| d.to_api(&job.job_id)),
        "count": outputs.len(),
        "outputs": outputs,
        "total_bytes": total,
    }))
}

impl JobDirectory for JobStore<'_> {
    fn uploader(&self, job_id: &str) -> Result<Option<Uploader>, KvError> {
        Ok(self
            .get(job_id)
            .map_err(|e| KvError::new(e.message))?
            .map(|j| Uploader {
                ended_ms: j.completed_ms.filter(|_| j.status.is_terminal()),
                job_id: j.job_id,
                owner: j.owner,
            }))
    }

    /// Points the job's `output_url` at the object when the job delivers to
    /// this server — the weights (`.safetensors`) win, else the first object.
    /// Best effort: the object is stored either way.
    fn object_stored(&self, job_id: &str, key: &str, url: &str) {
        let weights = key.ends_with(".safetensors");
        let _ = self.update::<()>(job_id, |j| {
            let local = j.delivery.as_ref().is_some_and(|d| d.local);
            let current_is_local = j
                .output_url
                .as_deref()
                .is_some_and(|u| u.contains(&format!("{MOUNT}/{BUCKET}/")));
            let current_is_weights = j
                .output_url
                .as_deref()
                .is_some_and(|u| u.ends_with(".safetensors"));
            if local && (!current_is_local || (weights && !current_is_weights)) {
                j.output_url = Some(url.to_string());
            }
            Ok(())
        });
    }
}
