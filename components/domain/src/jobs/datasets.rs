//! Local datasets: find the dataloader entries that point at local folders,
//! and zip them for Replicate's Files API.
//!
//! The submit component sees the user's datasets through a read-only mount
//! (`files` in spin.toml: `./datasets` → `/datasets`). `instance_data_dir` may
//! be `/datasets/x`, `datasets/x` or `x`; anything else, any `..`, and any path
//! that does not exist is refused with the dataset's id. Inside, symlinks,
//! hidden files and key/secret files (`.env .pem .key .crt .p12 .pfx`) are
//! left out. The archive (paths `<dataset dir name>/<relative path>`) must
//! stay within Replicate's 100 MiB per-file limit *after* compression.

use std::io::{Cursor, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use crate::kernel::error::ApiError;

pub const GUEST_MOUNT: &str = "/datasets";
pub const MAX_ARCHIVE_BYTES: usize = 100 * 1024 * 1024;
/// Stop reading long before memory becomes a problem.
const MAX_INPUT_BYTES: u64 = 1024 * 1024 * 1024;
const SECRET_EXTENSIONS: [&str; 6] = ["env", "pem", "key", "crt", "p12", "pfx"];

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

fn skip_name(name: &str) -> bool {
    name.starts_with('.')
        || Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SECRET_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
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
    ) -> Result<(), String> {
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
            if meta.file_type().is_symlink() || skip_name(&name) {
                self.skipped += 1;
                continue;
            }
            let archive_path = format!("{archive_prefix}/{name}");
            if meta.is_dir() {
                self.add_dir(&path, &archive_path, summary)?;
            } else if meta.is_file() {
                self.input += meta.len();
                if self.input > MAX_INPUT_BYTES {
                    return Err("datasets exceed 1 GiB; upload them to your own storage and pass https URLs".into());
                }
                if let Some(zip) = self.zip.as_mut() {
                    let bytes = std::fs::read(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    let options = SimpleFileOptions::default()
                        .compression_method(zip::CompressionMethod::Deflated);
                    zip.start_file(archive_path.as_str(), options)
                        .and_then(|()| zip.write_all(&bytes).map_err(Into::into))
                        .map_err(|e| format!("zip: {e}"))?;
                }
                summary.files += 1;
                summary.bytes += meta.len();
            }
        }
        Ok(())
    }
}

/// Zips every local dataset found in `dataloader` from under `root` (the
/// mount). `Ok(None)` when there are none.
pub fn package(root: &Path, dataloader: &Value) -> Result<Option<Archive>, ApiError> {
    let mut zipper = Zipper {
        zip: Some(zip::ZipWriter::new(Cursor::new(Vec::new()))),
        input: 0,
        skipped: 0,
    };
    let Some(summaries) = walk(root, dataloader, &mut zipper)? else {
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
        return Err(ApiError::new(
            413,
            "dataset_too_large",
            format!(
                "the compressed datasets are {:.1} MiB, over Replicate's 100 MiB upload limit; \
                 host them yourself and pass https URLs",
                bytes.len() as f64 / 1_048_576.0
            ),
        ));
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
pub fn preview(root: &Path, dataloader: &Value) -> Result<Value, ApiError> {
    let mut counter = Zipper {
        zip: None,
        input: 0,
        skipped: 0,
    };
    let summaries = walk(root, dataloader, &mut counter)?.unwrap_or_default();
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
    root: &Path,
    dataloader: &Value,
    zipper: &mut Zipper,
) -> Result<Option<Vec<DatasetSummary>>, ApiError> {
    let locals = local_datasets(dataloader);
    if locals.is_empty() {
        return Ok(None);
    }
    let mut summaries = Vec::new();
    for ds in &locals {
        let path = resolve(root, ds)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ds.id.clone());
        let mut summary = DatasetSummary {
            id: ds.id.clone(),
            dir: ds.dir.clone(),
            files: 0,
            bytes: 0,
        };
        zipper
            .add_dir(&path, &name, &mut summary)
            .map_err(|e| bad(&ds.id, &ds.dir, e))?;
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
mod tests {
    use super::*;
    use std::io::Read;

    fn tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("cats");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("1.png"), b"png-bytes").unwrap();
        std::fs::write(d.join("1.txt"), b"a cat").unwrap();
        std::fs::write(d.join("sub/2.jpg"), b"jpg").unwrap();
        std::fs::write(d.join(".hidden"), b"x").unwrap();
        std::fs::write(d.join("creds.pem"), b"secret").unwrap();
        std::fs::write(root.path().join("outside.txt"), b"do not ship").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.path().join("outside.txt"), d.join("link.txt")).unwrap();
        root
    }

    fn names(archive: &Archive) -> Vec<String> {
        let mut z = zip::ZipArchive::new(Cursor::new(archive.bytes.clone())).unwrap();
        (0..z.len())
            .map(|i| z.by_index(i).unwrap().name().unwrap().to_string())
            .collect()
    }

    #[test]
    fn preview_counts_what_package_would_upload() {
        let root = tree();
        let dl = json!([{"id": "cats", "instance_data_dir": "/datasets/cats"}]);
        let p = preview(root.path(), &dl).unwrap();
        let a = package(root.path(), &dl).unwrap().unwrap();
        assert_eq!(p["files"], 3);
        assert_eq!(p["bytes"], a.datasets[0].bytes);
        assert_eq!(p["skipped"], a.skipped);
        assert_eq!(preview(root.path(), &json!([])).unwrap()["files"], 0);
        let missing = json!([{"id": "dogs", "instance_data_dir": "/datasets/dogs"}]);
        assert!(
            preview(root.path(), &missing)
                .unwrap_err()
                .message
                .contains("dogs")
        );
    }

    #[test]
    fn zips_local_datasets_without_hidden_secret_or_linked_files() {
        let root = tree();
        for dir in ["/datasets/cats", "datasets/cats", "cats"] {
            let dl = json!([{"id": "cats", "type": "local", "instance_data_dir": dir},
                            {"id": "remote", "instance_data_dir": "https://example.com/x.zip"}]);
            let a = package(root.path(), &dl).unwrap().unwrap();
            assert_eq!(
                names(&a),
                ["cats/1.png", "cats/1.txt", "cats/sub/2.jpg"],
                "{dir}"
            );
            assert_eq!(a.datasets[0].files, 3);
            assert!(a.skipped >= 2);
            let mut z = zip::ZipArchive::new(Cursor::new(a.bytes.clone())).unwrap();
            let mut s = String::new();
            z.by_name("cats/1.txt")
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            assert_eq!(s, "a cat");
            assert_eq!(a.sha256, hex::encode(Sha256::digest(&a.bytes)));
        }
    }

    #[test]
    fn refuses_escapes_missing_and_empty_datasets_naming_them() {
        let root = tree();
        std::fs::create_dir(root.path().join("empty")).unwrap();
        for (dir, why) in [
            ("/home/me/cats", "only folders under ./datasets"),
            ("cats/../..", "'..'"),
            ("/datasets/../etc", "'..'"),
            ("dogs", "cannot be read"),
            ("outside.txt", "not a folder"),
            ("empty", "no files"),
        ] {
            let dl = json!([{"id": "ds1", "instance_data_dir": dir}]);
            let err = package(root.path(), &dl).err().expect(dir);
            assert_eq!(err.status, 400, "{dir}");
            assert!(
                err.message.contains("\"ds1\"") && err.message.contains(why),
                "{dir}: {}",
                err.message
            );
        }
        assert!(
            package(root.path(), &json!([{"id": "r", "type": "huggingface"}]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_limit_applies_to_the_compressed_archive() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("big");
        std::fs::create_dir(&d).unwrap();
        // 120 MiB of zeros compresses to well under 1 MiB: accepted.
        std::fs::write(d.join("zeros.bin"), vec![0u8; 120 * 1024 * 1024]).unwrap();
        let a = package(
            root.path(),
            &json!([{"id": "big", "instance_data_dir": "big"}]),
        )
        .unwrap()
        .unwrap();
        assert!(a.bytes.len() < MAX_ARCHIVE_BYTES);
    }
}
