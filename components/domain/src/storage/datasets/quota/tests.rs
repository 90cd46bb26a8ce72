use super::*;
use crate::kernel::kv::MemoryKv;
use serde_json::Map;

const LIMITS: Limits = Limits {
    quota_bytes: 20,
    max_files: 3,
};

fn write<'a>(dataset: &'a str, path: &'a str, bytes: u64) -> Write<'a> {
    Write {
        dataset,
        path,
        bytes,
    }
}

/// Opens a real multipart upload at `cats/<path>` and registers it.
fn open(ds: &DatasetStore, path: &str, now_ms: u64) -> Result<String, QuotaError> {
    let id = ds
        .objects()
        .create_upload(&ds.bucket("cats"), path, "b", Map::new(), now_ms)?;
    ds.open_upload(&id, "cats", path, &LIMITS, now_ms)?;
    Ok(id)
}

#[test]
fn parts_count_against_the_quota_until_their_upload_ends() {
    let kv = MemoryKv::default();
    let ds = DatasetStore::new(&kv, "alice");
    let a = open(&ds, "a.bin", 1).unwrap();
    ds.reserve_part(&a, 1, 15, &LIMITS, 1).unwrap();
    // Re-sending a part replaces its count, it does not add to it.
    ds.reserve_part(&a, 1, 15, &LIMITS, 1).unwrap();
    let over = ds.reserve_part(&a, 2, 10, &LIMITS, 1).unwrap_err();
    assert_eq!(
        over,
        QuotaError::Quota {
            used: 15,
            quota: 20
        }
    );
    let b = open(&ds, "b.bin", 1).unwrap();
    assert!(matches!(
        ds.reserve_part(&b, 1, 6, &LIMITS, 1),
        Err(QuotaError::Quota { .. })
    ));
    assert!(matches!(
        ds.reserve_write(&write("cats", "c.png", 6), &LIMITS, 1),
        Err(QuotaError::Quota { .. })
    ));
    // A part of an upload that is not open is refused.
    assert_eq!(
        ds.reserve_part("nope", 1, 1, &LIMITS, 1),
        Err(QuotaError::NoSuchUpload)
    );
    ds.close_upload(&a, 2).unwrap();
    ds.reserve_write(&write("cats", "c.png", 6), &LIMITS, 2)
        .unwrap();
    assert_eq!(ds.inflight(2).unwrap().bytes(), 6);
}

/// Two PUTs admitted by one check-then-write: the second read the record
/// before the first recorded itself. The swap fails and it checks again.
#[test]
fn parallel_writes_cannot_both_pass_one_check() {
    let kv = crate::storage::racing::Racing::default();
    let ds = DatasetStore::new(&kv, "alice");
    ds.reserve_write(&write("cats", "0.png", 1), &LIMITS, 1)
        .unwrap();
    kv.after_read("datasets:inflight:alice", |inner| {
        DatasetStore::new(inner, "alice")
            .reserve_write(&write("cats", "1.png", 15), &LIMITS, 1)
            .unwrap();
    });
    assert!(matches!(
        ds.reserve_write(&write("cats", "2.png", 15), &LIMITS, 1),
        Err(QuotaError::Quota { used: 16, .. })
    ));
    // Files in flight count against the files of a dataset too: two are
    // on their way, a third fits, a fourth does not.
    ds.reserve_write(&write("cats", "3.png", 1), &LIMITS, 1)
        .unwrap();
    assert_eq!(
        ds.reserve_write(&write("cats", "4.png", 1), &LIMITS, 1)
            .unwrap_err(),
        QuotaError::TooManyFiles(3)
    );
}

#[test]
fn holds_lapse_when_their_request_died() {
    let kv = MemoryKv::default();
    let ds = DatasetStore::new(&kv, "alice");
    let _lost = ds
        .reserve_write(&write("cats", "0.png", 20), &LIMITS, 1)
        .unwrap();
    assert!(
        ds.reserve_write(&write("cats", "1.png", 1), &LIMITS, 2)
            .is_err()
    );
    let later = 1 + WRITE_HOLD_MS;
    ds.reserve_write(&write("cats", "1.png", 1), &LIMITS, later)
        .unwrap();
}

#[test]
fn open_uploads_are_capped_and_stale_ones_expire_parts_and_all() {
    let kv = MemoryKv::default();
    let ds = DatasetStore::new(&kv, "alice");
    let limits = Limits {
        quota_bytes: 1 << 30,
        max_files: 1000,
    };
    for i in 0..MAX_OPEN_UPLOADS {
        let path = format!("{i}.bin");
        let id = ds
            .objects()
            .create_upload(&ds.bucket("cats"), &path, "b", Map::new(), 1)
            .unwrap();
        ds.open_upload(&id, "cats", &path, &limits, 1).unwrap();
        ds.reserve_part(&id, 1, 4, &limits, 1).unwrap();
        ds.objects()
            .upload_part(&id, &ds.bucket("cats"), &path, 1, b"part")
            .unwrap();
    }
    assert_eq!(
        ds.open_upload("more", "cats", "more.bin", &limits, 2),
        Err(QuotaError::TooManyUploads)
    );
    // A trainer's upload into a job's outputs, abandoned too.
    let outputs = ObjectStore::new(&kv, 1 << 30);
    let job = outputs
        .create_upload(crate::storage::BUCKET, "job/w.bin", "b", Map::new(), 1)
        .unwrap();
    outputs
        .upload_part(&job, crate::storage::BUCKET, "job/w.bin", 1, b"w")
        .unwrap();
    // Not stale yet: nothing happens.
    assert_eq!(expire_stale_uploads(&kv, UPLOAD_TTL_MS).unwrap(), 0);
    assert_eq!(
        expire_stale_uploads(&kv, 1 + UPLOAD_TTL_MS).unwrap(),
        MAX_OPEN_UPLOADS + 1
    );
    let keys = kv.keys();
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("s3d:") || k.starts_with("s3mp")),
        "parts and uploads are gone: {keys:?}"
    );
    assert_eq!(ds.inflight(2).unwrap(), Inflight::default());
    let owners: BTreeSet<String> = get_json(&kv, UPLOADERS_KEY).unwrap().unwrap();
    assert!(owners.is_empty(), "{owners:?}");
    open(&ds, "again.bin", 3).unwrap();
}
