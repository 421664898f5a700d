//! Cluster mode: nothing served before a topology, MOVED and CROSSSLOT after,
//! epochs enforced; and a cluster-aware client library against a node.

mod common;

use common::{Conn, node};
use tidecache_topology::protocol::Request;
use tidecache_topology::{NodeAddr, Shard, SlotRange, Topology, key_slot, node_id_for};

const FLAGS: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--requirepass",
    "pw",
    "--admin-password",
    "adm",
    "--node-name",
    "c-0-0",
];

fn doc(epoch: u64, my_port: u16) -> Topology {
    let addr = |name: &str, port| NodeAddr {
        id: node_id_for(name),
        host: "127.0.0.1".into(),
        port,
    };
    Topology {
        epoch,
        shards: vec![
            Shard {
                name: "c-0".into(),
                slots: vec![SlotRange::new(0, 8191).unwrap()],
                primary: addr("c-0-0", my_port),
                replicas: vec![],
            },
            Shard {
                name: "c-1".into(),
                slots: vec![SlotRange::new(8192, 16383).unwrap()],
                primary: addr("c-1-0", 7001),
                replicas: vec![],
            },
        ],
    }
}

#[tokio::test]
async fn a_cluster_node_serves_only_its_slots() {
    let n = node(FLAGS).await;
    let mut c = Conn::to(&n).await;
    c.call(&["AUTH", "pw"], "+OK\r\n").await;
    c.call(&["GET", "foo"], "-CLUSTERDOWN The cluster is down\r\n")
        .await;
    c.call(&["PING"], "+PONG\r\n").await;

    let mut admin = Conn::to(&n).await;
    admin
        .call(&["AUTH", "tidecache-admin", "adm"], "+OK\r\n")
        .await;
    admin
        .request(
            &Request::TopologySet {
                document: b"{bad json",
            },
            "-ERR invalid topology document: key must be a string at line 1 column 2\r\n",
        )
        .await;
    let json = doc(2, n.addr.port()).to_json();
    let set = Request::TopologySet {
        document: json.as_bytes(),
    };
    admin.request(&set, "+OK\r\n").await;
    admin.request(&set, "+OK\r\n").await;
    let older = doc(1, n.addr.port()).to_json();
    admin
        .request(
            &Request::TopologySet {
                document: older.as_bytes(),
            },
            "-STALE topology epoch 1 is older than the installed epoch 2\r\n",
        )
        .await;
    admin.request(&Request::TopologyEpoch, ":2\r\n").await;

    // "bar" hashes to 5061 (ours), "foo" to 12182 (the other shard's).
    assert_eq!(key_slot(b"bar"), 5061);
    c.call(&["SET", "bar", "1"], "+OK\r\n").await;
    c.call(&["GET", "foo"], "-MOVED 12182 127.0.0.1:7001\r\n")
        .await;
    c.call(
        &["MGET", "bar", "foo"],
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    )
    .await;
    c.call(&["MSET", "{bar}a", "1", "{bar}b", "2"], "+OK\r\n")
        .await;
    c.call(&["CLUSTER", "COUNTKEYSINSLOT", "5061"], ":3\r\n")
        .await;
    c.call(&["CLUSTER", "KEYSLOT", "foo"], ":12182\r\n").await;
    c.call(
        &["CLUSTER", "MYID"],
        &format!("${}\r\n{}\r\n", 40, node_id_for("c-0-0")),
    )
    .await;
    c.call(
        &["SELECT", "1"],
        "-ERR SELECT is not allowed in cluster mode\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn protocol_abuse_gets_an_error_and_a_disconnect() {
    let n = node(&["--proto-max-bulk-len", "1kb"]).await;
    let mut c = Conn::to(&n).await;
    c.send_raw(b"*1\r\n$2000\r\n").await;
    c.expect("-ERR Protocol error: invalid bulk length\r\n")
        .await;
    c.expect_closed().await;
    let mut c = Conn::to(&n).await;
    c.send_raw(b"*99999999\r\n").await;
    c.expect("-ERR Protocol error: invalid multibulk length\r\n")
        .await;
    c.expect_closed().await;
    let mut c = Conn::to(&n).await;
    c.send_raw(b"*1\r\n+PING\r\n").await;
    c.expect("-ERR Protocol error: expected '$', got '+'\r\n")
        .await;
    c.expect_closed().await;
    // The server is unharmed.
    let mut c = Conn::to(&n).await;
    c.call(&["PING"], "+PONG\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn the_query_buffer_is_bounded() {
    let n = node(&["--client-query-buffer-limit", "64kb"]).await;
    let mut c = Conn::to(&n).await;
    // A bulk that never completes: the node must drop the client, not buffer forever.
    c.send_raw(b"*2\r\n$3\r\nSET\r\n$1000000\r\n").await;
    let chunk = vec![b'x'; 16 * 1024];
    let mut closed = false;
    for _ in 0..20 {
        if tokio::io::AsyncWriteExt::write_all(&mut c.0, &chunk)
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    if !closed {
        c.expect_closed().await;
    }
    n.shutdown().await;
}

#[tokio::test]
async fn a_cluster_aware_client_works_against_a_standalone_node() {
    let n = node(&[]).await;
    let url = format!("redis://127.0.0.1:{}/", n.addr.port());
    let client = redis::cluster::ClusterClient::new(vec![url]).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for i in 0..200 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, i);
    }
    n.shutdown().await;
}
