//! Replication between real nodes: a full sync of a keyspace under writes,
//! the stream after it, a partial resync after a broken link, `WAIT`,
//! `ROLE`, INFO, read-only replicas; in cluster mode, replicas that follow
//! the topology, `READONLY` reads, the write lease and promotion.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cache_node::Node;
use common::{install_topology as install, node};
use redis::AsyncCommands as _;
use tidecache_topology::protocol::Request;
use tidecache_topology::{NodeAddr, Shard, SlotRange, Topology, node_id_for};

type Conn = redis::aio::MultiplexedConnection;

async fn conn_as(n: &Node, user: Option<&str>, password: Option<&str>) -> Conn {
    common::redis_conn(n, user, password).await
}

/// `WAIT 1 5000`: how many replicas have every write so far.
async fn wait1(c: &mut Conn) -> i64 {
    redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(c)
        .await
        .unwrap()
}

async fn conn(n: &Node) -> Conn {
    conn_as(n, None, None).await
}

const STANDALONE: &[&str] = &["--admin-password", "adm"];

async fn info(c: &mut Conn) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(c)
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// Waits until `f` holds, polling, for at most 10 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `REPLICAOF` (an admin command: it makes the node log in to another
/// as the admin user, and replaces its keyspace).
async fn replicaof(replica: &Node, primary: &Node) {
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.addr.port())
        .query_async(&mut admin(replica).await)
        .await
        .unwrap();
}

async fn link_up(c: &mut Conn) {
    let c2 = c.clone();
    eventually("the replica's link to come up", move || {
        let mut c = c2.clone();
        async move {
            info(&mut c)
                .await
                .get("master_link_status")
                .map(String::as_str)
                == Some("up")
        }
    })
    .await;
    let _ = c;
}

/// Every key of a node with its value if a string, through SCAN and MGET.
async fn dump(c: &mut Conn) -> Vec<(String, Option<String>)> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(c)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    let mut out = Vec::new();
    for chunk in keys.chunks(500) {
        let values: Vec<Option<String>> = c.mget(chunk).await.unwrap();
        out.extend(chunk.iter().cloned().zip(values));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_copies_the_keyspace_and_follows_its_writes() {
    let primary = node(STANDALONE).await;
    let replica = node(STANDALONE).await;
    let mut p = conn(&primary).await;
    let mut r = conn(&replica).await;
    // Every type, with and without a deadline.
    for i in 0..20_000 {
        let _: () = p.set(format!("k{i}"), i).await.unwrap();
    }
    let _: () = p.rpush("list", &["a", "b", "c"]).await.unwrap();
    let _: () = p.hset("hash", "f", "v").await.unwrap();
    let _: () = p.sadd("set", "m").await.unwrap();
    let _: () = p.zadd("zset", "m", 1.5).await.unwrap();
    let _: () = p.set_ex("ttl", "v", 1000).await.unwrap();

    // Writes go on during the full sync.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut p = p.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _: () = p
                    .set(format!("k{}", n % 20_000), format!("w{n}"))
                    .await
                    .unwrap();
                let _: () = p.set(format!("during{n}"), n).await.unwrap();
                if n.is_multiple_of(7) {
                    let _: () = p.del(format!("k{}", (n * 31) % 20_000)).await.unwrap();
                }
                n += 1;
            }
            n
        })
    };
    replicaof(&replica, &primary).await;
    link_up(&mut r).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(
        written > 100,
        "the writer ran during the sync ({written} writes)"
    );

    // WAIT: every write before it is on the replica when it returns.
    let acked: i64 = wait1(&mut p).await;
    assert_eq!(acked, 1);
    assert_eq!(dump(&mut r).await, dump(&mut p).await);
    let list: Vec<String> = r.lrange("list", 0, -1).await.unwrap();
    assert_eq!(list, ["a", "b", "c"]);
    let score: f64 = r.zscore("zset", "m").await.unwrap();
    assert_eq!(score, 1.5);
    let ttl: i64 = r.ttl("ttl").await.unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");

    // The stream: a write, then WAIT, then it is there.
    let _: () = p.set("after", "sync").await.unwrap();
    let _: () = p.hset("hash", "g", "w").await.unwrap();
    let _: i64 = p.del("set").await.unwrap();
    let acked: i64 = wait1(&mut p).await;
    assert_eq!(acked, 1);
    let v: String = r.get("after").await.unwrap();
    assert_eq!(v, "sync");
    let h: HashMap<String, String> = r.hgetall("hash").await.unwrap();
    assert_eq!(h.len(), 2);
    let exists: bool = r.exists("set").await.unwrap();
    assert!(!exists);

    // A replica refuses writes; reads are served.
    let e = r.set::<_, _, ()>("x", 1).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    let e = redis::cmd("FLUSHALL")
        .query_async::<()>(&mut r)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    let e = redis::cmd("WAIT")
        .arg(1)
        .arg(0)
        .query_async::<i64>(&mut r)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("replica"), "{e}");

    // FLUSHALL on the primary empties the replica.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut p).await.unwrap();
    let _: () = p.set("only", "1").await.unwrap();
    let _: i64 = wait1(&mut p).await;
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut r).await.unwrap();
    assert_eq!(size, 1);

    // ROLE and INFO on both ends.
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut p).await.unwrap();
    let redis::Value::Array(role) = role else {
        panic!("{role:?}")
    };
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    let redis::Value::Array(replicas) = &role[2] else {
        panic!("{role:?}")
    };
    assert_eq!(replicas.len(), 1);
    let role: (String, String, u16, String, i64) =
        redis::cmd("ROLE").query_async(&mut r).await.unwrap();
    assert_eq!(
        (role.0.as_str(), role.2, role.3.as_str()),
        ("slave", primary.addr.port(), "connected")
    );
    let pi = info(&mut p).await;
    let ri = info(&mut r).await;
    assert_eq!(pi["role"], "master");
    assert_eq!(pi["connected_slaves"], "1");
    assert!(pi["slave0"].contains("state=online"), "{}", pi["slave0"]);
    assert_eq!(ri["role"], "slave");
    assert_eq!(ri["master_replid"], pi["master_replid"]);
    assert_eq!(ri["master_repl_offset"], pi["master_repl_offset"]);
    assert_eq!(ri["tidecache_full_syncs"], "1");

    // REPLICAOF NO ONE: a primary again, with the data, taking writes.
    let e = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async::<()>(&mut r)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NOPERM"), "admin only: {e}");
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut admin(&replica).await)
        .await
        .unwrap();
    let _: () = r.set("mine", "now").await.unwrap();
    let v: String = r.get("only").await.unwrap();
    assert_eq!(v, "1");
    assert_eq!(info(&mut r).await["role"], "master");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_link_resumes_from_the_backlog() {
    let primary = node(STANDALONE).await;
    let replica = node(STANDALONE).await;
    let mut p = conn(&primary).await;
    let mut r = conn(&replica).await;
    for i in 0..1000 {
        let _: () = p.set(format!("k{i}"), i).await.unwrap();
    }
    replicaof(&replica, &primary).await;
    link_up(&mut r).await;
    // Kill the replica's connection on the primary, write meanwhile.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut p)
        .await
        .unwrap();
    let link = clients
        .lines()
        .find(|l| l.contains("user=tidecache-admin"))
        .expect("the replica's connection");
    let id = link
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("id=");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut p)
        .await
        .unwrap();
    for i in 0..100 {
        let _: () = p.set(format!("gap{i}"), i).await.unwrap();
    }
    let acked: i64 = wait1(&mut p).await;
    assert_eq!(acked, 1);
    assert_eq!(dump(&mut r).await, dump(&mut p).await);
    let ri = info(&mut r).await;
    assert_eq!(ri["tidecache_full_syncs"], "1", "{ri:?}");
    assert_eq!(ri["tidecache_partial_syncs"], "1", "{ri:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_counts_only_replicas_that_have_the_writes() {
    let primary = node(STANDALONE).await;
    let mut p = conn(&primary).await;
    let _: () = p.set("a", 1).await.unwrap();
    // No replica: 0 once the timeout ends, and at once for 0 replicas.
    let started = Instant::now();
    let n: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(200)
        .query_async(&mut p)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(190));
    let n: i64 = redis::cmd("WAIT")
        .arg(0)
        .arg(0)
        .query_async(&mut p)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let e = redis::cmd("WAIT")
        .arg(1)
        .arg(-1)
        .query_async::<i64>(&mut p)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timeout is negative"), "{e}");
    // Two replicas.
    let r1 = node(STANDALONE).await;
    let r2 = node(STANDALONE).await;
    for r in [&r1, &r2] {
        let mut c = conn(r).await;
        replicaof(r, &primary).await;
        link_up(&mut c).await;
    }
    let _: () = p.set("b", 2).await.unwrap();
    let n: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(5000)
        .query_async(&mut p)
        .await
        .unwrap();
    assert_eq!(n, 2);
    // One goes away: WAIT 2 times out with 1.
    drop(r2);
    let _: () = p.set("c", 3).await.unwrap();
    let n: i64 = wait1(&mut p).await;
    assert!(n >= 1);
    let v: String = conn(&r1).await.get("c").await.unwrap();
    assert_eq!(v, "3");
}

// ----- cluster mode -----

/// Operator-style flags, with a short write lease for the lease tests.
fn cluster_flags(name: &str) -> Vec<&str> {
    let mut flags = common::cluster_flags(name);
    flags.extend(["--write-lease-ms", "600"]);
    flags
}

fn addr(name: &str, n: &Node) -> NodeAddr {
    NodeAddr {
        id: node_id_for(name),
        host: "127.0.0.1".into(),
        port: n.addr.port(),
    }
}

/// Nodes `<name>-a` (primary) and `<name>-b` (its replica) under the
/// document of epoch 1, and a client of A.
async fn shard_of_two(name: &str) -> (Node, Node, Conn) {
    let (an, bn) = (format!("{name}-a"), format!("{name}-b"));
    let a = node(&cluster_flags(&an)).await;
    let b = node(&cluster_flags(&bn)).await;
    let d1 = doc(1, (&an, &a), (&bn, &b));
    install(&a, &d1).await;
    install(&b, &d1).await;
    let ca = conn_as(&a, None, Some("pw")).await;
    (a, b, ca)
}

/// One shard of every slot: `primary` and `replica`.
fn doc(epoch: u64, primary: (&str, &Node), replica: (&str, &Node)) -> Topology {
    Topology {
        epoch,
        shards: vec![Shard {
            name: "s".into(),
            slots: vec![SlotRange::new(0, 16383).unwrap()],
            primary: addr(primary.0, primary.1),
            replicas: vec![addr(replica.0, replica.1)],
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_replicas_follow_the_topology_fence_and_take_over() {
    let (a, b, mut ca) = shard_of_two("rep").await;
    let mut cb = conn_as(&b, None, Some("pw")).await;
    for i in 0..500 {
        let _: () = ca.set(format!("k{i}"), i).await.unwrap();
    }
    let n: i64 = wait1(&mut ca).await;
    assert_eq!(n, 1);

    // The replica redirects to its primary, unless the client sent READONLY.
    let e = cb.get::<_, String>("k1").await.unwrap_err();
    assert_eq!(e.code(), Some("MOVED"), "{e}");
    let _: () = redis::cmd("READONLY").query_async(&mut cb).await.unwrap();
    let v: String = cb.get("k1").await.unwrap();
    assert_eq!(v, "1");
    let e = cb.set::<_, _, ()>("k1", 0).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("MOVED"),
        "writes still go to the primary: {e}"
    );
    let _: () = redis::cmd("READWRITE").query_async(&mut cb).await.unwrap();
    assert!(cb.get::<_, String>("k1").await.is_err());

    // The lease: while the replica fetches, A takes writes. With the
    // replica gone and no word from the operator, A stops within a lease.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let _: () = ca.set("still", "ok").await.unwrap();
    let n: i64 = wait1(&mut ca).await;
    assert_eq!(n, 1);
    drop(cb);
    drop(b);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let e = ca.set::<_, _, ()>("lost", "lease").await.unwrap_err();
    assert_eq!(e.code(), Some("CLUSTERDOWN"), "{e}");
    let v: String = ca.get("still").await.unwrap();
    assert_eq!(v, "ok", "reads go on");

    // A new replica, C, promoted under epoch 2: it has every write A
    // acknowledged to WAIT, waits out A's lease, then takes writes; A,
    // told it is C's replica, follows C and refuses writes.
    let c = node(&cluster_flags("rep-c")).await;
    let d2 = doc(2, ("rep-a", &a), ("rep-c", &c));
    install(&a, &d2).await; // renews A's lease
    install(&c, &d2).await;
    let _: () = ca.set("before-failover", "1").await.unwrap();
    let n: i64 = wait1(&mut ca).await;
    assert_eq!(n, 1);
    let d3 = doc(3, ("rep-c", &c), ("rep-a", &a));
    install(&c, &d3).await;
    let promoted = Instant::now();
    // A follows C (a full sync: its history is not C's), which renews
    // C's lease as a replica's fetches do.
    install(&a, &d3).await;
    let mut cc = conn_as(&c, None, Some("pw")).await;
    let first = loop {
        match cc.set::<_, _, ()>("after-failover", "1").await {
            Ok(()) => break promoted.elapsed(),
            Err(e) => assert_eq!(e.code(), Some("TRYAGAIN"), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        first >= Duration::from_millis(550),
        "first write after {first:?}"
    );
    let v: String = cc.get("before-failover").await.unwrap();
    assert_eq!(v, "1");
    let e = ca.set::<_, _, ()>("k1", 0).await.unwrap_err();
    assert_eq!(e.code(), Some("MOVED"), "{e}");
    let n: i64 = wait1(&mut cc).await;
    assert_eq!(n, 1, "the old primary follows the new one");
    let _: () = redis::cmd("READONLY").query_async(&mut ca).await.unwrap();
    let v: String = ca.get("after-failover").await.unwrap();
    assert_eq!(v, "1");
    let missing: Option<String> = ca.get("lost").await.unwrap();
    assert_eq!(missing, None);
}

async fn admin(n: &Node) -> Conn {
    conn_as(n, Some("tidecache-admin"), Some("adm")).await
}

/// A planned switchover loses nothing: the primary is fenced, the replica
/// catches up to the fence's offset and is promoted without waiting out a
/// lease; a write sent to the old primary meanwhile waits, then follows
/// the redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_switchover_fences_catches_up_and_promotes() {
    let (a, b, mut ca) = shard_of_two("sw").await;
    for i in 0..2000 {
        let _: () = ca.set(format!("k{i}"), i).await.unwrap();
    }
    // Orders for another epoch are refused.
    let e = Request::LeaseFence { epoch: 7 }
        .cmd()
        .query_async::<()>(&mut admin(&a).await)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("STALE"), "{e}");
    let e = Request::LeaseRenew {
        epoch: 1,
        clock: None,
    }
    .cmd()
    .query_async::<()>(&mut admin(&b).await)
    .await
    .unwrap_err();
    assert_eq!(e.code(), Some("STALE"), "a replica holds no lease: {e}");

    let (replid, end): (String, u64) = Request::LeaseFence { epoch: 1 }
        .cmd()
        .query_async(&mut admin(&a).await)
        .await
        .unwrap();
    // A write now waits on the fenced primary.
    let mut late = conn_as(&a, None, Some("pw")).await;
    let pending = tokio::spawn(async move { late.set::<_, _, ()>("late", 1).await });
    let mut cb_admin = admin(&b).await;
    eventually("the replica to reach the fence", || {
        let mut c = cb_admin.clone();
        let replid = replid.clone();
        async move {
            let i = info(&mut c).await;
            i["master_replid"] == replid && i["slave_repl_offset"].parse::<u64>().unwrap() >= end
        }
    })
    .await;
    let d2 = doc(2, ("sw-b", &b), ("sw-a", &a));
    install(&b, &d2).await;
    let _: () = Request::LeaseWaive { epoch: 2 }
        .cmd()
        .query_async(&mut cb_admin)
        .await
        .unwrap();
    let mut cb = conn_as(&b, None, Some("pw")).await;
    let _: () = cb.set("first", "write").await.unwrap();
    install(&a, &d2).await;
    let e = pending.await.unwrap().unwrap_err();
    assert_eq!(
        e.code(),
        Some("MOVED"),
        "the held write follows the redirect: {e}"
    );
    for i in (0..2000).step_by(97) {
        let v: i64 = cb.get(format!("k{i}")).await.unwrap();
        assert_eq!(v, i);
    }
    let n: i64 = wait1(&mut cb).await;
    assert_eq!(n, 1, "the old primary now follows the new one");
}

/// A node that restarted empty (no topology yet) is never a source: a
/// replica that reconnects to it keeps its data instead of syncing the
/// emptiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_empty_primary_is_not_synced_from() {
    let (a, b, mut ca) = shard_of_two("fresh").await;
    let _: () = ca.set("precious", "data").await.unwrap();
    let n: i64 = wait1(&mut ca).await;
    assert_eq!(n, 1);
    // A's process dies; a fresh one comes up on the same port.
    let port = a.addr.port();
    drop(ca);
    drop(a);
    let port_s = port.to_string();
    let mut flags = cluster_flags("fresh-a");
    flags.retain(|f| *f != "0");
    let mut argv: Vec<&str> = flags.clone();
    argv.extend(["--port", &port_s]);
    let fresh = loop {
        // The old listener may take a moment to close.
        let config = <cache_node::config::Config as clap::Parser>::try_parse_from(
            [
                "cache-node",
                "--bind",
                "127.0.0.1",
                "--shutdown-timeout",
                "1",
            ]
            .into_iter()
            .chain(argv.iter().copied()),
        )
        .unwrap()
        .resolve()
        .unwrap();
        match Node::start(config).await {
            Ok(n) => break n,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    // The replica tries the fresh node for a while and keeps its data.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut cb = conn_as(&b, None, Some("pw")).await;
    let _: () = redis::cmd("READONLY").query_async(&mut cb).await.unwrap();
    let v: Option<String> = cb.get("precious").await.unwrap();
    assert_eq!(v.as_deref(), Some("data"));
    let i = info(&mut cb).await;
    assert_eq!(i["master_link_status"], "down", "{i:?}");
    assert_eq!(i["tidecache_full_syncs"], "1");
    drop(fresh);
}

/// A replica made primary before its first full sync completed (the
/// operator saw it synced, then its link broke and a new sync began) holds
/// part of the keyspace at best. It must not serve it, nor be synced from
/// (its replicas would drop their whole copies for its partial one): it
/// answers `LOADING`, refuses replication, and says so in INFO, where the
/// operator sees a lost primary. A later document that makes it a replica
/// again has it sync as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_promoted_in_the_middle_of_a_full_sync_serves_nothing() {
    let a = node(&cluster_flags("inc-a")).await;
    let b = node(&cluster_flags("inc-b")).await;
    let c = node(&cluster_flags("inc-c")).await;
    // A holds no topology yet: it refuses to be synced from, so B, its
    // replica, stays in its first sync.
    install(&b, &doc(1, ("inc-a", &a), ("inc-b", &b))).await;
    let mut admin_b = conn_as(&b, Some("tidecache-admin"), Some("adm")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let i = info(&mut admin_b).await;
    assert_eq!(i["role"], "slave", "{i:?}");
    assert_eq!(i["master_replid"], "0".repeat(40), "never synced: {i:?}");

    let d2 = doc(2, ("inc-b", &b), ("inc-c", &c));
    install(&b, &d2).await;
    install(&c, &d2).await;
    let mut cb = conn_as(&b, None, Some("pw")).await;
    let e = cb.get::<_, String>("k").await.unwrap_err();
    assert_eq!(e.code(), Some("LOADING"), "{e}");
    let e = cb.set::<_, _, ()>("k", 1).await.unwrap_err();
    assert_eq!(e.code(), Some("LOADING"), "{e}");
    let i = info(&mut admin_b).await;
    assert_eq!(i["role"], "master", "{i:?}");
    assert_eq!(i["master_sync_in_progress"], "1", "{i:?}");
    assert_eq!(i["tidecache_incomplete_keyspace"], "1", "{i:?}");
    // C, told to follow B, is refused and stays unsynced.
    let admin_c = conn_as(&c, Some("tidecache-admin"), Some("adm")).await;
    eventually("C to be refused by B", || {
        let mut c = admin_c.clone();
        async move {
            info(&mut c)
                .await
                .get("tidecache_link_error")
                .is_some_and(|e| e.contains("replicas do not chain"))
        }
    })
    .await;

    // Made A's replica again, with A a primary holding data, B syncs.
    let d3 = doc(3, ("inc-a", &a), ("inc-b", &b));
    install(&a, &d3).await;
    let mut ca = conn_as(&a, None, Some("pw")).await;
    let _: () = ca.set("k", "from-a").await.unwrap();
    install(&b, &d3).await;
    let n: i64 = wait1(&mut ca).await;
    assert_eq!(n, 1, "B synced from A");
    let i = info(&mut admin_b).await;
    assert_eq!(i["role"], "slave", "{i:?}");
    assert!(!i.contains_key("tidecache_incomplete_keyspace"), "{i:?}");
    let _: () = redis::cmd("READONLY").query_async(&mut cb).await.unwrap();
    let v: String = cb.get("k").await.unwrap();
    assert_eq!(v, "from-a");
}

/// A whole replica whose fetch was refused (its primary became a replica
/// first, as in a switchover that reaches the old primary before the new
/// one) forgets its offset but not its keyspace: promoted, it serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_replica_whose_fetch_was_refused_serves_when_promoted() {
    let (a, b, mut ca) = shard_of_two("ref").await;
    let _: () = ca.set("k", "v").await.unwrap();
    let n: i64 = wait1(&mut ca).await;
    assert_eq!(n, 1);
    // A follows B first: B's next fetch is refused.
    let d2 = doc(2, ("ref-b", &b), ("ref-a", &a));
    install(&a, &d2).await;
    let mut admin_b = conn_as(&b, Some("tidecache-admin"), Some("adm")).await;
    eventually("B's fetch to be refused", || {
        let mut c = admin_b.clone();
        async move {
            info(&mut c)
                .await
                .get("tidecache_link_error")
                .is_some_and(|e| e.contains("replicas do not chain"))
        }
    })
    .await;
    install(&b, &d2).await;
    let i = info(&mut admin_b).await;
    assert!(!i.contains_key("tidecache_incomplete_keyspace"), "{i:?}");
    let mut cb = conn_as(&b, None, Some("pw")).await;
    let v: String = cb.get("k").await.unwrap();
    assert_eq!(v, "v");
}

/// A replica's request renews the write lease to when the primary last
/// replied to it, not to when the request arrives: one that a partition held
/// up in TCP retransmission and that lands once it heals (sent here by hand,
/// long after the replica went) does not let a primary that lost its lease
/// take writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replica_request_does_not_renew_the_lease() {
    let (a, b, mut ca) = shard_of_two("late").await;
    let _: () = ca.set("k", "v").await.unwrap();
    let n: i64 = wait1(&mut ca).await;
    assert_eq!(n, 1, "B follows A");
    // B goes; A's lease (600 ms here) runs out.
    drop(b);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = ca.set::<_, _, ()>("k", "w").await.unwrap_err();
    assert_eq!(e.code(), Some("CLUSTERDOWN"), "{e}");
    // B's fetch arrives now.
    let mut admin = conn_as(&a, Some("tidecache-admin"), Some("adm")).await;
    let i = info(&mut admin).await;
    let (replid, offset) = (&i["master_replid"], &i["master_repl_offset"]);
    let _: redis::Value = Request::ReplFetch {
        replica: &node_id_for("late-b"),
        replid,
        offset: offset.parse().unwrap(),
    }
    .cmd()
    .query_async(&mut admin)
    .await
    .unwrap();
    let e = ca.set::<_, _, ()>("k", "w").await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("CLUSTERDOWN"),
        "a late fetch renews nothing: {e}"
    );
}

/// The operator's renewal carries the node's lease clock as the operator
/// last read it (INFO's `tidecache_lease_clock_ms`): one held up in the
/// network renews nothing past that reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_renewal_renews_up_to_the_clock_it_carries() {
    let a = node(&cluster_flags("clk-a")).await;
    let ghost = node(&cluster_flags("clk-ghost")).await;
    install(&a, &doc(1, ("clk-a", &a), ("clk-ghost", &ghost))).await;
    drop(ghost);
    let mut admin = conn_as(&a, Some("tidecache-admin"), Some("adm")).await;
    let clock = |c: &mut Conn| {
        let mut c = c.clone();
        async move {
            info(&mut c).await["tidecache_lease_clock_ms"]
                .parse::<u64>()
                .unwrap()
        }
    };
    let renew = |c: &mut Conn, at: u64| {
        let mut c = c.clone();
        async move {
            Request::LeaseRenew {
                epoch: 1,
                clock: Some(at),
            }
            .cmd()
            .query_async::<()>(&mut c)
            .await
            .unwrap()
        }
    };
    let early = clock(&mut admin).await;
    let mut ca = conn_as(&a, None, Some("pw")).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = ca.set::<_, _, ()>("k", "v").await.unwrap_err();
    assert_eq!(e.code(), Some("CLUSTERDOWN"), "{e}");
    renew(&mut admin, early).await;
    let e = ca.set::<_, _, ()>("k", "v").await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("CLUSTERDOWN"),
        "an old reading renews nothing: {e}"
    );
    let now = clock(&mut admin).await;
    renew(&mut admin, now).await;
    let _: () = ca.set("k", "v").await.unwrap();
    // No clock (an older operator) means now; other orders take none.
    let _: () = Request::LeaseRenew {
        epoch: 1,
        clock: None,
    }
    .cmd()
    .query_async(&mut admin)
    .await
    .unwrap();
    // Malformed on purpose: WAIVE takes no clock.
    let e: redis::RedisResult<()> = redis::cmd("TIDECACHE")
        .arg("LEASE")
        .arg("WAIVE")
        .arg(1)
        .arg(5)
        .query_async(&mut admin)
        .await;
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("wrong number of arguments")
    );
}
