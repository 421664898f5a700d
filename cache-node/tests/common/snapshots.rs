//! Helpers of the snapshot tests: nodes on a snapshot store, the admin
//! requests that snapshot and restore, and a typed view of keys to compare.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cache_node::Node;
use redis::aio::MultiplexedConnection;
use tidecache_topology::protocol::Request;
use tidecache_topology::{NodeAddr, Shard, SlotRange, Topology, key_slot, node_id_for};

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidecache-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Flags of a node on `store`, zstd and encryption on.
pub fn store_flags(store: &str, key_file: &str) -> Vec<String> {
    [
        "--snapshot-store",
        store,
        "--snapshot-zstd-level",
        "3",
        "--snapshot-encryption-key-file",
        key_file,
    ]
    .map(String::from)
    .to_vec()
}

pub async fn start(name: Option<&str>, extra: &[String]) -> Node {
    let mut flags: Vec<&str> = match name {
        Some(n) => super::cluster_flags(n),
        None => vec!["--admin-password", "adm"],
    };
    flags.extend(extra.iter().map(String::as_str));
    super::node(&flags).await
}

pub async fn admin(n: &Node) -> MultiplexedConnection {
    super::redis_conn(n, Some("tidecache-admin"), Some("adm")).await
}

/// Polls a job's STATUS until it is no longer running; its fields.
pub async fn wait_job(
    c: &mut MultiplexedConnection,
    status: Request<'_>,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fields: BTreeMap<String, String> = status.cmd().query_async(c).await.unwrap();
        if fields["phase"] != "running" {
            return fields;
        }
        assert!(Instant::now() < deadline, "job still running: {fields:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn restore(
    n: &Node,
    id: &str,
    snapshot: Option<&str>,
    objects: &[&str],
) -> BTreeMap<String, String> {
    let mut c = admin(n).await;
    let _: () = Request::RestoreStart {
        id,
        snapshot,
        objects: objects.to_vec(),
    }
    .cmd()
    .query_async(&mut c)
    .await
    .unwrap();
    wait_job(&mut c, Request::RestoreStatus).await
}

/// Every type, with and without deadlines.
pub async fn populate(c: &mut MultiplexedConnection, keys: usize) {
    for i in 0..keys {
        let k = format!("k{i}");
        let mut p = redis::pipe();
        match i % 5 {
            0 => p.cmd("SET").arg(&k).arg(format!("value-{i}")),
            1 => p.cmd("HSET").arg(&k).arg("f").arg(i).arg("g").arg("x"),
            2 => p.cmd("RPUSH").arg(&k).arg("a").arg(i).arg("c"),
            3 => p.cmd("SADD").arg(&k).arg("m").arg(i),
            _ => p
                .cmd("ZADD")
                .arg(&k)
                .arg(1.5)
                .arg("m")
                .arg(i)
                .arg(format!("n{i}")),
        };
        if i % 3 == 0 {
            p.cmd("PEXPIRE").arg(&k).arg(600_000);
        }
        let _: () = p.query_async(c).await.unwrap();
    }
}

/// A key's type, contents (in a fixed order) and whether it has a deadline.
pub async fn read(c: &mut MultiplexedConnection, k: &str) -> (String, Vec<String>, bool) {
    let t: String = redis::cmd("TYPE").arg(k).query_async(c).await.unwrap();
    let mut v: Vec<String> = match t.as_str() {
        "string" => vec![redis::cmd("GET").arg(k).query_async(c).await.unwrap()],
        "hash" => redis::cmd("HGETALL").arg(k).query_async(c).await.unwrap(),
        "list" => redis::cmd("LRANGE")
            .arg(k)
            .arg(0)
            .arg(-1)
            .query_async(c)
            .await
            .unwrap(),
        "set" => redis::cmd("SMEMBERS").arg(k).query_async(c).await.unwrap(),
        "zset" => redis::cmd("ZRANGE")
            .arg(k)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(c)
            .await
            .unwrap(),
        _ => vec![],
    };
    if t == "set" || t == "hash" {
        v.sort();
    }
    let ttl: i64 = redis::cmd("PTTL").arg(k).query_async(c).await.unwrap();
    (t, v, ttl > 0)
}

pub fn two_shards(a: &Node, b: &Node) -> Topology {
    let addr = |name: &str, n: &Node| NodeAddr {
        id: node_id_for(name),
        host: "127.0.0.1".into(),
        port: n.addr.port(),
    };
    Topology {
        epoch: 1,
        shards: vec![
            Shard {
                name: "a".into(),
                slots: vec![SlotRange::new(0, 8191).unwrap()],
                primary: addr("rs-a", a),
                replicas: vec![],
            },
            Shard {
                name: "b".into(),
                slots: vec![SlotRange::new(8192, 16383).unwrap()],
                primary: addr("rs-b", b),
                replicas: vec![],
            },
        ],
    }
}

/// Two cluster-mode nodes on `flags`, splitting the slots in half, each
/// restored from `object` of snapshot `snapshot`; then checks that they
/// hold the `keys` keys `k0`, `k1`... between them, each once, every
/// `step`th as `source` has it. Returns the nodes.
pub async fn restore_into_two_shards(
    flags: &[String],
    snapshot: &str,
    object: &str,
    source: &Node,
    keys: usize,
    step: usize,
) -> (Node, Node) {
    let (a, b) = (
        start(Some("rs-a"), flags).await,
        start(Some("rs-b"), flags).await,
    );
    let doc = two_shards(&a, &b);
    super::install_topology(&a, &doc).await;
    super::install_topology(&b, &doc).await;
    for n in [&a, &b] {
        let done = restore(n, "r1", Some(snapshot), &[object]).await;
        assert_eq!(done["phase"], "done", "{done:?}");
    }
    let mut src = super::redis_conn(source, None, None).await;
    let (mut ca, mut cb) = (
        super::redis_conn(&a, None, Some("pw")).await,
        super::redis_conn(&b, None, Some("pw")).await,
    );
    let (na, nb): (usize, usize) = (
        redis::cmd("DBSIZE").query_async(&mut ca).await.unwrap(),
        redis::cmd("DBSIZE").query_async(&mut cb).await.unwrap(),
    );
    assert_eq!(na + nb, keys, "every key restored once");
    assert!(na > 0 && nb > 0, "both shards hold keys");
    for i in (0..keys).step_by(step) {
        let k = format!("k{i}");
        let owner = if key_slot(k.as_bytes()) < 8192 {
            &mut ca
        } else {
            &mut cb
        };
        assert_eq!(read(owner, &k).await, read(&mut src, &k).await, "{k}");
    }
    (a, b)
}
