//! Local datasets: find the dataloader entries that point at local folders or
//! at datasets uploaded to this server (`dataset://<name>`, the submitter's
//! own), and zip them for Replicate's Files API.
//!
//! The submit component sees the user's datasets through a read-only mount
//! (`files` in spin.toml: `./datasets` → `/datasets`). `instance_data_dir` may
//! be `/datasets/x`, `datasets/x` or `x`; anything else, any `..`, and any path
//! that does not exist is refused with the dataset's id. Inside, symlinks,
//! hidden files and key/secret files (`.env .pem .key .crt .p12 .pfx`) are
//! left out. The archive (paths `<dataset dir name>/<relative path>`) must
//! stay within Replicate's 100 MiB per-file limit *after* compression.

use std::io::{Cursor, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use crate::kernel::error::ApiError;
use crate::kernel::kv::KvStore;
use crate::storage::datasets::{DatasetStore, REFERENCE_SCHEME, State, excluded_name};

pub const GUEST_MOUNT: &str = "/datasets";
pub const MAX_ARCHIVE_BYTES: usize = 100 * 1024 * 1024;
/// The most the datasets may hold before compression, checked from each
/// file's size before it is read: room for captions and other text that
/// compresses, while images (which do not) meet the archive limit first.
const MAX_INPUT_BYTES: u64 = 4 * MAX_ARCHIVE_BYTES as u64;
/// Files are read and zipped this much at a time, and the archive's size is
/// checked after each piece: zipping stops as soon as it passes the limit,
/// so memory holds at most the archive and one piece.
const CHUNK_BYTES: u64 = 1024 * 1024;

/// Why zipping stopped: a dataset the caller got wrong (400), or datasets
/// too large to upload (413).
enum ZipError {
    Bad(String),
    TooLarge(String),
}

impl From<String> for ZipError {
    fn from(m: String) -> Self {
        ZipError::Bad(m)
    }
}

fn too_large(message: String) -> ApiError {
    ApiError::new(413, "dataset_too_large", message)
}

fn archive_too_large() -> ZipError {
    ZipError::TooLarge(
        "the compressed datasets are over Replicate's 100 MiB upload limit; \
         host them yourself and pass https URLs"
            .into(),
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalDataset {
    pub id: String,
    pub dir: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSummary {
    pub id: String,
    pub dir: String,
    pub files: usize,
    pub bytes: u64,
}

pub struct Archive {
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub datasets: Vec<DatasetSummary>,
    pub skipped: usize,
}

impl Archive {
    pub fn summary(&self) -> Value {
        json!({
            "archive_bytes": self.bytes.len(),
            "files": self.datasets.iter().map(|d| d.files).sum::<usize>(),
            "skipped": self.skipped,
            "datasets": self.datasets.iter().map(|d| json!({
                "id": d.id, "instance_data_dir": d.dir, "file_count": d.files, "bytes": d.bytes,
            })).collect::<Vec<_>>(),
        })
    }
}

fn bad(id: &str, dir: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        400,
        "invalid_dataset",
        format!("dataset {id:?} ({dir}): {why}"),
    )
    .with_detail("dataset_id", id)
    .with_detail("instance_data_dir", dir)
}

/// Dataloader entries with `type` absent, `""` or `"local"` and an
/// `instance_data_dir` (SimpleTuner's rule). URLs pass through untouched.
pub fn local_datasets(dataloader: &Value) -> Vec<LocalDataset> {
    dataloader
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            matches!(
                d.get("type").and_then(Value::as_str),
                None | Some("") | Some("local")
            )
        })
        .filter_map(|d| {
            let dir = d.get("instance_data_dir")?.as_str()?;
            if dir.starts_with("https://") || dir.starts_with("http://") {
                return None;
            }
            Some(LocalDataset {
                id: d
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("(no id)")
                    .to_string(),
                dir: dir.to_string(),
            })
        })
        .collect()
}

/// Where `dir` lives under the mount, or why it may not be used.
fn resolve(root: &Path, ds: &LocalDataset) -> Result<PathBuf, ApiError> {
    let dir = ds.dir.trim();
    let rel = dir
        .strip_prefix(GUEST_MOUNT)
        .map(|r| r.trim_start_matches('/'))
        .or_else(|| dir.strip_prefix("./datasets/"))
        .or_else(|| dir.strip_prefix("datasets/"))
        .unwrap_or(dir);
    if rel.starts_with('/') || rel.starts_with('~') {
        return Err(bad(
            &ds.id,
            &ds.dir,
            format!(
                "only folders under ./datasets (mounted at {GUEST_MOUNT}) can be uploaded; \
                 move or link the dataset there and use {GUEST_MOUNT}/<name>"
            ),
        ));
    }
    let rel = Path::new(rel);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad(&ds.id, &ds.dir, "path must not contain '..'"));
    }
    let path = root.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => Ok(path),
        Ok(m) if m.file_type().is_symlink() => Err(bad(&ds.id, &ds.dir, "is a symbolic link")),
        Ok(_) => Err(bad(&ds.id, &ds.dir, "is not a folder")),
        Err(e) => Err(bad(&ds.id, &ds.dir, format!("cannot be read: {e}"))),
    }
}

/// Walks dataset folders; with a writer it zips, without one it only counts
/// (the pre-submit preview).
struct Zipper {
    zip: Option<zip::ZipWriter<Cursor<Vec<u8>>>>,
    input: u64,
    skipped: usize,
}

impl Zipper {
    fn add_dir(
        &mut self,
        dir: &Path,
        archive_prefix: &str,
        summary: &mut DatasetSummary,
    ) -> Result<(), ZipError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if meta.file_type().is_symlink() || excluded_name(&name) {
                self.skipped += 1;
                continue;
            }
            let archive_path = format!("{archive_prefix}/{name}");
            if meta.is_dir() {
                self.add_dir(&path, &archive_path, summary)?;
            } else if meta.is_file() {
                let mut file = None;
                self.add_file(&archive_path, meta.len(), summary, |_, len| {
                    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
                    let f = match &mut file {
                        Some(f) => f,
                        None => file.insert(std::fs::File::open(&path).map_err(cannot)?),
                    };
                    let mut piece = Vec::with_capacity(len as usize);
                    f.take(len).read_to_end(&mut piece).map_err(cannot)?;
                    Ok(piece)
                })?;
            }
        }
        Ok(())
    }

    /// Adds one file of `size` bytes. Its size counts before anything is
    /// read; when zipping, `read(offset, len)` gives it piece by piece (read
    /// only then, and never past `size`).
    fn add_file(
        &mut self,
        archive_path: &str,
        size: u64,
        summary: &mut DatasetSummary,
        mut read: impl FnMut(u64, u64) -> Result<Vec<u8>, String>,
    ) -> Result<(), ZipError> {
        let input = self.input.saturating_add(size);
        if input > MAX_INPUT_BYTES {
            return Err(ZipError::TooLarge(format!(
                "the datasets hold more than {} MiB before compression; \
                 host them yourself and pass https URLs",
                MAX_INPUT_BYTES / 1_048_576
            )));
        }
        self.input = input;
        if let Some(zip) = self.zip.as_mut() {
            let options =
                SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            zip.start_file(archive_path, options)
                .map_err(|e| format!("zip: {e}"))?;
            let mut offset = 0;
            while offset < size {
                let piece = read(offset, CHUNK_BYTES.min(size - offset))?;
                if piece.is_empty() {
                    break; // the file shrank since it was measured
                }
                zip.write_all(&piece).map_err(|e| format!("zip: {e}"))?;
                offset += piece.len() as u64;
                if zip.get_ref().map_or(0, |c| c.get_ref().len()) > MAX_ARCHIVE_BYTES {
                    return Err(archive_too_large());
                }
            }
        }
        summary.files += 1;
        summary.bytes += size;
        Ok(())
    }

    /// Adds an uploaded dataset's files, under `<name>/`.
    fn add_uploaded(
        &mut self,
        store: &DatasetStore,
        name: &str,
        summary: &mut DatasetSummary,
    ) -> Result<(), ZipError> {
        let objects = store.objects();
        let bucket = store.bucket(name);
        let files = store.files(name).map_err(|e| e.to_string())?;
        for (path, entry) in files {
            if path.split('/').any(excluded_name) {
                self.skipped += 1;
                continue;
            }
            let mut manifest = None;
            self.add_file(
                &format!("{name}/{path}"),
                entry.size,
                summary,
                |offset, len| {
                    let m = match &manifest {
                        Some(m) => m,
                        None => manifest.insert(
                            objects
                                .head(&bucket, &path)
                                .map_err(|e| e.to_string())?
                                .ok_or_else(|| format!("{path} was deleted while packaging"))?,
                        ),
                    };
                    let end = offset.saturating_add(len).min(m.size);
                    objects.read(m, offset, end).map_err(|e| e.to_string())
                },
            )?;
        }
        Ok(())
    }
}

/// Where datasets come from: the read-only folder mount (`spin up` users) and
/// the submitter's uploaded datasets (`dataset://<name>`).
pub struct Sources<'a> {
    pub root: &'a Path,
    pub uploaded: DatasetStore<'a>,
}

impl<'a> Sources<'a> {
    pub fn new(root: &'a Path, kv: &'a dyn KvStore, owner: &'a str) -> Self {
        Sources {
            root,
            uploaded: DatasetStore::new(kv, owner),
        }
    }
}

/// The uploaded dataset `ds` names, ready to package, or why it cannot be.
fn uploaded<'n>(
    store: &DatasetStore,
    ds: &'n LocalDataset,
    name: &'n str,
) -> Result<&'n str, ApiError> {
    match store.get(name)? {
        None => Err(bad(
            &ds.id,
            &ds.dir,
            format!(
                "you have no uploaded dataset named {name:?}; upload it first (Train in Cloud → Dataloader, or aws s3 sync ./{name} s3://datasets/{name})"
            ),
        )),
        Some(d) if d.state == State::Uploading => Err(bad(
            &ds.id,
            &ds.dir,
            "its upload has not finished; resume it in Train in Cloud → Dataloader, then it is ready",
        )),
        Some(_) => Ok(name),
    }
}

/// Zips every local dataset found in `dataloader` from under `root` (the
/// mount). `Ok(None)` when there are none.
pub fn package(sources: &Sources, dataloader: &Value) -> Result<Option<Archive>, ApiError> {
    let mut zipper = Zipper {
        zip: Some(zip::ZipWriter::new(Cursor::new(Vec::new()))),
        input: 0,
        skipped: 0,
    };
    let Some(summaries) = walk(sources, dataloader, &mut zipper)? else {
        return Ok(None);
    };
    let skipped = zipper.skipped;
    let bytes = zipper
        .zip
        .take()
        .expect("zipping")
        .finish()
        .map_err(|e| ApiError::new(500, "archive_failed", format!("zip: {e}")))?
        .into_inner();
    if bytes.len() > MAX_ARCHIVE_BYTES {
        return Err(too_large(format!(
            "the compressed datasets are {:.1} MiB, over Replicate's 100 MiB upload limit; \
                 host them yourself and pass https URLs",
            bytes.len() as f64 / 1_048_576.0
        )));
    }
    Ok(Some(Archive {
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes,
        datasets: summaries,
        skipped,
    }))
}

/// What a submit would upload (datasets, file counts, bytes before
/// compression), without reading or zipping the files; the same refusals as
/// [`package`] for missing, escaping or empty folders.
pub fn preview(sources: &Sources, dataloader: &Value) -> Result<Value, ApiError> {
    let mut counter = Zipper {
        zip: None,
        input: 0,
        skipped: 0,
    };
    let summaries = walk(sources, dataloader, &mut counter)?.unwrap_or_default();
    Ok(json!({
        "files": summaries.iter().map(|d| d.files).sum::<usize>(),
        "bytes": summaries.iter().map(|d| d.bytes).sum::<u64>(),
        "skipped": counter.skipped,
        "datasets": summaries.iter().map(|d| json!({
            "id": d.id, "instance_data_dir": d.dir, "file_count": d.files, "bytes": d.bytes,
        })).collect::<Vec<_>>(),
    }))
}

/// Walks every local dataset of `dataloader`; `None` when there are none.
fn walk(
    sources: &Sources,
    dataloader: &Value,
    zipper: &mut Zipper,
) -> Result<Option<Vec<DatasetSummary>>, ApiError> {
    let locals = local_datasets(dataloader);
    if locals.is_empty() {
        return Ok(None);
    }
    let mut summaries = Vec::new();
    for ds in &locals {
        let mut summary = DatasetSummary {
            id: ds.id.clone(),
            dir: ds.dir.clone(),
            files: 0,
            bytes: 0,
        };
        let added = match ds.dir.trim().strip_prefix(REFERENCE_SCHEME) {
            Some(name) => {
                let name = uploaded(&sources.uploaded, ds, name)?;
                zipper.add_uploaded(&sources.uploaded, name, &mut summary)
            }
            None => {
                let path = resolve(sources.root, ds)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| ds.id.clone());
                zipper.add_dir(&path, &name, &mut summary)
            }
        };
        added.map_err(|e| match e {
            ZipError::Bad(m) => bad(&ds.id, &ds.dir, m),
            ZipError::TooLarge(m) => too_large(m).with_detail("dataset_id", ds.id.as_str()),
        })?;
        if summary.files == 0 {
            return Err(bad(
                &ds.id,
                &ds.dir,
                "contains no files that can be uploaded",
            ));
        }
        summaries.push(summary);
    }
    Ok(Some(summaries))
}

#[cfg(test)]
mod tests;
