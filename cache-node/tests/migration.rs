//! Atomic slot migration between two nodes: every key and every
//! acknowledged write arrives, clients follow one `MOVED` and never see
//! `ASK`, failures and aborts leave the source serving, and writes to a slot
//! being handed over wait for the handoff instead of being lost.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cache_node::Node;
use common::{Conn, node};
use redis::AsyncCommands as _;
use tidecache_topology::protocol::{ImportState, Request};
use tidecache_topology::{NodeAddr, Shard, SlotRange, SlotSet, Topology, key_slot, node_id_for};

fn flags(name: &str) -> Vec<&str> {
    common::cluster_flags(name)
}

/// A owns 0-8191, B 8192-16383.
fn doc(epoch: u64, a: &Node, b: &Node) -> Topology {
    let addr = |name: &str, n: &Node| NodeAddr {
        id: node_id_for(name),
        host: "127.0.0.1".into(),
        port: n.addr.port(),
    };
    Topology {
        epoch,
        shards: vec![
            Shard {
                name: "a".into(),
                slots: vec![SlotRange::new(0, 8191).unwrap()],
                primary: addr("mig-a", a),
                replicas: vec![],
            },
            Shard {
                name: "b".into(),
                slots: vec![SlotRange::new(8192, 16383).unwrap()],
                primary: addr("mig-b", b),
                replicas: vec![],
            },
        ],
    }
}

async fn conn(n: &Node, user: Option<&str>, password: &str) -> redis::aio::MultiplexedConnection {
    common::redis_conn(n, user, Some(password)).await
}

/// How import `id` stands on the node behind `adm`.
async fn import_state(adm: &mut redis::aio::MultiplexedConnection, id: &str) -> ImportState {
    Request::ImportStatus { id }
        .cmd()
        .query_async(adm)
        .await
        .map(|s: String| s.parse().expect("an import state"))
        .unwrap()
}

async fn admin(n: &Node) -> redis::aio::MultiplexedConnection {
    conn(n, Some("tidecache-admin"), "adm").await
}

async fn pair() -> (Node, Node) {
    let a = node(&flags("mig-a")).await;
    let b = node(&flags("mig-b")).await;
    let d = doc(1, &a, &b).to_json();
    for n in [&a, &b] {
        let _: () = Request::TopologySet {
            document: d.as_bytes(),
        }
        .cmd()
        .query_async(&mut admin(n).await)
        .await
        .unwrap();
    }
    (a, b)
}

/// Keys named `{prefix}{n}` whose slots fall in `slots`.
fn keys_in(prefix: &str, slots: std::ops::Range<u16>, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| slots.contains(&key_slot(k.as_bytes())))
        .take(count)
        .collect()
}

/// `TIDECACHE MIGRATE START <id> 127.0.0.1 <port> <epoch> <range>`, the
/// range as written (malformed ones too).
fn start(id: &str, port: u16, epoch: u64, range: &str) -> redis::Cmd {
    let mut c = Request::MigrateStart {
        id,
        host: "127.0.0.1",
        port,
        epoch,
        ranges: vec![],
    }
    .cmd();
    c.arg(range);
    c
}

async fn status(
    admin: &mut redis::aio::MultiplexedConnection,
    id: &str,
) -> HashMap<String, String> {
    Request::MigrateStatus { id: Some(id) }
        .cmd()
        .query_async(admin)
        .await
        .unwrap()
}

/// Polls until the migration ends; its last status.
async fn wait_ended(
    admin: &mut redis::aio::MultiplexedConnection,
    id: &str,
) -> HashMap<String, String> {
    for _ in 0..3000 {
        let s = status(admin, id).await;
        if ["done", "failed", "cancelled"].contains(&s["state"].as_str()) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("migration {id} did not end: {:?}", status(admin, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_moves_every_key_and_loses_no_acknowledged_write() {
    let (a, b) = pair().await;
    let mut ca = conn(&a, None, "pw").await;
    // Strings (some with a deadline, some long), and one of each collection,
    // in the slots that move; others that stay.
    let moving = keys_in("k", 0..4096, 3000);
    for (i, k) in moving.iter().enumerate() {
        let v = if i % 100 == 0 {
            "x".repeat(1000)
        } else {
            format!("v{i}")
        };
        if i % 10 == 0 {
            let _: () = ca.pset_ex(k, v, 600_000).await.unwrap();
        } else {
            let _: () = ca.set(k, v).await.unwrap();
        }
    }
    let staying = keys_in("s", 4096..8192, 200);
    for k in &staying {
        let _: () = ca.set(k, "stays").await.unwrap();
    }
    let [list, hash, set, zset] = ["l", "h", "t", "z"].map(|p| keys_in(p, 0..4096, 1).remove(0));
    let _: () = ca.rpush(&list, &["a", "b", "c"]).await.unwrap();
    let _: () = ca
        .hset_multiple(&hash, &[("f1", "1"), ("f2", "2")])
        .await
        .unwrap();
    let _: () = ca.sadd(&set, &["m1", "m2"]).await.unwrap();
    let _: () = ca
        .zadd_multiple(&zset, &[(1.5, "one"), (-2.0, "two")])
        .await
        .unwrap();
    let counter = keys_in("c", 0..4096, 1).remove(0);

    // A cluster-aware writer: unique keys everywhere and a counter in a
    // moving slot, every acknowledged write recorded.
    let seeds = vec![format!("redis://:pw@127.0.0.1:{}", a.addr.port())];
    let cluster = redis::cluster::ClusterClient::new(seeds).unwrap();
    let mut cc = cluster.get_async_connection().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, counter, mut cc) = (stop.clone(), counter.clone(), cc.clone());
        tokio::spawn(async move {
            let (mut acked, mut incrs, mut errors) = (Vec::new(), 0u64, Vec::new());
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("w:{i}");
                match cc.set::<_, _, ()>(&key, i).await {
                    Ok(()) => acked.push((key, i)),
                    Err(e) => errors.push(e.to_string()),
                }
                match cc.incr::<_, _, u64>(&counter, 1).await {
                    Ok(_) => incrs += 1,
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (acked, incrs, errors)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut adm = admin(&a).await;
    let _: () = start("m1", b.addr.port(), 2, "0-4095")
        .query_async(&mut adm)
        .await
        .unwrap();
    let s = wait_ended(&mut adm, "m1").await;
    assert_eq!(s["state"], "done", "{s:?}");
    assert_eq!(s["commit_sent"], "1");
    assert_eq!(s["slots"], "0-4095");
    assert!(s["keys_copied"].parse::<u64>().unwrap() >= 3004, "{s:?}");
    assert!(s["pause_us"].parse::<u64>().unwrap() > 0, "{s:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (acked, incrs, errors) = writer.await.unwrap();
    assert!(errors.is_empty(), "client errors: {errors:?}");
    assert!(acked.len() > 100, "the writer ran: {}", acked.len());

    // Every acknowledged write, through the cluster client.
    for (key, v) in &acked {
        let got: Option<u64> = cc.get(key).await.unwrap();
        assert_eq!(got, Some(*v), "{key} (slot {})", key_slot(key.as_bytes()));
    }
    let n: u64 = cc.get(&counter).await.unwrap();
    assert_eq!(n, incrs, "every acknowledged INCR counted once");

    // The moved keys are B's now, deadlines and collections included.
    let mut cb = conn(&b, None, "pw").await;
    for (i, k) in moving.iter().enumerate() {
        let v: String = cb.get(k).await.unwrap();
        let want = if i % 100 == 0 {
            "x".repeat(1000)
        } else {
            format!("v{i}")
        };
        assert_eq!(v, want, "{k}");
        let ttl: i64 = cb.pttl(k).await.unwrap();
        if i % 10 == 0 {
            assert!(ttl > 500_000, "{k} kept its deadline: {ttl}");
        } else {
            assert_eq!(ttl, -1, "{k} has no deadline");
        }
    }
    let l: Vec<String> = cb.lrange(&list, 0, -1).await.unwrap();
    assert_eq!(l, ["a", "b", "c"]);
    let h: HashMap<String, String> = cb.hgetall(&hash).await.unwrap();
    assert_eq!(
        h,
        HashMap::from([("f1".into(), "1".into()), ("f2".into(), "2".into())])
    );
    let mut m: Vec<String> = cb.smembers(&set).await.unwrap();
    m.sort();
    assert_eq!(m, ["m1", "m2"]);
    let z: Vec<(String, f64)> = cb.zrange_withscores(&zset, 0, -1).await.unwrap();
    assert_eq!(z, [("two".into(), -2.0), ("one".into(), 1.5)]);

    // A redirects the moved slots, serves the others, and drops its copy.
    let slot = key_slot(moving[0].as_bytes());
    let err = ca.get::<_, String>(&moving[0]).await.unwrap_err();
    assert_eq!(err.code(), Some("MOVED"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{slot} 127.0.0.1:{}", b.addr.port())),
        "{err}"
    );
    for k in &staying {
        let v: String = ca.get(k).await.unwrap();
        assert_eq!(v, "stays");
    }
    let mut left = usize::MAX;
    for _ in 0..200 {
        left = 0;
        for slot in (0..4096).step_by(64) {
            let n: usize = redis::cmd("CLUSTER")
                .arg("COUNTKEYSINSLOT")
                .arg(slot)
                .query_async(&mut ca)
                .await
                .unwrap();
            left += n;
        }
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, 0, "the source dropped its copy");

    // Both nodes describe the new layout under the migration's epoch.
    for c in [&mut ca, &mut cb] {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(c)
            .await
            .unwrap();
        let b_line = nodes
            .lines()
            .find(|l| l.starts_with(&node_id_for("mig-b")))
            .unwrap();
        assert!(b_line.contains(" 0-4095 8192-16383"), "{nodes}");
        assert!(b_line.contains(" 2 connected"), "{nodes}");
    }
    let info: String = redis::cmd("INFO")
        .arg("migration")
        .query_async(&mut ca)
        .await
        .unwrap();
    assert!(info.contains("migration_m1:state=done,"), "{info}");

    // The operator's next document (epoch 2, the same layout) supersedes
    // the handoff on both nodes; an older one is refused.
    let mut next = doc(2, &a, &b);
    next.shards[0].slots = vec![SlotRange::new(4096, 8191).unwrap()];
    next.shards[1].slots = vec![
        SlotRange::new(0, 4095).unwrap(),
        SlotRange::new(8192, 16383).unwrap(),
    ];
    for n in [&a, &b] {
        let _: () = Request::TopologySet {
            document: next.to_json().as_bytes(),
        }
        .cmd()
        .query_async(&mut admin(n).await)
        .await
        .unwrap();
    }
    let v: String = cb.get(&moving[1]).await.unwrap();
    assert_eq!(v, "v1");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn migrations_that_cannot_run_are_refused_or_fail_leaving_the_source_serving() {
    let (a, b) = pair().await;
    let mut adm = admin(&a).await;
    let refused = |r: redis::RedisResult<()>| r.unwrap_err().to_string();
    let cases = [
        (
            "m",
            b.addr.port(),
            1,
            "0-10",
            "migration epoch 1 is not newer than epoch 1",
        ),
        (
            "m",
            b.addr.port(),
            2,
            "9000",
            "slot 9000 is not served by this node",
        ),
        ("m", a.addr.port(), 2, "0", "the target is this node"),
        ("bad id", b.addr.port(), 2, "0", "invalid migration id"),
        ("m", b.addr.port(), 2, "0-99999", "invalid slot range"),
    ];
    for (id, port, epoch, range, want) in cases {
        let e = refused(start(id, port, epoch, range).query_async(&mut adm).await);
        assert!(e.contains(want), "{e}");
    }
    let mut client = conn(&a, None, "pw").await;
    let e = refused(
        start("m", b.addr.port(), 2, "0")
            .query_async(&mut client)
            .await,
    );
    assert!(e.contains("has no permissions"), "{e}");

    // Nothing listens there: the migration fails, A keeps serving.
    let closed = common::free_port();
    let _: () = start("gone", closed, 2, "0-4095")
        .query_async(&mut adm)
        .await
        .unwrap();
    let s = wait_ended(&mut adm, "gone").await;
    assert_eq!(s["state"], "failed");
    assert!(s["error"].contains("cannot reach node"), "{s:?}");
    let key = keys_in("k", 0..4096, 1).remove(0);
    let _: () = client.set(&key, "still here").await.unwrap();

    // The target refuses slots it already serves: A keeps serving too.
    let mut adm_b = admin(&b).await;
    let e = refused(
        Request::ImportBegin {
            id: "x",
            epoch: 5,
            ranges: vec![SlotRange::new(8192, 8200).unwrap()],
        }
        .cmd()
        .query_async(&mut adm_b)
        .await,
    );
    assert!(
        e.contains("slot 8192 is already served by this node"),
        "{e}"
    );
    let v: String = client.get(&key).await.unwrap();
    assert_eq!(v, "still here");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn an_aborted_import_drops_what_it_received() {
    use cache_node::db::wire;
    use cache_node::db::{Value, ValueRef};
    let (a, b) = pair().await;
    let mut adm = admin(&b).await;
    let key = keys_in("k", 0..11, 1).remove(0);
    let other = keys_in("k", 11..4096, 1).remove(0);
    let begin = |id: &str, epoch: u64| {
        Request::ImportBegin {
            id,
            epoch,
            ranges: vec![SlotRange::new(0, 10).unwrap()],
        }
        .cmd()
    };
    let apply = |batch: &[u8]| Request::ImportApply { id: "i1", batch }.cmd();
    let _: () = begin("i1", 3).query_async(&mut adm).await.unwrap();
    let mut batch = Vec::new();
    let v = Value::Str("v".into());
    wire::put(&mut batch, key.as_bytes(), v.as_ref(), None);
    let n: i64 = apply(&batch).query_async(&mut adm).await.unwrap();
    assert_eq!(n, 1);
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut adm).await.unwrap();
    assert_eq!(size, 1);
    // The batch is applied on the bulk thread: a command pipelined behind
    // it still runs after it, and in a transaction it is applied inline.
    let more = keys_in("m", 0..11, 2);
    let batch_of = |key: &str| {
        let mut b = Vec::new();
        wire::put(&mut b, key.as_bytes(), v.as_ref(), None);
        b
    };
    let (n, size): (i64, i64) = redis::pipe()
        .add_command(apply(&batch_of(&more[0])))
        .cmd("DBSIZE")
        .query_async(&mut adm)
        .await
        .unwrap();
    assert_eq!((n, size), (1, 2));
    let (n, size): (i64, i64) = redis::pipe()
        .atomic()
        .add_command(apply(&batch_of(&more[1])))
        .cmd("DBSIZE")
        .query_async(&mut adm)
        .await
        .unwrap();
    assert_eq!((n, size), (1, 3));
    // Not served yet: clients are still sent to the source.
    let e = conn(&b, None, "pw")
        .await
        .get::<_, String>(&key)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("MOVED"));
    // A key outside the import, and a corrupt batch, are refused.
    let mut outside = Vec::new();
    wire::put(
        &mut outside,
        other.as_bytes(),
        ValueRef::Str(cache_node::db::StrRef::Inline(b"x")),
        None,
    );
    let e: redis::RedisResult<i64> = apply(&outside).query_async(&mut adm).await;
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("is not part of this import")
    );
    let e: redis::RedisResult<i64> = apply(&[1u8, 200]).query_async(&mut adm).await;
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("corrupt migration batch")
    );
    let _: () = Request::ImportAbort { id: "i1" }
        .cmd()
        .query_async(&mut adm)
        .await
        .unwrap();
    let state = import_state(&mut adm, "i1").await;
    assert_eq!(state, ImportState::Aborted);
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut adm).await.unwrap();
    assert_eq!(size, 0, "the partial copy is gone");
    let e: redis::RedisResult<()> = Request::ImportCommit { id: "i1" }
        .cmd()
        .query_async(&mut adm)
        .await;
    assert!(e.unwrap_err().to_string().contains("no such import"));
    // An id that ended never begins again: the same source arriving late
    // (or a retried BEGIN) cannot reopen it.
    let e: redis::RedisResult<()> = begin("i1", 3).query_async(&mut adm).await;
    assert!(
        e.unwrap_err()
            .to_string()
            .contains(&format!("already ended here: {}", ImportState::Aborted))
    );
    // Aborting an id this node never heard of forbids it: the operator
    // does that when it gives up on a source it cannot reach.
    let _: () = Request::ImportAbort { id: "late" }
        .cmd()
        .query_async(&mut adm)
        .await
        .unwrap();
    let state = import_state(&mut adm, "late").await;
    assert_eq!(state, ImportState::Aborted);
    let e: redis::RedisResult<()> = begin("late", 3).query_async(&mut adm).await;
    assert!(
        e.unwrap_err()
            .to_string()
            .contains(&format!("already ended here: {}", ImportState::Aborted))
    );

    // FLUSHALL on the target ends an import it emptied: the source's next
    // batch fails, so the move runs again rather than committing holes.
    let _: () = begin("i2", 4).query_async(&mut adm).await.unwrap();
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut conn(&b, None, "pw").await)
        .await
        .unwrap();
    let e: redis::RedisResult<i64> = Request::ImportApply {
        id: "i2",
        batch: batch.as_slice(),
    }
    .cmd()
    .query_async(&mut adm)
    .await;
    assert!(e.unwrap_err().to_string().contains("no such import"));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn writes_to_a_slot_being_handed_over_wait_for_the_handoff() {
    let (a, b) = pair().await;
    let key = "bar"; // slot 5061, A's
    let slot = key_slot(key.as_bytes());
    let slots = SlotSet::from_ranges(&[SlotRange::new(slot, slot).unwrap()]);
    let mut writer = Conn::to(&a).await;
    writer.call(&["AUTH", "pw"], "+OK\r\n").await;
    let mut reader = Conn::to(&a).await;
    reader.call(&["AUTH", "pw"], "+OK\r\n").await;
    writer.call(&["SET", key, "1"], "+OK\r\n").await;

    // A handoff that rolls back: the write waits, then runs here.
    a.shared.cluster.write().unwrap().freeze(5, &slots);
    writer.send(&["SET", key, "2"]).await;
    reader.call(&["GET", key], "$1\r\n1\r\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    reader.call(&["GET", key], "$1\r\n1\r\n").await;
    a.shared.cluster.write().unwrap().thaw(5);
    a.shared.unfrozen.notify_waiters();
    writer.expect("+OK\r\n").await;
    reader.call(&["GET", key], "$1\r\n2\r\n").await;

    // A flush would empty the slot after its last changes went: it waits.
    a.shared.cluster.write().unwrap().freeze(5, &slots);
    writer.send(&["FLUSHALL"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    reader.call(&["GET", key], "$1\r\n2\r\n").await;
    a.shared.cluster.write().unwrap().thaw(5);
    a.shared.unfrozen.notify_waiters();
    writer.expect("+OK\r\n").await;
    writer.call(&["SET", key, "2"], "+OK\r\n").await;

    // A transaction on the slot waits as a whole.
    writer.call(&["MULTI"], "+OK\r\n").await;
    writer.call(&["SET", key, "3"], "+QUEUED\r\n").await;
    a.shared.cluster.write().unwrap().freeze(6, &slots);
    writer.send(&["EXEC"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    reader.call(&["GET", key], "$1\r\n2\r\n").await;
    a.shared.cluster.write().unwrap().thaw(6);
    a.shared.unfrozen.notify_waiters();
    writer.expect("*1\r\n+OK\r\n").await;

    let mut tx = Conn::to(&a).await;
    tx.call(&["AUTH", "pw"], "+OK\r\n").await;
    tx.call(&["MULTI"], "+OK\r\n").await;
    tx.call(&["INCR", key], "+QUEUED\r\n").await;

    // A handoff that completes: the waiting write follows the new owner.
    a.shared.cluster.write().unwrap().freeze(7, &slots);
    writer.send(&["SET", key, "4"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    {
        let mut cluster = a.shared.cluster.write().unwrap();
        let to = NodeAddr {
            id: String::new(),
            host: "127.0.0.1".into(),
            port: b.addr.port(),
        };
        cluster.hand_off(slots.clone(), 7, Some(to)).unwrap();
        cluster.thaw(7);
    }
    a.shared.unfrozen.notify_waiters();
    writer
        .expect(&format!("-MOVED {slot} 127.0.0.1:{}\r\n", b.addr.port()))
        .await;
    // A transaction queued before the handoff is redirected whole at EXEC.
    tx.call(
        &["EXEC"],
        &format!("-MOVED {slot} 127.0.0.1:{}\r\n", b.addr.port()),
    )
    .await;
    tx.call(&["EXEC"], "-ERR EXEC without MULTI\r\n").await;

    // Reads of the slot are redirected too now; other slots are served.
    reader
        .call(
            &["GET", key],
            &format!("-MOVED {slot} 127.0.0.1:{}\r\n", b.addr.port()),
        )
        .await;
    let other = keys_in("s", 6000..8192, 1).remove(0);
    reader.call(&["SET", &other, "1"], "+OK\r\n").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_migration_rolls_back_on_both_nodes() {
    let (a, b) = pair().await;
    let mut ca = conn(&a, None, "pw").await;
    let keys = keys_in("k", 0..4096, 50_000);
    for chunk in keys.chunks(1000) {
        let mut p = redis::pipe();
        for k in chunk {
            p.set(k, "v").ignore();
        }
        let _: () = p.query_async(&mut ca).await.unwrap();
    }
    let mut adm = admin(&a).await;
    let _: () = start("c1", b.addr.port(), 2, "0-4095")
        .query_async(&mut adm)
        .await
        .unwrap();
    // One outgoing migration at a time.
    let e: redis::RedisResult<()> = start("c9", b.addr.port(), 9, "5000")
        .query_async(&mut adm)
        .await;
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("migration c1 is running; one at a time")
    );
    let _: () = Request::MigrateCancel { id: "c1" }
        .cmd()
        .query_async(&mut adm)
        .await
        .unwrap();
    let s = wait_ended(&mut adm, "c1").await;
    assert_eq!(s["state"], "cancelled", "{s:?}");
    assert_eq!(s["commit_sent"], "0", "a cancelled move never commits");
    let e: redis::RedisResult<()> = Request::MigrateCancel { id: "c1" }
        .cmd()
        .query_async(&mut adm)
        .await;
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("migration already ended: cancelled")
    );

    // The target dropped what it got; the source still serves every key,
    // and writes, in the slots.
    let mut adm_b = admin(&b).await;
    let state = import_state(&mut adm_b, "c1").await;
    assert_eq!(state, ImportState::Aborted);
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut adm_b).await.unwrap();
    assert_eq!(size, 0);
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut ca).await.unwrap();
    assert_eq!(size, 50_000);
    let _: () = ca.set(&keys[0], "after").await.unwrap();
    let v: String = ca.get(&keys[0]).await.unwrap();
    assert_eq!(v, "after");

    // A new migration of the same slots runs to the end afterwards.
    let _: () = start("c2", b.addr.port(), 3, "0-4095")
        .query_async(&mut adm)
        .await
        .unwrap();
    let s = wait_ended(&mut adm, "c2").await;
    assert_eq!(s["state"], "done", "{s:?}");
    let mut cb = conn(&b, None, "pw").await;
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut cb).await.unwrap();
    assert_eq!(size, 50_000);
    let v: String = cb.get(&keys[0]).await.unwrap();
    assert_eq!(v, "after");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_client_blocked_on_a_slot_that_moves_away_gets_its_redirect() {
    let (a, b) = pair().await;
    let key = "bar"; // slot 5061, A's
    let slot = key_slot(key.as_bytes());
    let mut blocked = Conn::to(&a).await;
    blocked.call(&["AUTH", "pw"], "+OK\r\n").await;
    blocked.send(&["BLPOP", key, "0"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The operator's next document gives the slot to B.
    let mut next = doc(3, &a, &b);
    next.shards[0].slots = vec![
        SlotRange::new(0, 5060).unwrap(),
        SlotRange::new(5062, 8191).unwrap(),
    ];
    next.shards[1].slots = vec![
        SlotRange::new(slot, slot).unwrap(),
        SlotRange::new(8192, 16383).unwrap(),
    ];
    let _: () = Request::TopologySet {
        document: next.to_json().as_bytes(),
    }
    .cmd()
    .query_async(&mut admin(&a).await)
    .await
    .unwrap();
    blocked
        .expect(&format!("-MOVED {slot} 127.0.0.1:{}\r\n", b.addr.port()))
        .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_target_at_maxmemory_refuses_the_stream_instead_of_growing() {
    let a = node(&flags("mig-a")).await;
    let mut b_flags = flags("mig-b");
    b_flags.extend(["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let b = node(&b_flags).await;
    let d = doc(1, &a, &b).to_json();
    for n in [&a, &b] {
        let _: () = Request::TopologySet {
            document: d.as_bytes(),
        }
        .cmd()
        .query_async(&mut admin(n).await)
        .await
        .unwrap();
    }
    // Fill B (its own slots) until it refuses writes.
    let mut cb = conn(&b, None, "pw").await;
    let value = "x".repeat(1000);
    let mut full = false;
    for k in keys_in("own", 8192..16384, 20_000) {
        if let Err(e) = cb.set::<_, _, ()>(&k, &value).await {
            assert_eq!(e.code(), Some("OOM"), "{e}");
            full = true;
            break;
        }
    }
    assert!(full, "B reached its maxmemory");
    let mut adm = admin(&b).await;
    let _: () = Request::ImportBegin {
        id: "m",
        epoch: 2,
        ranges: vec![SlotRange::new(0, 10).unwrap()],
    }
    .cmd()
    .query_async(&mut adm)
    .await
    .unwrap();
    let mut batch = Vec::new();
    let key = keys_in("k", 0..11, 1).remove(0);
    let v = cache_node::db::Value::Str(value.clone().into());
    cache_node::db::wire::put(&mut batch, key.as_bytes(), v.as_ref(), None);
    let e: redis::RedisResult<i64> = Request::ImportApply {
        id: "m",
        batch: batch.as_slice(),
    }
    .cmd()
    .query_async(&mut adm)
    .await;
    let e = e.unwrap_err().to_string();
    assert!(e.contains("cannot take the migration's keys"), "{e}");
    a.shutdown().await;
    b.shutdown().await;
}

/// `SLOTSTATS` reports each slot's own bytes, so the rebalance planner
/// balances what the slots hold, not just how many keys.
#[tokio::test]
async fn slot_stats_count_each_slots_own_bytes() {
    let (a, b) = pair().await;
    let mut c = conn(&a, None, "pw").await;
    // "hello" (slot 866) and "bar" (slot 5061) are both A's.
    let _: () = c.set("bar", "x").await.unwrap();
    let _: () = c.set("hello", vec![b'v'; 100_000]).await.unwrap();
    let flat: Vec<i64> = Request::SlotStats { load: false }
        .cmd()
        .query_async(&mut admin(&a).await)
        .await
        .unwrap();
    let stats: HashMap<i64, (i64, i64)> = flat.chunks(3).map(|c| (c[0], (c[1], c[2]))).collect();
    let (small, big) = (stats[&5061], stats[&866]);
    assert_eq!((small.0, big.0), (1, 1));
    assert!(
        big.1 > 100_000 && big.1 > 100 * small.1,
        "{small:?} {big:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// `SLOTSTATS LOAD` adds what each slot recently served, so a slot that is
/// hot but small weighs what it costs: here slot 866 ("hello") gets 50
/// reads and slot 5061 ("bar") none.
#[tokio::test]
async fn slot_stats_load_counts_each_slots_commands() {
    let (a, b) = pair().await;
    let mut c = conn(&a, None, "pw").await;
    let _: () = c.set("bar", "x").await.unwrap();
    let _: () = c.set("hello", "v").await.unwrap();
    for _ in 0..50 {
        let _: Option<String> = c.get("hello").await.unwrap();
    }
    let flat: Vec<i64> = Request::SlotStats { load: true }
        .cmd()
        .query_async(&mut admin(&a).await)
        .await
        .unwrap();
    let stats: HashMap<i64, (i64, i64, i64, i64)> = flat
        .chunks(5)
        .map(|c| (c[0], (c[1], c[2], c[3], c[4])))
        .collect();
    // The SET and the 50 GETs; the SET of "bar".
    assert_eq!(stats[&866].2, 51, "{stats:?}");
    assert_eq!(stats[&5061].2, 1, "{stats:?}");
    assert_eq!(stats[&866].0, 1);
    a.shutdown().await;
    b.shutdown().await;
}
