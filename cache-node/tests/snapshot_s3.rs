//! Snapshots to and restores from a real S3-compatible server: Garage,
//! built from crates.io by `e2e/scripts/tools.sh garage` (`make unit` runs
//! it and passes the binary in `TIDECACHE_GARAGE_BIN`), on loopback. The
//! snapshot is large enough to go up as a multipart upload, is signed with
//! the server's region and fixed credentials over path-style requests, and
//! restores from one shard into two.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::snapshots::{admin, restore, restore_into_two_shards, scratch, start, wait_job};
use tidecache_topology::protocol::Request;

const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
const SECRET_KEY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const BUCKET: &str = "tidecache-test";
const REGION: &str = "garage";

/// A single-node Garage with the bucket and key above.
struct Garage {
    child: Child,
    s3_port: u16,
}

impl Garage {
    fn start(dir: &Path) -> Garage {
        let bin = std::env::var("TIDECACHE_GARAGE_BIN").expect(
            "TIDECACHE_GARAGE_BIN is not set: `make unit` builds Garage (e2e/scripts/tools.sh garage) and sets it",
        );
        let (rpc, s3, admin) = (
            common::free_port(),
            common::free_port(),
            common::free_port(),
        );
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
lmdb_map_size = "1G"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3}"
s3_region = "{REGION}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
                secret = "0f".repeat(32),
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args([
                "-c",
                config.to_str().unwrap(),
                "server",
                "--single-node",
                "--default-bucket",
            ])
            .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("garage.log")).unwrap())
            .spawn()
            .unwrap();
        Garage { child, s3_port: s3 }
    }

    fn flags(&self) -> Vec<String> {
        [
            "--snapshot-store",
            &format!("s3://{BUCKET}/clusters"),
            "--snapshot-endpoint",
            &format!("http://127.0.0.1:{}", self.s3_port),
            "--snapshot-region",
            REGION,
            "--snapshot-access-key-id",
            ACCESS_KEY,
            "--snapshot-secret-access-key",
            SECRET_KEY,
        ]
        .map(String::from)
        .to_vec()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn snapshots_go_to_garage_and_restore_into_two_shards() {
    let dir = scratch("garage");
    let garage = Garage::start(&dir);
    let source = start(None, &garage.flags()).await;
    let mut c = common::redis_conn(&source, None, None).await;
    // 24 MiB: more than one 10 MiB part of the multipart upload.
    let value = "x".repeat(1000);
    let keys = 24_000;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET")
                .arg(format!("k{i}"))
                .arg(format!("{i}:{value}"));
            if i % 4 == 0 {
                p.cmd("PEXPIRE").arg(format!("k{i}")).arg(600_000);
            }
        }
        let _: () = p.query_async(&mut c).await.unwrap();
    }

    // Garage sets up its layout, key and bucket as it starts: retry the
    // first snapshot until it has.
    let mut a = admin(&source).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let _: () = Request::SnapshotStart {
            id: "s1",
            object: "c1/s1/shard-0.rdb",
        }
        .cmd()
        .query_async(&mut a)
        .await
        .unwrap();
        let status = wait_job(&mut a, Request::SnapshotStatus).await;
        if status["phase"] == "done" || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        status["phase"],
        "done",
        "{status:?}; garage log in {}",
        dir.display()
    );
    assert_eq!(status["keys"], keys.to_string());
    assert_eq!(
        status["stored_bytes"], status["rdb_bytes"],
        "plain RDB, no codec"
    );
    assert!(status["rdb_bytes"].parse::<u64>().unwrap() > 20 << 20);

    let (na, _nb) = restore_into_two_shards(
        &garage.flags(),
        "s1",
        "c1/s1/shard-0.rdb",
        &source,
        keys,
        97,
    )
    .await;

    // A missing object fails the restore by name.
    let failed = restore(&na, "r2", Some("s1"), &["c1/s1/shard-9.rdb"]).await;
    assert_eq!(failed["phase"], "failed", "{failed:?}");
    assert!(failed["error"].contains("not found"), "{failed:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
