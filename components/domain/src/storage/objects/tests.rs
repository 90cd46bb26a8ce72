use super::*;
use crate::kernel::kv::MemoryKv;

pub(super) fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn objects_round_trip_in_chunks_with_ranges() {
    let kv = MemoryKv::default();
    let store = ObjectStore::new(&kv, 1 << 30);
    let data = bytes(CHUNK * 2 + 100);
    let m = store
        .put(
            "outputs",
            "j/a.bin",
            &data,
            "application/octet-stream",
            Map::new(),
            5,
        )
        .unwrap();
    assert_eq!(m.etag, format!("\"{}\"", hex::encode(Md5::digest(&data))));
    assert_eq!(
        kv.keys().iter().filter(|k| k.starts_with("s3d:")).count(),
        3
    );
    let m = store.head("outputs", "j/a.bin").unwrap().unwrap();
    assert_eq!(store.read(&m, 0, m.size).unwrap(), data);
    let (a, b) = (CHUNK as u64 - 10, CHUNK as u64 * 2 + 5);
    assert_eq!(store.read(&m, a, b).unwrap(), data[a as usize..b as usize]);
    // Replacing frees the old chunks; deleting frees everything.
    store
        .put("outputs", "j/a.bin", b"small", "text/plain", Map::new(), 6)
        .unwrap();
    assert_eq!(
        kv.keys().iter().filter(|k| k.starts_with("s3d:")).count(),
        1
    );
    store.delete("outputs", "j/a.bin").unwrap();
    assert!(
        kv.keys()
            .iter()
            .all(|k| !k.starts_with("s3d:") && !k.starts_with("s3o:"))
    );
    assert!(store.list("outputs", "", None, 10).unwrap().0.is_empty());
}

#[test]
fn copies_are_independent_of_their_source() {
    let kv = MemoryKv::default();
    let store = ObjectStore::new(&kv, 1 << 30);
    let data = bytes(CHUNK + 7);
    let src = store
        .put("b", "a.bin", &data, "x/y", Map::new(), 1)
        .unwrap();
    let copy = store.copy(&src, "b", "c.bin", None, 2).unwrap();
    assert_eq!(
        (copy.etag.clone(), copy.content_type.clone()),
        (src.etag.clone(), "x/y".into())
    );
    store.delete("b", "a.bin").unwrap();
    let copy = store.head("b", "c.bin").unwrap().unwrap();
    assert_eq!(store.read(&copy, 0, copy.size).unwrap(), data);
    assert_eq!(store.drop_bucket("b").unwrap(), 1);
    assert!(kv.keys().is_empty(), "{:?}", kv.keys());
}

/// A publish that loses every swap (other writers keep winning) used to
/// list itself anyway: an index entry for bytes that are not the object.
#[test]
fn a_publish_that_never_swaps_in_lists_nothing_and_keeps_nothing() {
    let kv = crate::storage::racing::Racing::default();
    *kv.losing.borrow_mut() = Some("s3o:".into());
    let store = ObjectStore::new(&kv, 1 << 30);
    let e = store
        .put("b", "k", &bytes(CHUNK + 1), "t", Map::new(), 1)
        .unwrap_err();
    assert!(matches!(e, StoreError::Kv(_)), "{e:?}");
    *kv.losing.borrow_mut() = None;
    assert!(store.list("b", "", None, 10).unwrap().0.is_empty());
    let keys = kv.kv.keys();
    assert!(!keys.iter().any(|k| k.starts_with("s3d:")), "{keys:?}");
}

/// Two writers of one key: ours swaps in, theirs right after (and lists
/// itself before we do). The index must end as the object is: theirs.
#[test]
fn the_index_entry_follows_the_manifest_that_won() {
    let kv = crate::storage::racing::Racing::default();
    let theirs = Manifest {
        bucket: "b".into(),
        key: "k".into(),
        size: 3,
        etag: "\"theirs\"".into(),
        content_type: "t".into(),
        uploaded_ms: 2,
        metadata: Map::new(),
        blobs: vec![],
    };
    let stored = theirs.clone();
    kv.after_swap("s3o:", move |inner| {
        let other = ObjectStore::new(inner, 1 << 30);
        other.publish(&stored).unwrap();
    });
    let store = ObjectStore::new(&kv, 1 << 30);
    store
        .put("b", "k", b"ours, longer", "t", Map::new(), 1)
        .unwrap();
    let (listed, _) = store.list("b", "", None, 10).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].1.size, listed[0].1.etag.as_str()),
        (3, "\"theirs\""),
        "the entry says what the manifest holds"
    );
    assert_eq!(store.head("b", "k").unwrap().unwrap(), theirs);
}

#[test]
fn listing_pages_by_prefix() {
    let kv = MemoryKv::default();
    let store = ObjectStore::new(&kv, 1 << 20);
    for k in ["a/1", "a/2", "a/3", "b/1"] {
        store
            .put("outputs", k, k.as_bytes(), "t", Map::new(), 1)
            .unwrap();
    }
    let (page, more) = store.list("outputs", "a/", None, 2).unwrap();
    assert_eq!(
        page.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["a/1", "a/2"]
    );
    assert!(more);
    let (page, more) = store.list("outputs", "a/", Some("a/2"), 2).unwrap();
    assert_eq!(page.len(), 1);
    assert!(!more);
    assert_eq!(store.delete_prefix("outputs", "a/").unwrap(), 3);
    assert_eq!(store.list("outputs", "", None, 10).unwrap().0.len(), 1);
}
