//! Datasets users upload to this server (from the browser, or with `aws s3
//! sync ./x s3://datasets/x`): a record per dataset and its files as objects.
//!
//! Each dataset is an object-store bucket of its own (`ds:<owner>:<name>`), so
//! listing, counting and deleting a dataset touch only its own index, and two
//! users may both have a `cats` dataset. Names are per user: a user sees and
//! writes only their own.
//!
//! Keys: `dataset:<owner>:<name>` (the [`Dataset`] record), `datasets:u:<owner>`
//! (the owner's names, CAS), plus the object keys of [`crate::storage::objects`]:
//! one manifest per file and one chunk per started 960 KiB, and one index.
//!
//! A browser upload announces itself first ([`DatasetStore::begin_upload`]) and
//! the dataset stays `uploading` — listed as such, refused by submit — until
//! every announced file is there ([`DatasetStore::complete`]): an upload that
//! stops half-way never looks usable. `aws s3 sync` has no such step (S3 has
//! none): its datasets are `ready` from the first file, each file whole or
//! absent.

mod quota;

pub use quota::{
    Inflight, MAX_OPEN_UPLOADS, MAX_UPLOAD_PARTS, QuotaError, UPLOAD_TTL_MS, WRITE_HOLD_MS, Write,
    expire_stale_uploads,
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kernel::clock::rfc3339;
use crate::kernel::error::ApiError;
use crate::kernel::kv::{
    KvError, KvStore, UpdateError, create_once, delete_created, edit_json, get_json, update,
};
use crate::storage::objects::{IndexEntry, ObjectStore};

/// The S3 bucket datasets appear in.
pub const S3_BUCKET: &str = "datasets";
/// What `instance_data_dir` names an uploaded dataset with.
pub const REFERENCE_SCHEME: &str = "dataset://";
/// Fermyon Cloud refuses request bodies over 10 MB: every write (a PUT or a
/// part) must fit. The AWS CLI's and boto3's 8 MiB parts do.
pub const MAX_REQUEST_BYTES: u64 = 10 * 1000 * 1000;
/// One file can be at most Replicate's whole-archive limit.
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_QUOTA_MB: u64 = 500;
pub const DEFAULT_MAX_FILES: usize = 1000;
const MAX_NAME: usize = 64;
/// Datasets one user may have, empty or not: each costs keys even empty
/// (a browser upload that never sent a file, a write refused for quota).
pub const MAX_DATASETS: usize = 100;
const SECRET_EXTENSIONS: [&str; 6] = ["env", "pem", "key", "crt", "p12", "pfx"];
const IMAGE_EXTENSIONS: [&str; 9] = [
    "png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff", "jxl",
];
const CAPTION_EXTENSIONS: [&str; 2] = ["txt", "caption"];

/// Per-user limits, from the `dataset_quota_mb` and `dataset_max_files`
/// variables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Bytes all of a user's datasets may hold together.
    pub quota_bytes: u64,
    /// Files one dataset may hold (each costs ≥ 2 store keys).
    pub max_files: usize,
}

impl Limits {
    pub fn from_variables(quota_mb: Option<&str>, max_files: Option<&str>) -> Self {
        let num = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u64>().ok());
        Limits {
            quota_bytes: num(quota_mb)
                .unwrap_or(DEFAULT_QUOTA_MB)
                .saturating_mul(1024 * 1024),
            max_files: num(max_files)
                .map(|n| n as usize)
                .unwrap_or(DEFAULT_MAX_FILES),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Uploading,
    Ready,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub owner: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub state: State,
    /// Files a browser upload announced (checked by [`DatasetStore::complete`]).
    #[serde(default)]
    pub expected_files: Option<usize>,
}

/// What a dataset holds, counted from its index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contents {
    pub files: usize,
    pub bytes: u64,
    pub images: usize,
    pub captions: usize,
}

fn extension(path: &str) -> String {
    std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

impl Contents {
    fn count<'a>(files: impl Iterator<Item = (&'a String, &'a IndexEntry)>) -> Self {
        let mut c = Contents::default();
        for (path, e) in files {
            c.files += 1;
            c.bytes += e.size;
            let ext = extension(path);
            c.images += usize::from(IMAGE_EXTENSIONS.contains(&ext.as_str()));
            c.captions += usize::from(CAPTION_EXTENSIONS.contains(&ext.as_str()));
        }
        c
    }
}

/// Whether a file name is left out of datasets (hidden files, keys and
/// secrets), whichever way it arrives: a local folder or an upload.
pub fn excluded_name(name: &str) -> bool {
    name.starts_with('.') || SECRET_EXTENSIONS.contains(&extension(name).as_str())
}

/// Why `name` cannot name a dataset, if it cannot.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > MAX_NAME || !ok_chars || name.starts_with('.') {
        return Err(format!(
            "{name:?} is not a dataset name: use 1-{MAX_NAME} letters, digits, '-', '_' or '.', not starting with '.'"
        ));
    }
    Ok(())
}

/// Why a file path inside a dataset is refused, if it is.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.ends_with('/') {
        return Err("a dataset holds files, not folders".into());
    }
    if path.len() > 512 {
        return Err(format!("{path:?} is longer than 512 bytes"));
    }
    for segment in path.split('/') {
        if segment.is_empty() || segment == ".." {
            return Err(format!("{path:?} is not a relative file path"));
        }
        if segment.starts_with('.') {
            return Err(format!(
                "{path:?} is a hidden file; hidden files are not part of a dataset"
            ));
        }
    }
    if SECRET_EXTENSIONS.contains(&extension(path).as_str()) {
        return Err(format!(
            "{path:?} looks like a key or secret (.env .pem .key .crt .p12 .pfx); such files are never uploaded"
        ));
    }
    Ok(())
}

fn record_key(owner: &str, name: &str) -> String {
    format!("dataset:{owner}:{name}")
}

fn names_key(owner: &str) -> String {
    format!("datasets:u:{owner}")
}

/// The object-store bucket holding a dataset's files.
pub fn object_bucket(owner: &str, name: &str) -> String {
    format!("ds:{owner}:{name}")
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("you have no dataset named {name:?}")).with_detail("dataset", name)
}

/// One user's datasets.
pub struct DatasetStore<'a> {
    kv: &'a dyn KvStore,
    owner: &'a str,
}

impl<'a> DatasetStore<'a> {
    pub fn new(kv: &'a dyn KvStore, owner: &'a str) -> Self {
        DatasetStore { kv, owner }
    }

    pub fn objects(&self) -> ObjectStore<'a> {
        ObjectStore::new(self.kv, MAX_FILE_BYTES)
    }

    pub fn bucket(&self, name: &str) -> String {
        object_bucket(self.owner, name)
    }

    pub fn get(&self, name: &str) -> Result<Option<Dataset>, KvError> {
        get_json(self.kv, &record_key(self.owner, name))
    }

    /// The dataset, or a 404 naming it.
    pub fn require(&self, name: &str) -> Result<Dataset, ApiError> {
        self.get(name)?.ok_or_else(|| not_found(name))
    }

    /// Creates the dataset, unless this user has [`MAX_DATASETS`] already
    /// (`Ok(false)`): the names list is the count, so the limit holds under
    /// concurrent creates.
    fn create(
        &self,
        name: &str,
        state: State,
        expected: Option<usize>,
        now_ms: u64,
    ) -> Result<bool, KvError> {
        let record = Dataset {
            name: name.into(),
            owner: self.owner.into(),
            created_ms: now_ms,
            updated_ms: now_ms,
            state,
            expected_files: expected,
        };
        let bytes = serde_json::to_vec(&record).expect("dataset record");
        // Listed first: a listed name without a record is skipped, a record
        // without its name could never be listed or deleted.
        let key = names_key(self.owner);
        create_once(self.kv, &key, b"[]")?;
        let listed = update(self.kv, &key, |cur| {
            let mut names: Vec<String> = serde_json::from_slice(cur).unwrap_or_default();
            if !names.iter().any(|n| n == name) {
                if names.len() >= MAX_DATASETS {
                    return Err(());
                }
                names.push(name.to_string());
                names.sort();
            }
            Ok(serde_json::to_vec(&names).expect("names serialise"))
        });
        match listed {
            Ok(_) => {}
            Err(UpdateError::Rejected(())) => return Ok(false),
            Err(e) => return Err(e.into_kv(&key)),
        }
        create_once(self.kv, &record_key(self.owner, name), &bytes)?;
        Ok(true)
    }

    /// A 409 `too_many_datasets` (the API's form of [`MAX_DATASETS`]).
    pub fn too_many() -> ApiError {
        ApiError::new(
            409,
            "too_many_datasets",
            format!(
                "you have {MAX_DATASETS} datasets, the most one user may have; delete one you no longer need first"
            ),
        )
        .with_detail("max_datasets", MAX_DATASETS)
    }

    /// Changes the dataset's record by compare-and-swap (a concurrent write
    /// or completion is never lost); `None` when there is no such dataset.
    fn edit(&self, name: &str, f: impl Fn(&mut Dataset)) -> Result<Option<Dataset>, KvError> {
        let key = record_key(self.owner, name);
        let edited = update::<()>(self.kv, &key, |cur| {
            let mut d: Dataset = serde_json::from_slice(cur).map_err(|_| ())?;
            f(&mut d);
            Ok(serde_json::to_vec(&d).expect("dataset record"))
        });
        match edited {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(UpdateError::Missing) => Ok(None),
            Err(UpdateError::Store(e)) => Err(e),
            Err(e) => Err(e.into_kv(&key)),
        }
    }

    /// The dataset a write to `name` goes into, created (ready) on first use:
    /// the S3 path, where the first `PutObject` makes the dataset. `None`
    /// when it does not exist and this user has [`MAX_DATASETS`] already.
    pub fn ensure(&self, name: &str, now_ms: u64) -> Result<Option<Dataset>, KvError> {
        if let Some(d) = self.get(name)? {
            return Ok(Some(d));
        }
        if !self.create(name, State::Ready, None, now_ms)? {
            return Ok(None);
        }
        self.get(name)?
            .map(Some)
            .ok_or_else(|| KvError::new("dataset record vanished"))
    }

    /// A browser upload of `files` files starts: a new dataset in state
    /// `uploading`, or the same unfinished one again (resuming). A ready
    /// dataset of that name is a conflict.
    pub fn begin_upload(
        &self,
        name: &str,
        files: usize,
        limits: &Limits,
        now_ms: u64,
    ) -> Result<Dataset, ApiError> {
        check_name(name).map_err(|m| ApiError::bad_request(m).with_detail("dataset", name))?;
        if files == 0 {
            return Err(ApiError::bad_request(
                "a dataset upload needs at least one file",
            ));
        }
        if files > limits.max_files {
            return Err(ApiError::new(
                413,
                "too_many_files",
                format!(
                    "{files} files is more than a dataset may hold ({})",
                    limits.max_files
                ),
            )
            .with_detail("max_files", limits.max_files));
        }
        match self.get(name)? {
            Some(d) if d.state == State::Ready => Err(ApiError::new(
                409,
                "dataset_exists",
                format!("you already have a dataset named {name:?}; delete it first or pick another name"),
            )
            .with_detail("dataset", name)),
            Some(_) => self
                .edit(name, |d| {
                    d.expected_files = Some(files);
                    d.updated_ms = now_ms;
                })?
                .ok_or_else(|| not_found(name)),
            None => {
                if !self.create(name, State::Uploading, Some(files), now_ms)? {
                    return Err(Self::too_many());
                }
                self.require(name)
            }
        }
    }

    /// Ends a browser upload: ready once every announced file is stored.
    pub fn complete(&self, name: &str, now_ms: u64) -> Result<Dataset, ApiError> {
        let d = self.require(name)?;
        let have = self.contents(name)?.files;
        if let Some(want) = d.expected_files.filter(|w| have < *w) {
            return Err(ApiError::new(
                409,
                "upload_incomplete",
                format!("{have} of {want} files of {name:?} are uploaded; upload the rest, then complete it"),
            )
            .with_detail("files_uploaded", have)
            .with_detail("files_expected", want));
        }
        // By CAS: a write touching the record meanwhile must not undo this
        // (nor this resurrect a dataset deleted meanwhile).
        self.edit(name, |d| {
            d.state = State::Ready;
            d.updated_ms = now_ms;
        })?
        .ok_or_else(|| not_found(name))
    }

    /// Marks a write (best effort: the record is a summary, the files are the
    /// truth). By CAS, so it never undoes a completion racing it, and never
    /// writes back a record deleted meanwhile.
    pub fn touch(&self, name: &str, now_ms: u64) {
        let _ = self.edit(name, |d| d.updated_ms = d.updated_ms.max(now_ms));
    }

    pub fn names(&self) -> Result<Vec<String>, KvError> {
        Ok(get_json::<Vec<String>>(self.kv, &names_key(self.owner))?.unwrap_or_default())
    }

    pub fn list(&self) -> Result<Vec<Dataset>, KvError> {
        let mut out = Vec::new();
        for n in self.names()? {
            if let Some(d) = self.get(&n)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The files of a dataset in path order: (path, size/etag/time).
    pub fn files(&self, name: &str) -> Result<Vec<(String, IndexEntry)>, KvError> {
        Ok(self
            .objects()
            .list(&self.bucket(name), "", None, usize::MAX)?
            .0)
    }

    pub fn contents(&self, name: &str) -> Result<Contents, KvError> {
        let files = self.files(name)?;
        Ok(Contents::count(files.iter().map(|(k, e)| (k, e))))
    }

    /// Bytes all of this user's datasets hold.
    pub fn usage(&self) -> Result<u64, KvError> {
        let mut total = 0;
        for n in self.names()? {
            total += self.contents(&n)?.bytes;
        }
        Ok(total)
    }

    /// Deletes a dataset with every file and unfinished upload in it.
    pub fn delete(&self, name: &str) -> Result<Dataset, ApiError> {
        let d = self.require(name)?;
        self.objects().drop_bucket(&self.bucket(name))?;
        // Its uploads went with the bucket: they hold no quota any more (0:
        // no time-based pruning needed here).
        self.forget_dataset(name, 0).map_err(|e| match e {
            QuotaError::Kv(e) => e,
            other => KvError::new(format!("{other:?}")),
        })?;
        delete_created(self.kv, &record_key(self.owner, name))?;
        edit_json::<Vec<String>>(self.kv, &names_key(self.owner), |names| {
            names.retain(|n| n != name)
        })?;
        Ok(d)
    }

    /// The API view of a dataset.
    pub fn view(&self, d: &Dataset) -> Result<Value, KvError> {
        let c = self.contents(&d.name)?;
        Ok(json!({
            "name": d.name,
            "reference": format!("{REFERENCE_SCHEME}{}", d.name),
            "state": d.state,
            "file_count": c.files,
            "bytes": c.bytes,
            "image_files": c.images,
            "caption_files": c.captions,
            "expected_files": d.expected_files,
            "created_at": rfc3339(d.created_ms),
            "updated_at": rfc3339(d.updated_ms),
        }))
    }
}

#[cfg(test)]
mod tests;
