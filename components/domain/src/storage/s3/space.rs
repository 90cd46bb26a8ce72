//! The buckets as the S3 operations see them. Each [`Space`] says where an S3
//! key lives in the object store, who may touch it, and what a write must fit;
//! the operations themselves (get, put, multipart, copy, list, delete) are
//! written once, over any space.

use crate::auth::principal::Permission;
use crate::storage::objects::{IndexEntry, Manifest, ObjectStore};

use super::auth::{Access, Caller, authorize};
use super::errors::{S3Error, access_denied};
use super::{BUCKET, Context, MOUNT, job_of};
use crate::storage::sigv4;

pub(super) type Page = (Vec<(String, IndexEntry)>, bool);

pub(super) trait Space {
    /// The bucket's S3 name.
    fn name(&self) -> &'static str;
    /// Where an S3 key is kept: (object-store bucket, key).
    fn locate(&self, key: &str) -> Result<(String, String), S3Error>;
    fn authorize(&self, key: &str, access: Access) -> Result<(), S3Error>;
    fn authorize_list(&self, prefix: &str) -> Result<(), S3Error>;
    /// Before anything is written at `key`, what its name and sizes must be:
    /// `size` of the whole object once known, `request` the bytes this one
    /// request carries.
    fn admit(&self, key: &str, size: Option<u64>, request: u64) -> Result<(), S3Error>;
    /// Holds room for a whole object of `size` bytes at `key` (PUT, copy)
    /// until [`Space::release`]; `None` where nothing is counted.
    fn reserve(&self, _key: &str, _size: u64) -> Result<Option<String>, S3Error> {
        Ok(None)
    }
    /// Ends a hold, once its object is stored (and listed) or failed.
    fn release(&self, _hold: Option<String>) {}
    /// Multipart upload `id` was just created at `key`; an error aborts it.
    fn upload_opened(&self, _key: &str, _id: &str) -> Result<(), S3Error> {
        Ok(())
    }
    /// Before part `number` (`size` bytes) of upload `id` is stored.
    fn reserve_part(&self, _id: &str, _number: u32, _size: u64) -> Result<(), S3Error> {
        Ok(())
    }
    /// Upload `id` completed (its object listed) or was aborted.
    fn upload_closed(&self, _id: &str) {}
    /// After an object was stored at `key`.
    fn stored(&self, key: &str, m: &Manifest);
    /// Keys under `prefix` after `after`, in byte order, at most `max`.
    fn list(&self, prefix: &str, after: Option<&str>, max: usize) -> Result<Page, S3Error>;
    /// The object's public URL.
    fn url(&self, key: &str) -> String;
}

/// `outputs`: what jobs upload, `<job_id>/...`; readable by whoever may view
/// the job.
pub(super) struct Outputs<'a> {
    pub ctx: &'a Context<'a>,
    pub who: &'a Caller,
    pub store: ObjectStore<'a>,
}

impl Space for Outputs<'_> {
    fn name(&self) -> &'static str {
        BUCKET
    }

    fn locate(&self, key: &str) -> Result<(String, String), S3Error> {
        Ok((BUCKET.to_string(), key.to_string()))
    }

    fn authorize(&self, key: &str, access: Access) -> Result<(), S3Error> {
        authorize(self.ctx, self.who, key, access)
    }

    fn authorize_list(&self, prefix: &str) -> Result<(), S3Error> {
        match self.who {
            Caller::User(p) if p.has(Permission::JobViewAll) && job_of(prefix).is_empty() => Ok(()),
            _ => authorize(self.ctx, self.who, prefix, Access::Read),
        }
        .map_err(|e| {
            if e.code == "NoSuchKey" {
                access_denied("List with a prefix of a job you may view: <job_id>/")
            } else {
                e
            }
        })
    }

    fn admit(&self, _key: &str, _size: Option<u64>, _request: u64) -> Result<(), S3Error> {
        Ok(())
    }

    fn stored(&self, key: &str, _m: &Manifest) {
        if let Caller::Job(job) = self.who {
            self.ctx
                .jobs
                .object_stored(&job.job_id, key, &self.url(key));
        }
    }

    fn list(&self, prefix: &str, after: Option<&str>, max: usize) -> Result<Page, S3Error> {
        Ok(self.store.list(BUCKET, prefix, after, max)?)
    }

    fn url(&self, key: &str) -> String {
        object_url(self.ctx, BUCKET, key)
    }
}

/// An object's URL at this server's public origin.
pub(super) fn object_url(ctx: &Context, bucket: &str, key: &str) -> String {
    format!(
        "{}{MOUNT}/{bucket}/{}",
        ctx.public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/'),
        sigv4::aws_encode(key, false)
    )
}
