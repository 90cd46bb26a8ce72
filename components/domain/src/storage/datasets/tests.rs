use super::*;
use crate::kernel::kv::MemoryKv;
use serde_json::Map;

const LIMITS: Limits = Limits {
    quota_bytes: 1 << 20,
    max_files: 3,
};

#[test]
fn names_and_paths_are_checked_in_words() {
    assert!(check_name("cats-2024_v1.0").is_ok());
    for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
        assert!(check_name(bad).unwrap_err().contains("not a dataset name"));
    }
    assert!(check_path("sub/1.png").is_ok());
    assert!(check_path(".DS_Store").unwrap_err().contains("hidden"));
    assert!(check_path("a/.git/x").unwrap_err().contains("hidden"));
    assert!(check_path("creds.PEM").unwrap_err().contains("secret"));
    assert!(check_path("a//b").unwrap_err().contains("relative"));
    assert!(check_path("dir/").unwrap_err().contains("folders"));
    assert!(excluded_name(".env") && excluded_name("x.key") && !excluded_name("x.txt"));
}

#[test]
fn a_browser_upload_is_uploading_until_every_file_is_there() {
    let kv = MemoryKv::default();
    let ds = DatasetStore::new(&kv, "alice");
    let d = ds.begin_upload("cats", 2, &LIMITS, 1).unwrap();
    assert_eq!(d.state, State::Uploading);
    let bucket = ds.bucket("cats");
    ds.objects()
        .put(&bucket, "1.png", b"png", "image/png", Map::new(), 2)
        .unwrap();
    let e = ds.complete("cats", 3).unwrap_err();
    assert_eq!((e.status, e.code), (409, "upload_incomplete"));
    assert!(e.message.contains("1 of 2"), "{}", e.message);
    // Resuming is the same dataset; the second file arrives; complete.
    assert_eq!(
        ds.begin_upload("cats", 2, &LIMITS, 4).unwrap().created_ms,
        1
    );
    ds.objects()
        .put(&bucket, "1.txt", b"a cat", "text/plain", Map::new(), 5)
        .unwrap();
    assert_eq!(ds.complete("cats", 6).unwrap().state, State::Ready);
    let view = ds.view(&ds.require("cats").unwrap()).unwrap();
    assert_eq!(
        (
            view["file_count"].clone(),
            view["bytes"].clone(),
            view["caption_files"].clone(),
            view["image_files"].clone()
        ),
        (json!(2), json!(8), json!(1), json!(1))
    );
    assert_eq!(
        ds.begin_upload("cats", 1, &LIMITS, 7).unwrap_err().code,
        "dataset_exists"
    );
    assert_eq!(
        ds.begin_upload("dogs", 4, &LIMITS, 7).unwrap_err().status,
        413
    );
    assert_eq!(ds.usage().unwrap(), 8);
}

/// A write's `touch` read the record, a completion landed, and the touch
/// wrote the old record back: the dataset was `uploading` for good.
#[test]
fn a_touch_racing_a_completion_never_undoes_it() {
    let kv = crate::storage::racing::Racing::default();
    let ds = DatasetStore::new(&kv, "alice");
    ds.begin_upload("cats", 1, &LIMITS, 1).unwrap();
    kv.after_read("dataset:alice:cats", |inner| {
        let key = record_key("alice", "cats");
        let mut d: Dataset = get_json(inner, &key).unwrap().unwrap();
        d.state = State::Ready;
        crate::kernel::kv::set_json(inner, &key, &d).unwrap();
    });
    ds.touch("cats", 9);
    let d = ds.require("cats").unwrap();
    assert_eq!((d.state, d.updated_ms), (State::Ready, 9));
}

/// A completion racing the dataset's deletion wrote the record back: a
/// dataset without files or name, that nothing lists or deletes.
#[test]
fn a_completion_racing_a_deletion_does_not_bring_it_back() {
    let kv = crate::storage::racing::Racing::default();
    let ds = DatasetStore::new(&kv, "alice");
    ds.begin_upload("cats", 1, &LIMITS, 1).unwrap();
    ds.objects()
        .put(
            &ds.bucket("cats"),
            "1.png",
            b"x",
            "image/png",
            Map::new(),
            2,
        )
        .unwrap();
    // Deleted right after the completion counted the files.
    kv.after_read("s3idx:ds:alice:cats", |inner| {
        DatasetStore::new(inner, "alice").delete("cats").unwrap();
    });
    assert_eq!(ds.complete("cats", 3).unwrap_err().status, 404);
    assert!(ds.get("cats").unwrap().is_none());
}

#[test]
fn a_user_may_have_so_many_datasets_and_no_more() {
    let kv = MemoryKv::default();
    let ds = DatasetStore::new(&kv, "alice");
    for i in 0..MAX_DATASETS {
        assert!(ds.ensure(&format!("d{i}"), 1).unwrap().is_some());
    }
    assert!(ds.ensure("one-more", 1).unwrap().is_none());
    let e = ds.begin_upload("one-more", 1, &LIMITS, 1).unwrap_err();
    assert_eq!((e.status, e.code), (409, "too_many_datasets"));
    // An existing one is still reachable; deleting one makes room.
    assert!(ds.ensure("d0", 2).unwrap().is_some());
    ds.delete("d1").unwrap();
    assert!(ds.begin_upload("one-more", 1, &LIMITS, 1).is_ok());
    assert_eq!(ds.names().unwrap().len(), MAX_DATASETS);
}

#[test]
fn datasets_are_per_user_and_deleted_with_every_key() {
    let kv = MemoryKv::default();
    let before = kv.keys().len();
    let alice = DatasetStore::new(&kv, "alice");
    alice.ensure("cats", 1).unwrap();
    let bucket = alice.bucket("cats");
    alice
        .objects()
        .put(&bucket, "a.png", b"x", "image/png", Map::new(), 1)
        .unwrap();
    alice
        .objects()
        .create_upload(&bucket, "big.bin", "b", Map::new(), 1)
        .unwrap();
    let bob = DatasetStore::new(&kv, "bob");
    assert!(bob.get("cats").unwrap().is_none() && bob.list().unwrap().is_empty());
    assert_eq!(bob.require("cats").unwrap_err().status, 404);
    assert_eq!(alice.list().unwrap().len(), 1);
    alice.delete("cats").unwrap();
    // Every key the dataset used is gone (the names list stays, empty).
    let left: Vec<String> = kv
        .keys()
        .into_iter()
        .filter(|k| !k.ends_with("datasets:u:alice"))
        .collect();
    assert_eq!(left.len(), before, "{left:?}");
    assert!(alice.list().unwrap().is_empty());
}
