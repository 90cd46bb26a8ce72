//! Objects in the key-value store: bytes in chunks of at most [`CHUNK`] (Fermyon
//! Cloud caps a value at 1 MB), a manifest per object, and a sorted index per
//! bucket for listing.
//!
//! Keys:
//! - `s3d:<blob>:<n>` — chunk `n` of a blob (a single PUT, or one multipart part);
//! - `s3o:<sha256(bucket/key)>` — the object's [`Manifest`] (hashed: S3 keys may
//!   be 1,024 bytes, KV keys only 255);
//! - `s3idx:<bucket>` — `{key: IndexEntry}`, sorted, edited by CAS;
//! - `s3mp:<upload>` and `s3mpp:<upload>:<part>` — multipart uploads in flight;
//! - `s3uploads:<bucket>` — `{upload id: key}` of the uploads in flight, so
//!   deleting a prefix (a job's outputs) also frees uploads a trainer never
//!   finished.
//!
//! Writes are ordered so a half-written object is never visible: chunks, then
//! the manifest, then the index entry. Deletes go the other way. Multipart
//! uploads are in [`multipart`].

mod multipart;

use std::collections::BTreeMap;

use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::kernel::kv::{
    KvError, KvStore, MAX_CAS_ATTEMPTS, delete_created, edit_json, get_json, update,
};

/// Bytes per chunk value: under 1 MB with room to spare.
pub const CHUNK: usize = 960 * 1024;
/// S3's minimum size of every multipart part but the last.
pub const MIN_PART: u64 = 5 * 1024 * 1024;
pub const MAX_PARTS: u32 = 10_000;

/// One stored blob: where its bytes are and how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blob {
    pub id: String,
    pub size: u64,
}

impl Blob {
    fn chunks(&self) -> u64 {
        self.size.div_ceil(CHUNK as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Quoted, as S3 sends it: `"<md5>"` or `"<md5 of md5s>-<parts>"`.
    pub etag: String,
    pub content_type: String,
    pub uploaded_ms: u64,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub blobs: Vec<Blob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub size: u64,
    pub etag: String,
    pub uploaded_ms: u64,
}

pub type BucketIndex = BTreeMap<String, IndexEntry>;

/// A multipart upload in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub content_type: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub created_ms: u64,
    /// Part numbers uploaded so far (for abort and cleanup).
    #[serde(default)]
    pub parts: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub blob: Blob,
    /// Hex MD5 (the part's ETag without quotes).
    pub md5: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    Kv(KvError),
    NoSuchUpload,
    /// A listed part is missing or its ETag differs.
    InvalidPart(u32),
    InvalidPartOrder,
    /// A part other than the last is under 5 MiB.
    EntityTooSmall(u32),
    EntityTooLarge {
        size: u64,
        max: u64,
    },
}

impl From<KvError> for StoreError {
    fn from(e: KvError) -> Self {
        StoreError::Kv(e)
    }
}

pub struct ObjectStore<'a> {
    kv: &'a dyn KvStore,
    /// Largest object accepted, in bytes.
    pub max_object: u64,
}

fn manifest_key(bucket: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("{bucket}/{key}").as_bytes());
    format!("s3o:{}", hex::encode(digest))
}

fn chunk_key(blob: &str, n: u64) -> String {
    format!("s3d:{blob}:{n}")
}

fn index_key(bucket: &str) -> String {
    format!("s3idx:{bucket}")
}

fn upload_key(upload: &str) -> String {
    format!("s3mp:{upload}")
}

/// Uploads in flight per bucket: `{upload id: object key}`.
type UploadIndex = BTreeMap<String, String>;

fn uploads_key(bucket: &str) -> String {
    format!("s3uploads:{bucket}")
}

fn part_key(upload: &str, part: u32) -> String {
    format!("s3mpp:{upload}:{part}")
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl<'a> ObjectStore<'a> {
    pub fn new(kv: &'a dyn KvStore, max_object: u64) -> Self {
        ObjectStore { kv, max_object }
    }

    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        if size > self.max_object {
            return Err(StoreError::EntityTooLarge {
                size,
                max: self.max_object,
            });
        }
        Ok(())
    }

    fn write_blob(&self, bytes: &[u8]) -> Result<Blob, StoreError> {
        let id = new_id();
        for (n, chunk) in bytes.chunks(CHUNK).enumerate() {
            self.kv.set(&chunk_key(&id, n as u64), chunk)?;
        }
        Ok(Blob {
            id,
            size: bytes.len() as u64,
        })
    }

    fn delete_blob(&self, blob: &Blob) {
        for n in 0..blob.chunks() {
            let _ = self.kv.delete(&chunk_key(&blob.id, n));
        }
    }

    pub fn head(&self, bucket: &str, key: &str) -> Result<Option<Manifest>, KvError> {
        get_json(self.kv, &manifest_key(bucket, key))
    }

    /// Stores a whole object (PutObject). ETag = MD5 of the bytes.
    pub fn put(
        &self,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        content_type: &str,
        metadata: Map<String, Value>,
        now_ms: u64,
    ) -> Result<Manifest, StoreError> {
        self.check_size(bytes.len() as u64)?;
        let blob = self.write_blob(bytes)?;
        let manifest = Manifest {
            bucket: bucket.into(),
            key: key.into(),
            size: blob.size,
            etag: format!("\"{}\"", hex::encode(Md5::digest(bytes))),
            content_type: content_type.into(),
            uploaded_ms: now_ms,
            metadata,
            blobs: vec![blob],
        };
        self.publish(&manifest)?;
        Ok(manifest)
    }

    /// Makes `manifest` the object (replacing and freeing any older one), then
    /// lists it.
    fn publish(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let key = manifest_key(&manifest.bucket, &manifest.key);
        let new = serde_json::to_vec(manifest).map_err(|e| KvError::new(e.to_string()))?;
        // Swap so exactly the replaced manifest's blobs are freed. (A first write
        // racing another first write may leak the loser's chunks: Spin's CAS on
        // a missing key is an upsert.)
        let mut swapped = None;
        for attempt in 0..MAX_CAS_ATTEMPTS {
            let current = self.kv.read_for_swap(&key)?;
            if self.kv.swap(&key, current.as_deref(), &new)? {
                swapped = Some(current.and_then(|c| serde_json::from_slice::<Manifest>(&c).ok()));
                break;
            }
            if attempt > 2 {
                std::thread::sleep(std::time::Duration::from_micros(50 * attempt as u64));
            }
        }
        // Never swapped in: the object is not ours, so neither is an index
        // entry; free what was written and say so.
        let Some(replaced) = swapped else {
            for b in &manifest.blobs {
                self.delete_blob(b);
            }
            return Err(KvError::new(format!("{} is too contended", manifest.key)).into());
        };
        self.list_current(&manifest.bucket, &manifest.key)?;
        if let Some(old) = replaced {
            for b in old.blobs.iter().filter(|b| !manifest.blobs.contains(b)) {
                self.delete_blob(b);
            }
        }
        Ok(())
    }

    /// Sets `key`'s index entry from its manifest as it is now (or removes it
    /// when there is none). Read inside the index's CAS: of writers racing,
    /// the last to edit the index read the manifest after the last swap, so
    /// the entry ends as the object is, whichever order the edits land in.
    fn list_current(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        let mut failed = None;
        edit_json::<BucketIndex>(self.kv, &index_key(bucket), |idx| {
            match self.head(bucket, key) {
                Ok(Some(m)) => {
                    idx.insert(
                        key.to_string(),
                        IndexEntry {
                            size: m.size,
                            etag: m.etag,
                            uploaded_ms: m.uploaded_ms,
                        },
                    );
                }
                Ok(None) => {
                    idx.remove(key);
                }
                Err(e) => failed = Some(e),
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Reads `range` (inclusive start, exclusive end) of an object.
    pub fn read(&self, m: &Manifest, start: u64, end: u64) -> Result<Vec<u8>, KvError> {
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut offset = 0u64;
        for blob in &m.blobs {
            let (b_start, b_end) = (offset, offset + blob.size);
            offset = b_end;
            if b_end <= start || b_start >= end {
                continue;
            }
            let from = start.max(b_start) - b_start;
            let to = end.min(b_end) - b_start;
            for n in from / CHUNK as u64..to.div_ceil(CHUNK as u64) {
                let chunk = self
                    .kv
                    .get(&chunk_key(&blob.id, n))?
                    .ok_or_else(|| KvError::new(format!("chunk {n} of {} is missing", m.key)))?;
                let c_start = n * CHUNK as u64;
                let lo = from.max(c_start) - c_start;
                let hi = (to.min(c_start + chunk.len() as u64) - c_start) as usize;
                out.extend_from_slice(&chunk[lo as usize..hi]);
            }
        }
        Ok(out)
    }

    /// Deletes an object (no error when it does not exist, as on S3).
    pub fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        let Some(m) = self.head(bucket, key)? else {
            return Ok(());
        };
        edit_json::<BucketIndex>(self.kv, &index_key(bucket), |idx| {
            idx.remove(key);
        })?;
        self.kv.delete(&manifest_key(bucket, key))?;
        for b in &m.blobs {
            self.delete_blob(b);
        }
        Ok(())
    }

    /// Deletes every object under `prefix` (a job's outputs when the job goes).
    pub fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, KvError> {
        let keys: Vec<String> = self
            .list(bucket, prefix, None, usize::MAX)?
            .0
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for k in &keys {
            self.delete(bucket, k)?;
        }
        let uploads: UploadIndex = get_json(self.kv, &uploads_key(bucket))?.unwrap_or_default();
        for (id, key) in uploads.iter().filter(|(_, k)| k.starts_with(prefix)) {
            match self.abort_upload(id, bucket, key) {
                Ok(()) => {}
                Err(StoreError::NoSuchUpload) => self.unlist_upload(bucket, id)?,
                Err(StoreError::Kv(e)) => return Err(e),
                Err(_) => {
                    return Err(KvError::new(format!("cannot abort upload {id}")));
                }
            }
        }
        Ok(keys.len())
    }

    /// Deletes a whole bucket: its objects, unfinished uploads and indexes (a
    /// dataset when it is deleted).
    pub fn drop_bucket(&self, bucket: &str) -> Result<usize, KvError> {
        let n = self.delete_prefix(bucket, "")?;
        delete_created(self.kv, &index_key(bucket))?;
        delete_created(self.kv, &uploads_key(bucket))?;
        Ok(n)
    }

    /// Copies an object (CopyObject) chunk by chunk, so memory stays at one
    /// chunk whatever the size. The copy keeps the source's ETag, as S3 does
    /// for objects stored whole; `replace` gives new content type/metadata.
    pub fn copy(
        &self,
        source: &Manifest,
        bucket: &str,
        key: &str,
        replace: Option<(String, Map<String, Value>)>,
        now_ms: u64,
    ) -> Result<Manifest, StoreError> {
        self.check_size(source.size)?;
        let mut blobs = Vec::with_capacity(source.blobs.len());
        for blob in &source.blobs {
            let id = new_id();
            for n in 0..blob.chunks() {
                let chunk = self.kv.get(&chunk_key(&blob.id, n))?.ok_or_else(|| {
                    KvError::new(format!("chunk {n} of {} is missing", source.key))
                })?;
                self.kv.set(&chunk_key(&id, n), &chunk)?;
            }
            blobs.push(Blob {
                id,
                size: blob.size,
            });
        }
        let (content_type, metadata) =
            replace.unwrap_or_else(|| (source.content_type.clone(), source.metadata.clone()));
        let manifest = Manifest {
            bucket: bucket.into(),
            key: key.into(),
            size: source.size,
            etag: source.etag.clone(),
            content_type,
            uploaded_ms: now_ms,
            metadata,
            blobs,
        };
        self.publish(&manifest)?;
        Ok(manifest)
    }

    /// Keys under `prefix` after `after`, at most `max`; and whether more remain.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<(String, IndexEntry)>, bool), KvError> {
        let idx: BucketIndex = get_json(self.kv, &index_key(bucket))?.unwrap_or_default();
        let mut items = idx
            .into_iter()
            .filter(|(k, _)| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a));
        let page: Vec<_> = items.by_ref().take(max).collect();
        let more = items.next().is_some();
        Ok((page, more))
    }
}

#[cfg(test)]
mod tests;
