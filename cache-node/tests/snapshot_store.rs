//! Snapshots to the snapshot store and restores from it, as the operator
//! orders them (`TIDECACHE SNAPSHOT`/`RESTORE`), on a local-directory store
//! with compression and encryption: a one-shard snapshot restores into two
//! shards, each keeping its own slots; damaged, missing and foreign
//! objects fail the restore loudly and the node then serves no data.
//! (`snapshot_s3.rs` runs snapshots against a real S3 server, Garage.)

mod common;

use std::collections::BTreeMap;

use cache_node::Node;
use common::snapshots::{
    admin, populate, restore, restore_into_two_shards, scratch, start, store_flags, wait_job,
};
use tidecache_topology::protocol::Request;

const OBJECT: &str = "c1/s1/shard-0.rdb.zst.sealed";

/// A standalone node with `keys` keys, snapshotted as `s1` into `OBJECT`.
async fn snapshotted(store: &str, key_file: &str, keys: usize) -> (Node, BTreeMap<String, String>) {
    let source = start(None, &store_flags(store, key_file)).await;
    let mut c = common::redis_conn(&source, None, None).await;
    populate(&mut c, keys).await;
    let mut a = admin(&source).await;
    let _: () = Request::SnapshotStart {
        id: "s1",
        object: OBJECT,
    }
    .cmd()
    .query_async(&mut a)
    .await
    .unwrap();
    let status = wait_job(&mut a, Request::SnapshotStatus).await;
    (source, status)
}

#[tokio::test]
async fn a_one_shard_snapshot_restores_into_two_shards() {
    let dir = scratch("two");
    let key_file = dir.join("key");
    std::fs::write(&key_file, "11".repeat(32)).unwrap();
    let (store, key_file) = (
        dir.join("store").display().to_string(),
        key_file.display().to_string(),
    );
    let keys = 2000;
    let (source, status) = snapshotted(&store, &key_file, keys).await;
    assert_eq!(status["phase"], "done", "{status:?}");
    assert_eq!(status["keys"], keys.to_string());
    let stored: u64 = status["stored_bytes"].parse().unwrap();
    let rdb: u64 = status["rdb_bytes"].parse().unwrap();
    assert!(stored > 0 && stored < rdb, "compressed: {stored} of {rdb}");
    // Encrypted at rest: no key name appears in the object.
    let bytes = std::fs::read(dir.join("store").join(OBJECT)).unwrap();
    assert!(bytes.starts_with(b"TCSEAL01"));
    assert!(!bytes.windows(5).any(|w| w == b"value"));

    let flags = store_flags(&store, &key_file);
    restore_into_two_shards(&flags, "s1", OBJECT, &source, keys, 1).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn damaged_missing_and_foreign_objects_fail_the_restore_loudly() {
    let dir = scratch("bad");
    let key_file = dir.join("key");
    std::fs::write(&key_file, "22".repeat(32)).unwrap();
    let (store, key_file) = (
        dir.join("store").display().to_string(),
        key_file.display().to_string(),
    );
    let (_source, status) = snapshotted(&store, &key_file, 300).await;
    assert_eq!(status["phase"], "done", "{status:?}");
    let good = dir.join("store").join(OBJECT);
    let bad = dir.join("store").join("c1/s1/damaged.rdb.zst.sealed");
    let mut bytes = std::fs::read(&good).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&bad, bytes).unwrap();

    let n = start(None, &store_flags(&store, &key_file)).await;
    let mut c = common::redis_conn(&n, None, None).await;
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query_async(&mut c)
        .await
        .unwrap();
    for (objects, snapshot, why) in [
        (
            vec!["c1/s1/damaged.rdb.zst.sealed"],
            Some("s1"),
            "does not decrypt",
        ),
        (vec![OBJECT, "c1/s1/missing.rdb"], Some("s1"), "not found"),
        (vec![OBJECT], Some("s0"), "not an object of snapshot s0"),
    ] {
        let failed = restore(&n, "r", snapshot, &objects).await;
        assert_eq!(failed["phase"], "failed", "{failed:?}");
        assert!(failed["error"].contains(why), "{failed:?}");
        // Nothing, partial or old, is served.
        let err = redis::cmd("GET")
            .arg("before")
            .query_async::<Option<String>>(&mut c)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("restore failed"), "{err}");
        let keys: usize = redis::cmd("DBSIZE")
            .query_async(&mut admin(&n).await)
            .await
            .unwrap();
        assert_eq!(keys, 0);
    }
    // A good restore serves again.
    let done = restore(&n, "r", Some("s1"), &[OBJECT]).await;
    assert_eq!(done["phase"], "done", "{done:?}");
    let size: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 300);
    let _ = std::fs::remove_dir_all(&dir);
}
