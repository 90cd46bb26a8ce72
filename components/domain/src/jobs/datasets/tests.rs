//! Packaging local folders and uploaded datasets.
use super::*;
use crate::kernel::kv::MemoryKv;
use std::io::Read;

fn src<'a>(kv: &'a MemoryKv, root: &'a Path) -> Sources<'a> {
    Sources::new(root, kv, "alice")
}

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
    let kv = MemoryKv::default();
    let root = tree();
    let dl = json!([{"id": "cats", "instance_data_dir": "/datasets/cats"}]);
    let p = preview(&src(&kv, root.path()), &dl).unwrap();
    let a = package(&src(&kv, root.path()), &dl).unwrap().unwrap();
    assert_eq!(p["files"], 3);
    assert_eq!(p["bytes"], a.datasets[0].bytes);
    assert_eq!(p["skipped"], a.skipped);
    assert_eq!(
        preview(&src(&kv, root.path()), &json!([])).unwrap()["files"],
        0
    );
    let missing = json!([{"id": "dogs", "instance_data_dir": "/datasets/dogs"}]);
    assert!(
        preview(&src(&kv, root.path()), &missing)
            .unwrap_err()
            .message
            .contains("dogs")
    );
}

#[test]
fn zips_local_datasets_without_hidden_secret_or_linked_files() {
    let kv = MemoryKv::default();
    let root = tree();
    for dir in ["/datasets/cats", "datasets/cats", "cats"] {
        let dl = json!([{"id": "cats", "type": "local", "instance_data_dir": dir},
                        {"id": "remote", "instance_data_dir": "https://example.com/x.zip"}]);
        let a = package(&src(&kv, root.path()), &dl).unwrap().unwrap();
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
    let kv = MemoryKv::default();
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
        let err = package(&src(&kv, root.path()), &dl).err().expect(dir);
        assert_eq!(err.status, 400, "{dir}");
        assert!(
            err.message.contains("\"ds1\"") && err.message.contains(why),
            "{dir}: {}",
            err.message
        );
    }
    assert!(
        package(
            &src(&kv, root.path()),
            &json!([{"id": "r", "type": "huggingface"}])
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn the_limit_applies_to_the_compressed_archive() {
    let kv = MemoryKv::default();
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("big");
    std::fs::create_dir(&d).unwrap();
    // 120 MiB of zeros compresses to well under 1 MiB: accepted.
    std::fs::write(d.join("zeros.bin"), vec![0u8; 120 * 1024 * 1024]).unwrap();
    let a = package(
        &src(&kv, root.path()),
        &json!([{"id": "big", "instance_data_dir": "big"}]),
    )
    .unwrap()
    .unwrap();
    assert!(a.bytes.len() < MAX_ARCHIVE_BYTES);
}

#[test]
fn uploaded_datasets_zip_like_folders_and_unfinished_ones_are_refused() {
    let kv = MemoryKv::default();
    let root = tempfile::tempdir().unwrap();
    let sources = src(&kv, root.path());
    let store = &sources.uploaded;
    store.ensure("cats", 1).unwrap();
    let bucket = store.bucket("cats");
    for (path, bytes) in [
        ("1.png", &b"png"[..]),
        ("1.txt", b"a cat"),
        ("sub/2.jpg", b"jpg"),
    ] {
        store
            .objects()
            .put(&bucket, path, bytes, "x", serde_json::Map::new(), 1)
            .unwrap();
    }
    let dl = json!([{"id": "cats", "instance_data_dir": "dataset://cats"}]);
    let a = package(&sources, &dl).unwrap().unwrap();
    assert_eq!(names(&a), ["cats/1.png", "cats/1.txt", "cats/sub/2.jpg"]);
    assert_eq!((a.datasets[0].files, a.datasets[0].bytes), (3, 11));
    assert_eq!(preview(&sources, &dl).unwrap()["files"], 3);
    // Another user's sources do not see alice's dataset.
    let bob = Sources::new(root.path(), &kv, "bob");
    let e = package(&bob, &dl).err().unwrap();
    assert!(
        e.message.contains("no uploaded dataset named \"cats\""),
        "{}",
        e.message
    );
    let limits = crate::storage::datasets::Limits::from_variables(None, None);
    store.begin_upload("dogs", 2, &limits, 1).unwrap();
    let dl = json!([{"id": "d", "instance_data_dir": "dataset://dogs"}]);
    let e = package(&sources, &dl).err().unwrap();
    assert!(e.message.contains("has not finished"), "{}", e.message);
}

#[test]
fn datasets_too_large_before_compression_are_refused_before_any_read() {
    let kv = MemoryKv::default();
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("huge");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("a.txt"), b"a caption").unwrap();
    // A sparse file: its size says 401 MiB, reading it would take that long.
    let f = std::fs::File::create(d.join("b.bin")).unwrap();
    f.set_len(MAX_INPUT_BYTES + 1).unwrap();
    let dl = json!([{"id": "huge", "instance_data_dir": "huge"}]);
    let started = std::time::Instant::now();
    let e = package(&src(&kv, root.path()), &dl).err().unwrap();
    assert_eq!(
        (e.status, e.code),
        (413, "dataset_too_large"),
        "{}",
        e.message
    );
    assert!(e.message.contains("400 MiB"), "{}", e.message);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "refused from the file's size, not after reading it"
    );
    let e = preview(&src(&kv, root.path()), &dl).err().unwrap();
    assert_eq!(e.code, "dataset_too_large");
}

#[test]
fn files_are_zipped_piece_by_piece_whatever_their_size() {
    let kv = MemoryKv::default();
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("d");
    std::fs::create_dir(&d).unwrap();
    // Over two pieces, and not a multiple of one.
    let body: Vec<u8> = (0..(CHUNK_BYTES * 2 + 12_345))
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(d.join("x.bin"), &body).unwrap();
    let a = package(
        &src(&kv, root.path()),
        &json!([{"id": "d", "instance_data_dir": "d"}]),
    )
    .unwrap()
    .unwrap();
    let mut z = zip::ZipArchive::new(Cursor::new(a.bytes.clone())).unwrap();
    let mut out = Vec::new();
    z.by_name("d/x.bin").unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(out, body);
}
