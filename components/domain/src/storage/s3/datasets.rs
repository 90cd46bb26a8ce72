//! `datasets`: the signed-in user's uploaded datasets, `<dataset>/<path>`.
//! Each caller sees only their own (another user's `cats` is simply not
//! there); writing needs `dataset.upload`. Job credentials have no business
//! here.

use crate::auth::principal::{Permission, Principal};
use crate::storage::datasets::{
    self, DatasetStore, Limits, MAX_DATASETS, MAX_FILE_BYTES, MAX_OPEN_UPLOADS, MAX_REQUEST_BYTES,
    MAX_UPLOAD_PARTS, QuotaError, S3_BUCKET, UPLOAD_TTL_MS, Write,
};
use crate::storage::objects::{Manifest, StoreError};

use super::Context;
use super::auth::{Access, Caller};
use super::errors::{S3Error, access_denied, no_such_key, s3err};
use super::space::{Page, Space, object_url};

pub(super) struct Datasets<'a> {
    ctx: &'a Context<'a>,
    principal: Principal,
    limits: Limits,
}

impl<'a> Datasets<'a> {
    pub(super) fn new(ctx: &'a Context<'a>, who: &Caller) -> Result<Self, S3Error> {
        match who {
            Caller::User(p) => Ok(Datasets {
                ctx,
                principal: p.clone(),
                limits: ctx.dataset_limits,
            }),
            Caller::Job(_) => Err(access_denied(
                "A job's upload credentials reach only the outputs bucket.",
            )),
        }
    }

    fn require_scope(&self) -> Result<(), S3Error> {
        if self.principal.has(Permission::DatasetUpload) {
            Ok(())
        } else {
            Err(access_denied(
                "Datasets are read and written with the dataset.upload permission (or a key scoped to it).",
            ))
        }
    }

    fn store(&self) -> DatasetStore<'_> {
        DatasetStore::new(self.ctx.kv, &self.principal.id)
    }

    /// The dataset a write goes into, made on first use (S3 has no "create").
    fn ensure(&self, dataset: &str) -> Result<(), S3Error> {
        match self.store().ensure(dataset, self.ctx.now_ms)? {
            Some(_) => Ok(()),
            None => Err(s3err(
                400,
                "TooManyBuckets",
                format!(
                    "You have {MAX_DATASETS} datasets, the most one user may have; delete one you no longer need before starting {dataset:?}."
                ),
            )),
        }
    }
}

/// A refused reservation in S3's words.
fn quota_error(e: QuotaError, dataset: &str) -> S3Error {
    match e {
        QuotaError::Kv(e) => e.into(),
        QuotaError::Quota { used, quota } => s3err(
            403,
            "QuotaExceeded",
            format!(
                "Your datasets hold (or are receiving) {} of your {} quota (dataset_quota_mb); this file does not fit. Delete a dataset, abort unfinished uploads, or ask an admin to raise the quota.",
                mb(used),
                mb(quota)
            ),
        ),
        QuotaError::TooManyFiles(max) => s3err(
            400,
            "InvalidRequest",
            format!(
                "Dataset {dataset:?} already holds (or is receiving) {max} files, the most a dataset may hold (dataset_max_files)."
            ),
        ),
        QuotaError::TooManyUploads => s3err(
            403,
            "TooManyUploads",
            format!(
                "You have {MAX_OPEN_UPLOADS} multipart uploads open, the most one user may have. Complete or abort one (aws s3api abort-multipart-upload); abandoned uploads are aborted after {} hours.",
                UPLOAD_TTL_MS / 3_600_000
            ),
        ),
        QuotaError::NoSuchUpload => StoreError::NoSuchUpload.into(),
        QuotaError::UploadTooLarge => s3err(
            400,
            "EntityTooLarge",
            format!(
                "The parts of this upload add up to more than 100 MiB (the most a dataset file may hold) or number more than {MAX_UPLOAD_PARTS}."
            ),
        ),
    }
}

/// `<dataset>/<path>` → (dataset, path); either may be empty.
fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or((key, ""))
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
}

/// A dataset write carrying more than one request may.
pub(super) fn request_too_large(request: u64) -> S3Error {
    s3err(
        400,
        "EntityTooLarge",
        format!(
            "One request may carry at most 10 MB (Fermyon Cloud's limit); this one carries {}. Upload larger files in parts of up to 10 MB (the AWS CLI and boto3 use 8 MB parts).",
            mb(request)
        ),
    )
}

impl Space for Datasets<'_> {
    fn name(&self) -> &'static str {
        S3_BUCKET
    }

    fn locate(&self, key: &str) -> Result<(String, String), S3Error> {
        let (name, path) = split(key);
        if datasets::check_name(name).is_err() || path.is_empty() {
            return Err(no_such_key());
        }
        Ok((self.store().bucket(name), path.to_string()))
    }

    /// Reading is as much dataset business as writing: a key scoped to
    /// something else (`metrics.view`) reaches none of its owner's datasets.
    fn authorize(&self, _key: &str, _access: Access) -> Result<(), S3Error> {
        self.require_scope()
    }

    fn authorize_list(&self, _prefix: &str) -> Result<(), S3Error> {
        self.require_scope()
    }

    fn admit(&self, key: &str, size: Option<u64>, request: u64) -> Result<(), S3Error> {
        if request > MAX_REQUEST_BYTES {
            return Err(request_too_large(request));
        }
        let (name, path) = split(key);
        datasets::check_name(name).map_err(|m| s3err(400, "InvalidBucketName", m))?;
        datasets::check_path(path).map_err(|m| s3err(400, "InvalidArgument", m))?;
        if size.is_some_and(|s| s > MAX_FILE_BYTES) {
            return Err(s3err(
                400,
                "EntityTooLarge",
                format!(
                    "{path:?} is over 100 MiB, more than Replicate accepts for a whole dataset."
                ),
            ));
        }
        Ok(())
    }

    fn reserve(&self, key: &str, size: u64) -> Result<Option<String>, S3Error> {
        let (dataset, path) = split(key);
        let store = self.store();
        let write = Write {
            dataset,
            path,
            bytes: size,
        };
        let hold = store
            .reserve_write(&write, &self.limits, self.ctx.now_ms)
            .map_err(|e| quota_error(e, dataset))?;
        if let Err(e) = self.ensure(dataset) {
            let _ = store.release_write(&hold, self.ctx.now_ms);
            return Err(e);
        }
        Ok(Some(hold))
    }

    fn release(&self, hold: Option<String>) {
        if let Some(hold) = hold {
            let _ = self.store().release_write(&hold, self.ctx.now_ms);
        }
    }

    fn upload_opened(&self, key: &str, id: &str) -> Result<(), S3Error> {
        let (dataset, path) = split(key);
        let store = self.store();
        store
            .open_upload(id, dataset, path, &self.limits, self.ctx.now_ms)
            .map_err(|e| quota_error(e, dataset))?;
        self.ensure(dataset).inspect_err(|_| {
            let _ = store.close_upload(id, self.ctx.now_ms);
        })
    }

    fn reserve_part(&self, id: &str, number: u32, size: u64) -> Result<(), S3Error> {
        self.store()
            .reserve_part(id, number, size, &self.limits, self.ctx.now_ms)
            .map_err(|e| quota_error(e, ""))
    }

    fn upload_closed(&self, id: &str) {
        let _ = self.store().close_upload(id, self.ctx.now_ms);
    }

    fn stored(&self, key: &str, _m: &Manifest) {
        self.store().touch(split(key).0, self.ctx.now_ms);
    }

    /// Keys of all the caller's datasets as one sorted key space: datasets in
    /// the order of `<name>/` (so `a-b/x` sorts before `a/x`, as bytes do).
    fn list(&self, prefix: &str, after: Option<&str>, max: usize) -> Result<Page, S3Error> {
        let store = self.store();
        let mut bases: Vec<String> = store
            .names()?
            .into_iter()
            .map(|n| format!("{n}/"))
            .collect();
        bases.sort();
        let mut out = Vec::new();
        for base in bases {
            if !(base.starts_with(prefix) || prefix.starts_with(base.as_str())) {
                continue;
            }
            let inner_after = match after {
                Some(a) if a.starts_with(base.as_str()) => Some(&a[base.len()..]),
                // Everything in this dataset sorts after `a`.
                Some(a) if a < base.as_str() => None,
                // ... or before it.
                Some(_) => continue,
                None => None,
            };
            let inner_prefix = prefix.strip_prefix(base.as_str()).unwrap_or("");
            let bucket = store.bucket(&base[..base.len() - 1]);
            let (page, more) =
                store
                    .objects()
                    .list(&bucket, inner_prefix, inner_after, max - out.len())?;
            out.extend(page.into_iter().map(|(k, e)| (format!("{base}{k}"), e)));
            if out.len() == max {
                // Perhaps nothing more: the next call, after the last key, says so.
                let _ = more;
                return Ok((out, true));
            }
        }
        Ok((out, false))
    }

    fn url(&self, key: &str) -> String {
        object_url(self.ctx, S3_BUCKET, key)
    }
}
