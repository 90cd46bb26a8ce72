//! The dataset quota under concurrency: bytes not yet in a dataset's index
//! count too. A user's writes in flight and open multipart uploads are kept in
//! one record, `datasets:inflight:<owner>` ([`Inflight`]), changed only by
//! compare-and-swap; a write is admitted by the same swap that records it, so
//! parallel PUTs cannot all pass one check, and parts count from the moment
//! they are admitted until their upload completes, is aborted or expires.
//!
//! A reservation is read *before* the indexes it is added to: a write that
//! finishes meanwhile (index entry made, reservation dropped) changes the
//! record, so the swap fails and the check runs again on fresh numbers. Bytes
//! are never missed, at worst counted twice for a moment.
//!
//! Nothing here drifts: a single write's hold lapses on its own
//! ([`WRITE_HOLD_MS`]), and open uploads are aborted, parts and all, when
//! stale ([`expire_stale_uploads`], from the periodic sync).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{DatasetStore, Limits, MAX_FILE_BYTES, object_bucket};
use crate::kernel::kv::{KvError, KvStore, MAX_CAS_ATTEMPTS, create_once, edit_json, get_json};
use crate::storage::objects::{ObjectStore, StoreError};

/// How long a single write's hold counts if its request never ends it (a
/// request that died): longer than any request runs.
pub const WRITE_HOLD_MS: u64 = 15 * 60 * 1000;
/// An upload untouched this long is abandoned: aborted, its parts freed.
pub const UPLOAD_TTL_MS: u64 = 24 * 3600 * 1000;
/// Multipart uploads one user may have open at once (`aws s3 sync` runs 10).
pub const MAX_OPEN_UPLOADS: usize = 32;
/// Parts one dataset upload may hold: a file is at most 100 MiB and clients
/// send 8 MiB parts.
pub const MAX_UPLOAD_PARTS: usize = 200;

/// Owners with open uploads, for [`expire_stale_uploads`].
const UPLOADERS_KEY: &str = "datasets:uploaders";

fn inflight_key(owner: &str) -> String {
    format!("datasets:inflight:{owner}")
}

/// A single write (PUT, copy) admitted and not yet listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub dataset: String,
    pub path: String,
    pub bytes: u64,
    /// A new file in the dataset (not a replacement): counts against
    /// `dataset_max_files` until listed.
    pub new_file: bool,
    pub until_ms: u64,
}

/// A multipart upload in flight and the bytes of its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenUpload {
    pub dataset: String,
    pub path: String,
    pub new_file: bool,
    /// Last time it was opened or received a part.
    pub touched_ms: u64,
    #[serde(default)]
    pub parts: BTreeMap<u32, u64>,
}

/// What one user has in flight.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inflight {
    #[serde(default)]
    pub writes: BTreeMap<String, Hold>,
    #[serde(default)]
    pub uploads: BTreeMap<String, OpenUpload>,
}

impl Inflight {
    /// Bytes admitted but not (yet) in an index.
    pub fn bytes(&self) -> u64 {
        let writes: u64 = self.writes.values().map(|h| h.bytes).sum();
        let parts: u64 = self.uploads.values().flat_map(|u| u.parts.values()).sum();
        writes + parts
    }

    /// New files on their way into `dataset`, other than `path`.
    fn new_files(&self, dataset: &str, path: &str) -> usize {
        let writes = self
            .writes
            .values()
            .map(|h| (&h.dataset, &h.path, h.new_file));
        let uploads = self
            .uploads
            .values()
            .map(|u| (&u.dataset, &u.path, u.new_file));
        writes
            .chain(uploads)
            .filter(|(d, p, new)| *new && d.as_str() == dataset && p.as_str() != path)
            .map(|(_, p, _)| p.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn prune(&mut self, now_ms: u64) {
        self.writes.retain(|_, h| h.until_ms > now_ms);
    }
}

/// Why a write is not admitted.
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaError {
    Kv(KvError),
    /// Over the user's quota: (bytes used and in flight, quota).
    Quota {
        used: u64,
        quota: u64,
    },
    /// The dataset would hold more files than `dataset_max_files`.
    TooManyFiles(usize),
    /// [`MAX_OPEN_UPLOADS`] uploads are open already.
    TooManyUploads,
    /// The upload is not open (never was, completed, aborted or expired).
    NoSuchUpload,
    /// [`MAX_UPLOAD_PARTS`] parts, or the parts add up to more than a file may hold.
    UploadTooLarge,
}

impl From<KvError> for QuotaError {
    fn from(e: KvError) -> Self {
        QuotaError::Kv(e)
    }
}

/// A write of one object of `bytes` at `dataset`/`path`, before it is made.
pub struct Write<'a> {
    pub dataset: &'a str,
    pub path: &'a str,
    pub bytes: u64,
}

impl DatasetStore<'_> {
    /// What this user has in flight (stale single writes left out).
    pub fn inflight(&self, now_ms: u64) -> Result<Inflight, KvError> {
        let mut m: Inflight = get_json(self.kv, &inflight_key(self.owner))?.unwrap_or_default();
        m.prune(now_ms);
        Ok(m)
    }

    /// Read-modify-write of the in-flight record by CAS; `f` runs on every
    /// attempt, after the read, so what it reads elsewhere is at least as new.
    /// Only an admission (`create`) makes the record: ending something where
    /// there is no record has nothing to change.
    fn edit_inflight<T>(
        &self,
        now_ms: u64,
        create: bool,
        mut f: impl FnMut(&mut Inflight) -> Result<T, QuotaError>,
    ) -> Result<T, QuotaError> {
        let key = inflight_key(self.owner);
        for attempt in 0..MAX_CAS_ATTEMPTS {
            let Some(current) = self.kv.read_for_swap(&key)? else {
                if !create {
                    return f(&mut Inflight::default());
                }
                create_once(self.kv, &key, b"{}")?;
                continue;
            };
            let mut m: Inflight = serde_json::from_slice(&current).unwrap_or_default();
            m.prune(now_ms);
            let out = f(&mut m)?;
            let new = serde_json::to_vec(&m).map_err(|e| KvError::new(e.to_string()))?;
            if new == current || self.kv.swap(&key, Some(&current), &new)? {
                return Ok(out);
            }
            if attempt > 2 {
                std::thread::sleep(std::time::Duration::from_micros(50 * attempt as u64));
            }
        }
        Err(KvError::new(format!("{key} is too contended")).into())
    }

    /// The stored size of `path` in `dataset`, if it is there.
    fn existing(&self, dataset: &str, path: &str) -> Result<Option<u64>, KvError> {
        Ok(self
            .objects()
            .head(&self.bucket(dataset), path)?
            .map(|m| m.size))
    }

    /// Whether `extra` more bytes (replacing `replaced`) and maybe a new file
    /// fit, given what `m` has in flight. Reads the indexes: call it after the
    /// in-flight record was read.
    fn check_fits(
        &self,
        m: &Inflight,
        w: &Write,
        replaced: Option<u64>,
        limits: &Limits,
    ) -> Result<(), QuotaError> {
        if replaced.is_none() {
            let files = self.contents(w.dataset)?.files + m.new_files(w.dataset, w.path);
            if files >= limits.max_files {
                return Err(QuotaError::TooManyFiles(limits.max_files));
            }
        }
        let used = (self.usage()? + m.bytes()).saturating_sub(replaced.unwrap_or(0));
        if used.saturating_add(w.bytes) > limits.quota_bytes {
            return Err(QuotaError::Quota {
                used,
                quota: limits.quota_bytes,
            });
        }
        Ok(())
    }

    /// Admits a single write (PUT, copy) and holds its bytes until
    /// [`DatasetStore::release_write`]: returns the hold's id.
    pub fn reserve_write(
        &self,
        w: &Write,
        limits: &Limits,
        now_ms: u64,
    ) -> Result<String, QuotaError> {
        let id = crate::kernel::secrets::random_base62(16);
        self.edit_inflight(now_ms, true, |m| {
            let replaced = self.existing(w.dataset, w.path)?;
            self.check_fits(m, w, replaced, limits)?;
            m.writes.insert(
                id.clone(),
                Hold {
                    dataset: w.dataset.into(),
                    path: w.path.into(),
                    bytes: w.bytes,
                    new_file: replaced.is_none(),
                    until_ms: now_ms + WRITE_HOLD_MS,
                },
            );
            Ok(())
        })?;
        Ok(id)
    }

    /// Ends a hold (its write is listed now, or failed).
    pub fn release_write(&self, id: &str, now_ms: u64) -> Result<(), QuotaError> {
        self.edit_inflight(now_ms, false, |m| {
            m.writes.remove(id);
            Ok(())
        })
    }

    /// Registers a multipart upload just created at `dataset`/`path`, unless
    /// this user has [`MAX_OPEN_UPLOADS`] open or a new file would not fit.
    pub fn open_upload(
        &self,
        id: &str,
        dataset: &str,
        path: &str,
        limits: &Limits,
        now_ms: u64,
    ) -> Result<(), QuotaError> {
        // Listed first, so the sync finds it even if this request dies.
        edit_json::<BTreeSet<String>>(self.kv, UPLOADERS_KEY, |owners| {
            owners.insert(self.owner.to_string());
        })?;
        self.edit_inflight(now_ms, true, |m| {
            if m.uploads.len() >= MAX_OPEN_UPLOADS {
                return Err(QuotaError::TooManyUploads);
            }
            let replaced = self.existing(dataset, path)?;
            let w = Write {
                dataset,
                path,
                bytes: 0,
            };
            self.check_fits(m, &w, replaced, limits)?;
            m.uploads.insert(
                id.to_string(),
                OpenUpload {
                    dataset: dataset.into(),
                    path: path.into(),
                    new_file: replaced.is_none(),
                    touched_ms: now_ms,
                    parts: BTreeMap::new(),
                },
            );
            Ok(())
        })?;
        // Again: the sync may have unlisted this owner meanwhile.
        edit_json::<BTreeSet<String>>(self.kv, UPLOADERS_KEY, |owners| {
            owners.insert(self.owner.to_string());
        })?;
        Ok(())
    }

    /// Admits part `number` of an open upload: it counts from now on (a
    /// re-sent part replaces the earlier one's count).
    pub fn reserve_part(
        &self,
        id: &str,
        number: u32,
        bytes: u64,
        limits: &Limits,
        now_ms: u64,
    ) -> Result<(), QuotaError> {
        self.edit_inflight(now_ms, true, |m| {
            let upload = m.uploads.get(id).ok_or(QuotaError::NoSuchUpload)?;
            let resent = upload.parts.get(&number).copied();
            let previous = resent.unwrap_or(0);
            let file: u64 = upload.parts.values().sum::<u64>() - previous + bytes;
            let count = upload.parts.len() + usize::from(resent.is_none());
            if file > MAX_FILE_BYTES || count > MAX_UPLOAD_PARTS {
                return Err(QuotaError::UploadTooLarge);
            }
            let used = (self.usage()? + m.bytes()).saturating_sub(previous);
            if used.saturating_add(bytes) > limits.quota_bytes {
                return Err(QuotaError::Quota {
                    used,
                    quota: limits.quota_bytes,
                });
            }
            let upload = m.uploads.get_mut(id).ok_or(QuotaError::NoSuchUpload)?;
            upload.parts.insert(number, bytes);
            upload.touched_ms = now_ms;
            Ok(())
        })
    }

    /// Ends an upload's count (completed and listed, or aborted).
    pub fn close_upload(&self, id: &str, now_ms: u64) -> Result<(), QuotaError> {
        self.edit_inflight(now_ms, false, |m| {
            m.uploads.remove(id);
            Ok(())
        })
    }

    /// Drops everything in flight into `dataset` (it is being deleted; its
    /// uploads go with its bucket).
    pub(super) fn forget_dataset(&self, dataset: &str, now_ms: u64) -> Result<(), QuotaError> {
        self.edit_inflight(now_ms, false, |m| {
            m.writes.retain(|_, h| h.dataset != dataset);
            m.uploads.retain(|_, u| u.dataset != dataset);
            Ok(())
        })
    }

    /// Aborts this user's uploads untouched for [`UPLOAD_TTL_MS`], parts and
    /// all; returns how many. Whether any remain open, second.
    pub fn expire_stale(&self, now_ms: u64) -> Result<(usize, bool), QuotaError> {
        let stale: Vec<(String, OpenUpload)> = self
            .inflight(now_ms)?
            .uploads
            .into_iter()
            .filter(|(_, u)| u.touched_ms + UPLOAD_TTL_MS <= now_ms)
            .collect();
        for (id, u) in &stale {
            let objects = ObjectStore::new(self.kv, MAX_FILE_BYTES);
            match objects.abort_upload(id, &object_bucket(self.owner, &u.dataset), &u.path) {
                Ok(()) | Err(StoreError::NoSuchUpload) => {}
                Err(StoreError::Kv(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(KvError::new(format!("cannot abort upload {id}")).into());
                }
            }
        }
        self.edit_inflight(now_ms, false, |m| {
            for (id, _) in &stale {
                m.uploads.remove(id);
            }
            Ok((stale.len(), !m.uploads.is_empty()))
        })
    }
}

/// Housekeeping for the periodic sync: aborts multipart uploads abandoned for
/// [`UPLOAD_TTL_MS`] (datasets' and jobs' outputs'), freeing their parts and,
/// for datasets, the quota they held. Returns how many were aborted.
pub fn expire_stale_uploads(kv: &dyn KvStore, now_ms: u64) -> Result<usize, KvError> {
    let mut expired = ObjectStore::new(kv, u64::MAX)
        .expire_uploads(crate::storage::BUCKET, now_ms.saturating_sub(UPLOAD_TTL_MS))?;
    let owners: BTreeSet<String> = get_json(kv, UPLOADERS_KEY)?.unwrap_or_default();
    for owner in owners {
        let store = DatasetStore::new(kv, &owner);
        let (n, open) = store.expire_stale(now_ms).map_err(|e| match e {
            QuotaError::Kv(e) => e,
            _ => KvError::new(format!("cannot expire {owner}'s stale uploads")),
        })?;
        expired += n;
        if !open {
            edit_json::<BTreeSet<String>>(kv, UPLOADERS_KEY, |owners| {
                owners.remove(&owner);
            })?;
            // An upload opened meanwhile lists its owner again.
            if !store.inflight(now_ms)?.uploads.is_empty() {
                edit_json::<BTreeSet<String>>(kv, UPLOADERS_KEY, |owners| {
                    owners.insert(owner.clone());
                })?;
            }
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests;
