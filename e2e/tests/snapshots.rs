//! Snapshots on the real control plane, to a real S3 server: Garage, in
//! the harness's network namespace (`e2e/scripts/cluster.sh`).
//!
//! 1. A 2-shard cluster with data of every type and TTLs, under a writer,
//!    is snapshotted (`CacheSnapshot`, zstd and AES-256-GCM at rest); a
//!    new 3-shard cluster restored from it (`restoreFrom.snapshot`) has
//!    every key, value and remaining TTL, and every write acknowledged
//!    before the snapshot was asked for.
//! 2. A damaged object and a missing one: the restore fails with a clear
//!    status (phase `Failed`, condition `Restored` saying why) and the
//!    nodes serve no data.
//! 3. A cluster seeded from an RDB file redis-server 7.0 wrote
//!    (`restoreFrom.objects`) holds its keys, spread over its shards.
//! 4. Scheduled snapshots (every 4 s here) are pruned by retention, with
//!    their objects; deleting the cluster takes a final snapshot first,
//!    which outlives it and restores into a new cluster.
//! 5. Pausing takes a snapshot and removes the pods; unpausing brings them
//!    back with the data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube::api::PostParams;
use object_store::ObjectStore as _;
use object_store::aws::AmazonS3Builder;
use tidecache_e2e::{
    TestNamespace, cluster_client, garage, install_operator, pod_addr, timeout, wait_for,
};
use tidecache_operator::crd::{CacheCluster, CacheSnapshot};

fn cluster(name: &str, shards: u32, restore_from: &str) -> String {
    format!(
        r#"
apiVersion: tidecache.io/v1alpha1
kind: CacheCluster
metadata: {{name: {name}}}
spec:
  shards: {shards}
  node: {{resources: {{limits: {{memory: 256Mi}}}}}}
  snapshots:
    storage:
      url: s3://{bucket}/clusters
      endpoint: {endpoint}
      region: {region}
      credentialsSecret: s3-credentials
      compressionLevel: 3
      encryptionKeySecret: {{name: snapshot-key, key: key}}
{restore_from}"#,
        bucket = garage::BUCKET,
        endpoint = garage::ENDPOINT,
        region = garage::REGION,
    )
}

/// A key's type, contents in a fixed order, and remaining TTL in seconds
/// (-1: none).
async fn read(
    c: &mut redis::cluster_async::ClusterConnection,
    k: &str,
) -> anyhow::Result<(String, Vec<String>, i64)> {
    let t: String = redis::cmd("TYPE").arg(k).query_async(c).await?;
    let mut v: Vec<String> = match t.as_str() {
        "string" => vec![redis::cmd("GET").arg(k).query_async(c).await?],
        "hash" => redis::cmd("HGETALL").arg(k).query_async(c).await?,
        "list" => {
            redis::cmd("LRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .query_async(c)
                .await?
        }
        "set" => redis::cmd("SMEMBERS").arg(k).query_async(c).await?,
        "zset" => {
            redis::cmd("ZRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(c)
                .await?
        }
        _ => vec![],
    };
    if t == "set" || t == "hash" {
        v.sort();
    }
    let ttl: i64 = redis::cmd("TTL").arg(k).query_async(c).await?;
    Ok((t, v, ttl))
}

async fn wait_phase(ns: &TestNamespace, name: &str, phase: &str) -> anyhow::Result<CacheCluster> {
    let api = ns.api::<CacheCluster>();
    wait_for(
        &format!("CacheCluster {name} {phase}"),
        timeout(),
        || async {
            let cc = api.get(name).await?;
            let now = cc.status.as_ref().and_then(|s| s.phase.clone());
            Ok((now.as_deref() == Some(phase)).then_some(cc))
        },
    )
    .await
}

/// A namespace with the storage's credentials and encryption key.
async fn namespace(prefix: &str) -> anyhow::Result<TestNamespace> {
    install_operator().await?;
    let ns = TestNamespace::new(prefix).await?;
    ns.create_secret(
        "s3-credentials",
        &[
            ("AWS_ACCESS_KEY_ID", garage::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", garage::SECRET_KEY),
        ],
    )
    .await?;
    ns.create_secret("snapshot-key", &[("key", &"5a".repeat(32))])
        .await?;
    Ok(ns)
}

/// The harness's bucket, as the test's own S3 client.
fn bucket() -> anyhow::Result<object_store::aws::AmazonS3> {
    Ok(AmazonS3Builder::new()
        .with_endpoint(garage::ENDPOINT)
        .with_allow_http(true)
        .with_region(garage::REGION)
        .with_bucket_name(garage::BUCKET)
        .with_access_key_id(garage::ACCESS_KEY)
        .with_secret_access_key(garage::SECRET_KEY)
        .build()?)
}

#[tokio::test]
async fn a_snapshot_restores_into_another_shard_count_and_damage_fails_loudly() -> anyhow::Result<()>
{
    let ns = namespace("snapshots").await?;
    ns.apply_cluster(&cluster("snap-src", 2, "")).await?;
    ns.wait_ready("snap-src").await?;
    let password = ns.secret_value("snap-src-auth", "password").await?;
    let first = pod_addr(&ns.pods("snap-src").await?[0]).unwrap();
    let mut c = cluster_client(&first, &password).await?;

    // Every type; a third of the keys with an hour's TTL.
    let keys = 1500;
    for i in 0..keys {
        let k = format!("k{i}");
        let _: () = match i % 5 {
            0 => {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(format!("v{i}"))
                    .query_async(&mut c)
                    .await?
            }
            1 => {
                redis::cmd("HSET")
                    .arg(&k)
                    .arg("f")
                    .arg(i)
                    .arg("g")
                    .arg("x")
                    .query_async(&mut c)
                    .await?
            }
            2 => {
                redis::cmd("RPUSH")
                    .arg(&k)
                    .arg("a")
                    .arg(i)
                    .query_async(&mut c)
                    .await?
            }
            3 => {
                redis::cmd("SADD")
                    .arg(&k)
                    .arg("m")
                    .arg(i)
                    .query_async(&mut c)
                    .await?
            }
            _ => {
                redis::cmd("ZADD")
                    .arg(&k)
                    .arg(1.5)
                    .arg("m")
                    .arg(i)
                    .arg("n")
                    .query_async(&mut c)
                    .await?
            }
        };
        if i % 3 == 0 {
            let _: () = redis::cmd("EXPIRE")
                .arg(&k)
                .arg(3600)
                .query_async(&mut c)
                .await?;
        }
    }
    let mut want = BTreeMap::new();
    for i in 0..keys {
        let k = format!("k{i}");
        want.insert(k.clone(), read(&mut c, &k).await?);
    }

    // A writer keeps going through the snapshot; what it had acknowledged
    // before the snapshot was asked for must all be in it.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let mut w = cluster_client(&first, &password).await?;
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let set: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(format!("w{n}"))
                    .arg(n)
                    .query_async(&mut w)
                    .await;
                if set.is_ok() {
                    acked.store(n, Ordering::Relaxed);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = acked.load(Ordering::Relaxed);
    assert!(before > 0, "the writer writes");
    let snapshots = ns.api::<CacheSnapshot>();
    let snap: CacheSnapshot = serde_yaml::from_str(
        "apiVersion: tidecache.io/v1alpha1\nkind: CacheSnapshot\nmetadata: {name: snap-1}\nspec: {cluster: snap-src}\n",
    )?;
    let asked = Instant::now();
    snapshots.create(&PostParams::default(), &snap).await?;
    let done = wait_for("CacheSnapshot snap-1 Completed", timeout(), || async {
        let s = snapshots.get("snap-1").await?;
        let status = s.status.clone().unwrap_or_default();
        anyhow::ensure!(
            status.phase.as_deref() != Some("Failed"),
            "snapshot failed: {status:?}"
        );
        Ok((status.phase.as_deref() == Some("Completed")).then_some(s))
    })
    .await?;
    println!(
        "snapshot completed {:.1} s after it was asked for",
        asked.elapsed().as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    let status = done.status.unwrap();
    assert_eq!(status.objects.len(), 2);
    assert!(status.keys >= keys as u64 + before, "{status:?}");
    assert!(
        status
            .manifest
            .as_deref()
            .is_some_and(|m| m.ends_with("manifest.json"))
    );
    println!(
        "snapshot: {} keys, {} bytes stored",
        status.keys, status.size
    );

    // Restored into 3 shards.
    ns.apply_cluster(&cluster(
        "snap-dst",
        3,
        "  restoreFrom: {snapshot: snap-1}\n",
    ))
    .await?;
    let restored = ns.wait_ready("snap-dst").await?;
    let restore = restored.status.unwrap().restore.unwrap();
    assert_eq!(restore.phase, "Completed", "{restore:?}");
    let dst_password = ns.secret_value("snap-dst-auth", "password").await?;
    let dst_first = pod_addr(&ns.pods("snap-dst").await?[0]).unwrap();
    let mut d = cluster_client(&dst_first, &dst_password).await?;
    for (k, (t, v, ttl)) in &want {
        let (t2, v2, ttl2) = read(&mut d, k).await?;
        assert_eq!((&t2, &v2), (t, v), "{k}");
        if *ttl < 0 {
            assert_eq!(ttl2, -1, "{k} has no TTL");
        } else {
            // The TTL went on running, by the time the test took.
            assert!(ttl2 > 0 && ttl2 <= *ttl, "{k}: TTL {ttl2}, was {ttl}");
        }
    }
    for n in 1..=before {
        let v: Option<u64> = redis::cmd("GET")
            .arg(format!("w{n}"))
            .query_async(&mut d)
            .await?;
        assert_eq!(v, Some(n), "acknowledged write w{n} is in the snapshot");
    }

    // A damaged copy of an object, and a missing object.
    let store = bucket()?;
    let good = format!("clusters/{}", status.objects[0].object);
    let mut bytes = store
        .get(&good.as_str().into())
        .await?
        .bytes()
        .await?
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    store
        .put(
            &"clusters/damaged/shard.rdb.zst.sealed".into(),
            bytes.into(),
        )
        .await?;
    for (name, object, why) in [
        (
            "snap-bad",
            "damaged/shard.rdb.zst.sealed",
            "does not decrypt",
        ),
        ("snap-missing", "missing/shard.rdb", "not found"),
    ] {
        let from = format!("  restoreFrom: {{objects: [{object}]}}\n");
        ns.apply_cluster(&cluster(name, 1, &from)).await?;
        let cc = wait_phase(&ns, name, "Failed").await?;
        let status = cc.status.unwrap();
        let restored = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Restored")
            .unwrap();
        assert_eq!(restored.status, "False");
        assert!(
            restored.message.contains(why),
            "{name}: {}",
            restored.message
        );
        // Nothing is served.
        let pw = ns.secret_value(&format!("{name}-auth"), "password").await?;
        let addr = pod_addr(&ns.pods(name).await?[0]).unwrap();
        let client = redis::Client::open(format!("redis://:{pw}@{}:{}/", addr.0, addr.1))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let err = redis::cmd("DBSIZE")
            .query_async::<i64>(&mut conn)
            .await
            .expect_err("a failed restore serves nothing");
        assert!(err.to_string().contains("restore failed"), "{err}");
    }
    ns.delete().await;
    Ok(())
}

/// A redis-server on a loopback port of the harness's namespace, its RDB
/// file in `dir`.
struct RedisServer(std::process::Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_cluster_seeds_from_a_redis_server_rdb_file() -> anyhow::Result<()> {
    let ns = namespace("seed").await?;
    let dir = std::env::temp_dir().join(format!("tidecache-e2e-{}", ns.name));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _redis = RedisServer(
        std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .args(["--dir", dir.to_str().unwrap(), "--dbfilename", "dump.rdb"])
            .stdout(std::process::Stdio::null())
            .spawn()?,
    );
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut r = wait_for("redis-server", Duration::from_secs(10), || async {
        Ok(client.get_multiplexed_async_connection().await.ok())
    })
    .await?;
    // Every type in redis-server's compact encodings and in its large ones.
    let keys = 1000;
    for i in 0..keys {
        let k = format!("r{i}");
        let big = i % 50 == 0;
        let n = if big { 200 } else { 3 };
        let mut p = redis::pipe();
        match i % 5 {
            0 => p
                .cmd("SET")
                .arg(&k)
                .arg(if big { "x".repeat(100) } else { i.to_string() }),
            1 => p.cmd("HSET").arg(&k).arg(
                (0..n)
                    .flat_map(|f| [format!("f{f}"), f.to_string()])
                    .collect::<Vec<_>>(),
            ),
            2 => p
                .cmd("RPUSH")
                .arg(&k)
                .arg((0..n).map(|e| e.to_string()).collect::<Vec<_>>()),
            3 => p
                .cmd("SADD")
                .arg(&k)
                .arg((0..n).map(|e| e.to_string()).collect::<Vec<_>>()),
            _ => p.cmd("ZADD").arg(&k).arg(
                (0..n)
                    .flat_map(|e| [e.to_string(), format!("m{e}")])
                    .collect::<Vec<_>>(),
            ),
        };
        if i % 4 == 0 {
            p.cmd("EXPIRE").arg(&k).arg(3600);
        }
        let _: () = p.query_async(&mut r).await?;
    }
    // redis-cli: SAVE may outlast the client's response timeout.
    let saved = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "SAVE"])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&saved.stdout).trim(), "OK");
    let object = format!("{}/seed/dump.rdb", ns.name);
    let file = std::fs::read(dir.join("dump.rdb"))?;
    bucket()?
        .put(&format!("clusters/{object}").as_str().into(), file.into())
        .await?;

    ns.apply_cluster(&cluster(
        "seeded",
        2,
        &format!("  restoreFrom: {{objects: [{object}]}}\n"),
    ))
    .await?;
    let cc = ns.wait_ready("seeded").await?;
    assert_eq!(cc.status.unwrap().restore.unwrap().keys, keys as u64);
    let pw = ns.secret_value("seeded-auth", "password").await?;
    let first = pod_addr(&ns.pods("seeded").await?[0]).unwrap();
    let mut c = cluster_client(&first, &pw).await?;
    let mut rc = client.get_multiplexed_async_connection().await?;
    for i in 0..keys {
        let k = format!("r{i}");
        let (t, mut v, ttl) = read(&mut c, &k).await?;
        let t0: String = redis::cmd("TYPE").arg(&k).query_async(&mut rc).await?;
        assert_eq!(t, t0, "{k}");
        let mut v0: Vec<String> = match t.as_str() {
            "string" => vec![redis::cmd("GET").arg(&k).query_async(&mut rc).await?],
            "hash" => redis::cmd("HGETALL").arg(&k).query_async(&mut rc).await?,
            "list" => {
                redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut rc)
                    .await?
            }
            "set" => redis::cmd("SMEMBERS").arg(&k).query_async(&mut rc).await?,
            _ => {
                redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut rc)
                    .await?
            }
        };
        if t == "set" || t == "hash" {
            v0.sort();
            v.sort();
        }
        assert_eq!(v, v0, "{k}");
        assert_eq!(ttl > 0, i % 4 == 0, "{k}: TTL {ttl}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    ns.delete().await;
    Ok(())
}

/// The objects below `dir` in the harness's bucket.
async fn objects_below(dir: &str) -> anyhow::Result<Vec<String>> {
    use futures::TryStreamExt as _;
    let prefix = object_store::path::Path::from(format!("clusters/{dir}"));
    Ok(bucket()?
        .list(Some(&prefix))
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await?)
}

#[tokio::test]
async fn scheduled_snapshots_are_pruned_and_deletion_takes_a_final_snapshot() -> anyhow::Result<()>
{
    let ns = namespace("schedule").await?;
    let spec =
        cluster("sched", 1, "") + "    schedule: \"*/4 * * * * *\"\n    retention: {count: 2}\n";
    ns.apply_cluster(&spec).await?;
    ns.wait_ready("sched").await?;
    let password = ns.secret_value("sched-auth", "password").await?;
    let first = pod_addr(&ns.pods("sched").await?[0]).unwrap();
    let mut c = cluster_client(&first, &password).await?;
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("s{i}"))
            .arg(i)
            .query_async(&mut c)
            .await?;
    }

    // Snapshots every 4 s, two kept: after a while some were taken and
    // pruned, with their objects.
    let snapshots = ns.api::<CacheSnapshot>();
    let mut seen = std::collections::BTreeMap::new();
    let deadline = Instant::now() + timeout();
    let pruned = loop {
        let list = snapshots.list(&Default::default()).await?.items;
        let now: Vec<String> = list
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        for s in &list {
            if let Some(m) = s.status.as_ref().and_then(|st| st.manifest.clone()) {
                seen.insert(s.metadata.name.clone().unwrap(), m);
            }
        }
        let completed = list
            .iter()
            .filter(|s| s.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Completed"))
            .count();
        // Two kept, and a third may have completed since the last prune.
        assert!(
            completed <= 3,
            "retention keeps 2 completed snapshots: {now:?}"
        );
        let gone: Vec<(String, String)> = seen
            .iter()
            .filter(|(n, _)| !now.contains(n))
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect();
        if !gone.is_empty() {
            break gone;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no snapshot pruned; seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (name, manifest) = &pruned[0];
    let dir = manifest.trim_end_matches("/manifest.json");
    let left = wait_for(
        "the pruned snapshot's objects deleted",
        timeout(),
        || async {
            let left = objects_below(dir).await?;
            Ok(left.is_empty().then_some(left))
        },
    )
    .await?;
    println!("{name} pruned; objects left below {dir}: {}", left.len());

    // Deleting the cluster takes a final snapshot first, which outlives it.
    ns.api::<CacheCluster>()
        .delete("sched", &Default::default())
        .await?;
    let final_snap = wait_for("the final snapshot Completed", timeout(), || async {
        let list = snapshots.list(&Default::default()).await?.items;
        Ok(list.into_iter().find(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("sched-final-"))
                && s.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Completed")
        }))
    })
    .await?;
    wait_for("the cluster deleted", timeout(), || async {
        Ok(ns
            .api::<CacheCluster>()
            .get_opt("sched")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    let final_name = final_snap.metadata.name.clone().unwrap();
    assert_eq!(final_snap.status.as_ref().unwrap().keys, 300);

    // It restores into a new cluster of two shards.
    ns.apply_cluster(&cluster(
        "after",
        2,
        &format!("  restoreFrom: {{snapshot: {final_name}}}\n"),
    ))
    .await?;
    ns.wait_ready("after").await?;
    let pw = ns.secret_value("after-auth", "password").await?;
    let first = pod_addr(&ns.pods("after").await?[0]).unwrap();
    let mut d = cluster_client(&first, &pw).await?;
    for i in 0..300 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(format!("s{i}"))
            .query_async(&mut d)
            .await?;
        assert_eq!(v, Some(i), "s{i}");
    }
    ns.delete().await;
    Ok(())
}

#[tokio::test]
async fn pause_and_unpause_keep_the_data() -> anyhow::Result<()> {
    let ns = namespace("pause").await?;
    ns.apply_cluster(&cluster("nap", 2, "")).await?;
    ns.wait_ready("nap").await?;
    let password = ns.secret_value("nap-auth", "password").await?;
    let first = pod_addr(&ns.pods("nap").await?[0]).unwrap();
    let mut c = cluster_client(&first, &password).await?;
    for i in 0..500 {
        let _: () = redis::cmd("SET")
            .arg(format!("p{i}"))
            .arg(i)
            .query_async(&mut c)
            .await?;
    }
    let _: () = redis::cmd("EXPIRE")
        .arg("p0")
        .arg(3600)
        .query_async(&mut c)
        .await?;

    // Paused: a snapshot, then no pods; the resource stays.
    let paused_at = Instant::now();
    ns.apply_cluster(&(cluster("nap", 2, "") + "  paused: true\n"))
        .await?;
    let cc = wait_phase(&ns, "nap", "Paused").await?;
    let h = cc.status.unwrap().hibernation.unwrap();
    assert_eq!(h.phase, "Paused");
    wait_for("the pods gone", timeout(), || async {
        Ok(ns.pods("nap").await?.is_empty().then_some(()))
    })
    .await?;
    println!(
        "paused {:.1} s after it was asked",
        paused_at.elapsed().as_secs_f64()
    );

    // Unpaused: pods again, the snapshot restored into them.
    let resumed_at = Instant::now();
    ns.apply_cluster(&cluster("nap", 2, "")).await?;
    let cc = ns.wait_ready("nap").await?;
    let status = cc.status.unwrap();
    assert!(status.hibernation.is_none(), "{:?}", status.hibernation);
    assert_eq!(status.restore.as_ref().unwrap().keys, 500);
    println!(
        "resumed {:.1} s after it was asked",
        resumed_at.elapsed().as_secs_f64()
    );
    let first = pod_addr(&ns.pods("nap").await?[0]).unwrap();
    let mut c = cluster_client(&first, &password).await?;
    for i in 0..500 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(format!("p{i}"))
            .query_async(&mut c)
            .await?;
        assert_eq!(v, Some(i), "p{i}");
    }
    let ttl: i64 = redis::cmd("TTL").arg("p0").query_async(&mut c).await?;
    assert!(ttl > 3000, "the TTL survives hibernation: {ttl}");
    ns.delete().await;
    Ok(())
}
