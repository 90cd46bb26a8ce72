//! Multipart uploads: parts stored as blobs of their own, assembled into one
//! object (with S3's `-N` ETag) when the upload completes.

use md5::{Digest as _, Md5};
use serde_json::{Map, Value};

use super::*;
use crate::kernel::kv::{KvError, edit_json, get_json, set_json};

impl ObjectStore<'_> {
    /// Starts a multipart upload; returns its id.
    pub fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        metadata: Map<String, Value>,
        now_ms: u64,
    ) -> Result<String, KvError> {
        let id = new_id();
        // Listed before it exists: a listed upload that is missing is simply
        // dropped by cleanup, an unlisted one could never be found.
        edit_json::<UploadIndex>(self.kv, &uploads_key(bucket), |idx| {
            idx.insert(id.clone(), key.to_string());
        })?;
        set_json(
            self.kv,
            &upload_key(&id),
            &Upload {
                bucket: bucket.into(),
                key: key.into(),
                content_type: content_type.into(),
                metadata,
                created_ms: now_ms,
                parts: Vec::new(),
            },
        )?;
        Ok(id)
    }

    /// The upload, if it exists and belongs to `bucket`/`key`.
    pub fn upload(&self, id: &str, bucket: &str, key: &str) -> Result<Option<Upload>, KvError> {
        Ok(get_json::<Upload>(self.kv, &upload_key(id))?
            .filter(|u| u.bucket == bucket && u.key == key))
    }

    /// Stores one part (re-uploading a part number replaces it); returns its
    /// ETag (quoted MD5).
    pub fn upload_part(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
        number: u32,
        bytes: &[u8],
    ) -> Result<String, StoreError> {
        if self.upload(id, bucket, key)?.is_none() {
            return Err(StoreError::NoSuchUpload);
        }
        self.check_size(bytes.len() as u64)?;
        let blob = self.write_blob(bytes)?;
        let md5 = hex::encode(Md5::digest(bytes));
        let pk = part_key(id, number);
        let old: Option<Part> = get_json(self.kv, &pk)?;
        set_json(
            self.kv,
            &pk,
            &Part {
                blob,
                md5: md5.clone(),
            },
        )?;
        if let Some(old) = old {
            self.delete_blob(&old.blob);
        }
        let added = update::<()>(self.kv, &upload_key(id), |cur| {
            let mut u: Upload = serde_json::from_slice(cur).map_err(|_| ())?;
            if !u.parts.contains(&number) {
                u.parts.push(number);
            }
            Ok(serde_json::to_vec(&u).expect("serialises"))
        });
        if added.is_err() {
            return Err(StoreError::NoSuchUpload);
        }
        Ok(format!("\"{md5}\""))
    }

    /// Completes an upload from the client's `(part number, ETag)` list: parts
    /// must exist with those ETags, ascending, all but the last ≥ 5 MiB.
    pub fn complete_upload(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
        listed: &[(u32, String)],
        now_ms: u64,
    ) -> Result<Manifest, StoreError> {
        let upload = self
            .upload(id, bucket, key)?
            .ok_or(StoreError::NoSuchUpload)?;
        if listed.is_empty() || listed.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(StoreError::InvalidPartOrder);
        }
        let mut parts = Vec::with_capacity(listed.len());
        for (number, etag) in listed {
            let part: Part = get_json(self.kv, &part_key(id, *number))?
                .ok_or(StoreError::InvalidPart(*number))?;
            if etag.trim_matches('"') != part.md5 {
                return Err(StoreError::InvalidPart(*number));
            }
            parts.push((*number, part));
        }
        for (number, part) in &parts[..parts.len() - 1] {
            if part.blob.size < MIN_PART {
                return Err(StoreError::EntityTooSmall(*number));
            }
        }
        let size: u64 = parts.iter().map(|(_, p)| p.blob.size).sum();
        self.check_size(size)?;
        let mut md5s = Vec::with_capacity(parts.len() * 16);
        for (_, p) in &parts {
            md5s.extend(hex::decode(&p.md5).map_err(|e| KvError::new(e.to_string()))?);
        }
        let manifest = Manifest {
            bucket: bucket.into(),
            key: key.into(),
            size,
            etag: format!("\"{}-{}\"", hex::encode(Md5::digest(&md5s)), parts.len()),
            content_type: upload.content_type.clone(),
            uploaded_ms: now_ms,
            metadata: upload.metadata.clone(),
            blobs: parts.iter().map(|(_, p)| p.blob.clone()).collect(),
        };
        self.publish(&manifest)?;
        // Parts uploaded but not listed are dropped, as on S3.
        for n in &upload.parts {
            let pk = part_key(id, *n);
            if !listed.iter().any(|(l, _)| l == n)
                && let Ok(Some(p)) = get_json::<Part>(self.kv, &pk)
            {
                self.delete_blob(&p.blob);
            }
            let _ = self.kv.delete(&pk);
        }
        let _ = self.kv.delete(&upload_key(id));
        self.unlist_upload(bucket, id)?;
        Ok(manifest)
    }

    /// The parts stored so far, by part number (ListParts; a client resuming
    /// an upload skips them).
    pub fn list_parts(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<(u32, Part)>, StoreError> {
        let mut upload = self
            .upload(id, bucket, key)?
            .ok_or(StoreError::NoSuchUpload)?;
        upload.parts.sort_unstable();
        let mut out = Vec::with_capacity(upload.parts.len());
        for n in upload.parts {
            if let Some(p) = get_json::<Part>(self.kv, &part_key(id, n))? {
                out.push((n, p));
            }
        }
        Ok(out)
    }

    pub(super) fn unlist_upload(&self, bucket: &str, id: &str) -> Result<(), KvError> {
        edit_json::<UploadIndex>(self.kv, &uploads_key(bucket), |idx| {
            idx.remove(id);
        })
    }

    /// Aborts the uploads into `bucket` started at or before `cutoff_ms`
    /// (abandoned: a trainer that died mid-upload); returns how many.
    pub fn expire_uploads(&self, bucket: &str, cutoff_ms: u64) -> Result<usize, KvError> {
        let uploads: UploadIndex = get_json(self.kv, &uploads_key(bucket))?.unwrap_or_default();
        let mut expired = 0;
        for (id, key) in &uploads {
            let stale = match get_json::<Upload>(self.kv, &upload_key(id))? {
                Some(u) => u.created_ms <= cutoff_ms,
                None => true,
            };
            if !stale {
                continue;
            }
            match self.abort_upload(id, bucket, key) {
                Ok(()) => expired += 1,
                Err(StoreError::NoSuchUpload) => self.unlist_upload(bucket, id)?,
                Err(StoreError::Kv(e)) => return Err(e),
                Err(_) => {
                    return Err(KvError::new(format!("cannot abort upload {id}")));
                }
            }
        }
        Ok(expired)
    }

    /// Abandons an upload and frees its parts.
    pub fn abort_upload(&self, id: &str, bucket: &str, key: &str) -> Result<(), StoreError> {
        let upload = self
            .upload(id, bucket, key)?
            .ok_or(StoreError::NoSuchUpload)?;
        for n in &upload.parts {
            let pk = part_key(id, *n);
            if let Ok(Some(p)) = get_json::<Part>(self.kv, &pk) {
                self.delete_blob(&p.blob);
            }
            let _ = self.kv.delete(&pk);
        }
        self.kv.delete(&upload_key(id))?;
        self.unlist_upload(bucket, id)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::bytes;
    use super::*;
    use crate::kernel::kv::MemoryKv;

    #[test]
    fn deleting_a_prefix_frees_its_unfinished_multipart_uploads() {
        let kv = MemoryKv::default();
        let store = ObjectStore::new(&kv, 1 << 30);
        // A trainer died mid-upload under a/; another upload runs under b/.
        let dead = store
            .create_upload("outputs", "a/w.safetensors", "x", Map::new(), 1)
            .unwrap();
        store
            .upload_part(
                &dead,
                "outputs",
                "a/w.safetensors",
                1,
                &bytes(2 * CHUNK + 5),
            )
            .unwrap();
        let live = store
            .create_upload("outputs", "b/w.safetensors", "x", Map::new(), 1)
            .unwrap();
        store
            .upload_part(&live, "outputs", "b/w.safetensors", 1, b"part")
            .unwrap();
        // A listed upload whose record is gone is just unlisted.
        let ghost = store
            .create_upload("outputs", "a/ghost", "x", Map::new(), 1)
            .unwrap();
        kv.delete(&upload_key(&ghost)).unwrap();

        assert_eq!(store.delete_prefix("outputs", "a/").unwrap(), 0);
        let keys = kv.keys();
        assert!(
            !keys.iter().any(|k| k.contains(&dead) || k.contains(&ghost)),
            "{keys:?}"
        );
        // b/'s upload is untouched and still completes; then nothing is in flight.
        let chunks = keys.iter().filter(|k| k.starts_with("s3d:")).count();
        assert_eq!(chunks, 1, "only b/'s part remains: {keys:?}");
        let etag = format!("\"{}\"", hex::encode(Md5::digest(b"part")));
        store
            .complete_upload(&live, "outputs", "b/w.safetensors", &[(1, etag)], 2)
            .unwrap();
        let idx: UploadIndex = get_json(&kv, &uploads_key("outputs")).unwrap().unwrap();
        assert!(idx.is_empty(), "{idx:?}");
    }

    #[test]
    fn multipart_assembles_parts_with_the_s3_etag() {
        let kv = MemoryKv::default();
        let store = ObjectStore::new(&kv, 1 << 30);
        let id = store
            .create_upload("outputs", "j/w", "x", Map::new(), 1)
            .unwrap();
        let p1 = bytes(MIN_PART as usize);
        let p2 = b"tail".to_vec();
        // Parts may arrive in any order; a re-upload replaces.
        let e2 = store.upload_part(&id, "outputs", "j/w", 2, &p2).unwrap();
        store
            .upload_part(&id, "outputs", "j/w", 1, b"will be replaced")
            .unwrap();
        let e1 = store.upload_part(&id, "outputs", "j/w", 1, &p1).unwrap();
        let listed = store.list_parts(&id, "outputs", "j/w").unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|(n, p)| (*n, format!("\"{}\"", p.md5)))
                .collect::<Vec<_>>(),
            [(1, e1.clone()), (2, e2.clone())]
        );
        assert!(
            store.head("outputs", "j/w").unwrap().is_none(),
            "not visible before completion"
        );
        assert_eq!(
            store.complete_upload(
                &id,
                "outputs",
                "j/w",
                &[(1, "\"bad\"".into()), (2, e2.clone())],
                2
            ),
            Err(StoreError::InvalidPart(1))
        );
        let m = store
            .complete_upload(&id, "outputs", "j/w", &[(1, e1), (2, e2)], 2)
            .unwrap();
        let mut md5s = Md5::digest(&p1).to_vec();
        md5s.extend(Md5::digest(&p2));
        assert_eq!(m.etag, format!("\"{}-2\"", hex::encode(Md5::digest(&md5s))));
        let mut whole = p1.clone();
        whole.extend(&p2);
        assert_eq!(store.read(&m, 0, m.size).unwrap(), whole);
        assert!(kv.keys().iter().all(|k| !k.starts_with("s3mp")));
        // Exactly the blobs of the object remain.
        let chunks = kv.keys().iter().filter(|k| k.starts_with("s3d:")).count() as u64;
        assert_eq!(chunks, m.blobs.iter().map(Blob::chunks).sum::<u64>());
    }

    #[test]
    fn small_middle_parts_and_oversized_objects_are_refused() {
        let kv = MemoryKv::default();
        let store = ObjectStore::new(&kv, 100);
        assert!(matches!(
            store.put("outputs", "k", &[0; 101], "t", Map::new(), 1),
            Err(StoreError::EntityTooLarge {
                size: 101,
                max: 100
            })
        ));
        let store = ObjectStore::new(&kv, 1 << 30);
        let id = store
            .create_upload("outputs", "k", "t", Map::new(), 1)
            .unwrap();
        let e1 = store.upload_part(&id, "outputs", "k", 1, b"tiny").unwrap();
        let e2 = store.upload_part(&id, "outputs", "k", 2, b"tiny").unwrap();
        assert_eq!(
            store.complete_upload(&id, "outputs", "k", &[(1, e1), (2, e2)], 1),
            Err(StoreError::EntityTooSmall(1))
        );
        store.abort_upload(&id, "outputs", "k").unwrap();
        assert!(
            kv.keys()
                .iter()
                .all(|k| !k.starts_with("s3d:") && !k.starts_with("s3mp"))
        );
        assert_eq!(
            store.upload_part(&id, "outputs", "k", 1, b"x"),
            Err(StoreError::NoSuchUpload)
        );
    }
}
