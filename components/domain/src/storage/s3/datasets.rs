//! `datasets`: the signed-in user's uploaded datasets, `<dataset>/<path>`.
//! Each caller sees only their own (another user's `cats` is simply not
//! there); writing needs `dataset.upload`. Job credentials have no business
//! here.

use crate::auth::principal::{Permission, Principal};
use crate::storage::datasets::{
    self, DatasetStore, Limits, MAX_FILE_BYTES, MAX_REQUEST_BYTES, S3_BUCKET,
};
use crate::storage::objects::Manifest;

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

    fn store(&self) -> DatasetStore<'_> {
        DatasetStore::new(self.ctx.kv, &self.principal.id)
    }
}

/// `<dataset>/<path>` → (dataset, path); either may be empty.
fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or((key, ""))
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
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

    fn authorize(&self, _key: &str, access: Access) -> Result<(), S3Error> {
        if access == Access::Write && !self.principal.has(Permission::DatasetUpload) {
            return Err(access_denied(
                "Uploading datasets needs the dataset.upload permission (or a key scoped to it).",
            ));
        }
        Ok(())
    }

    fn authorize_list(&self, _prefix: &str) -> Result<(), S3Error> {
        Ok(())
    }

    fn admit(&self, key: &str, size: Option<u64>, request: u64) -> Result<(), S3Error> {
        if request > MAX_REQUEST_BYTES {
            return Err(s3err(
                400,
                "EntityTooLarge",
                format!(
                    "One request may carry at most 10 MB (Fermyon Cloud's limit); this one carries {}. Upload larger files in parts of up to 10 MB (the AWS CLI and boto3 use 8 MB parts).",
                    mb(request)
                ),
            ));
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
        let store = self.store();
        let bucket = store.bucket(name);
        let existing = store.objects().head(&bucket, path)?.map(|m| m.size);
        if existing.is_none() && store.contents(name)?.files >= self.limits.max_files {
            return Err(s3err(
                400,
                "InvalidRequest",
                format!(
                    "Dataset {name:?} already holds {} files, the most a dataset may hold (dataset_max_files).",
                    self.limits.max_files
                ),
            ));
        }
        let adding = size
            .unwrap_or(request)
            .saturating_sub(existing.unwrap_or(0));
        let used = store.usage()?;
        if used + adding > self.limits.quota_bytes {
            return Err(s3err(
                403,
                "QuotaExceeded",
                format!(
                    "Your datasets hold {} of your {} quota (dataset_quota_mb); this file does not fit. Delete a dataset or ask an admin to raise the quota.",
                    mb(used),
                    mb(self.limits.quota_bytes)
                ),
            ));
        }
        store.ensure(name, self.ctx.now_ms)?;
        Ok(())
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
