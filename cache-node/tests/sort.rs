//! `SORT` and `SORT_RO` against a node, reply for reply as Redis 7.0 gives
//! them: numeric and `ALPHA` order, `LIMIT`, `BY` and `GET` patterns
//! (strings and hash fields), `BY nosort`, `STORE`, errors; and in cluster
//! mode, patterns held to the sorted key's slot and the `STORE` key routed.

mod common;

use common::{Conn, node};
use tidecache_topology::{NodeAddr, Shard, SlotRange, Topology, key_slot, node_id_for};

async fn standalone() -> (cache_node::Node, Conn) {
    let n = node(&[]).await;
    let c = Conn::to(&n).await;
    (n, c)
}

/// A RESP array of bulk strings (`None` for nil).
fn bulks(items: &[Option<&str>]) -> String {
    let mut out = format!("*{}\r\n", items.len());
    for i in items {
        match i {
            Some(s) => out.push_str(&format!("${}\r\n{s}\r\n", s.len())),
            None => out.push_str("$-1\r\n"),
        }
    }
    out
}

fn all(items: &[&str]) -> String {
    bulks(&items.iter().map(|s| Some(*s)).collect::<Vec<_>>())
}

#[tokio::test]
async fn numbers_sort_by_value_and_limit_cuts_the_result() {
    let (_n, mut c) = standalone().await;
    c.call(&["RPUSH", "l", "3", "10", "1", "2.5", "-1"], ":5\r\n")
        .await;
    c.call(&["SORT", "l"], &all(&["-1", "1", "2.5", "3", "10"]))
        .await;
    c.call(&["SORT", "l", "DESC"], &all(&["10", "3", "2.5", "1", "-1"]))
        .await;
    c.call(&["SORT", "l", "LIMIT", "1", "2"], &all(&["1", "2.5"]))
        .await;
    c.call(&["SORT", "l", "LIMIT", "3", "-1"], &all(&["3", "10"]))
        .await;
    c.call(&["SORT", "l", "LIMIT", "-5", "1"], &all(&["-1"]))
        .await;
    c.call(&["SORT", "l", "LIMIT", "9", "2"], "*0\r\n").await;
    c.call(&["SORT_RO", "l", "desc", "limit", "0", "1"], &all(&["10"]))
        .await;
    // As strings, "10" comes before "2.5".
    c.call(
        &["SORT", "l", "ALPHA"],
        &all(&["-1", "1", "10", "2.5", "3"]),
    )
    .await;
    // Equal values: by the elements' bytes, so the order is defined.
    c.call(&["RPUSH", "eq", "1.0", "1", "01"], ":3\r\n").await;
    c.call(&["SORT", "eq"], &all(&["01", "1", "1.0"])).await;
    // Sets and sorted sets are sorted by their members' values too.
    c.call(&["SADD", "s", "b", "a", "c"], ":3\r\n").await;
    c.call(&["SORT", "s", "ALPHA", "DESC"], &all(&["c", "b", "a"]))
        .await;
    c.call(&["ZADD", "z", "1", "30", "2", "20", "3", "10"], ":3\r\n")
        .await;
    c.call(&["SORT", "z"], &all(&["10", "20", "30"])).await;
    c.call(&["SORT", "missing"], "*0\r\n").await;
}

#[tokio::test]
async fn by_and_get_patterns_name_other_keys_and_hash_fields() {
    let (_n, mut c) = standalone().await;
    c.call(&["RPUSH", "ids", "1", "2", "3"], ":3\r\n").await;
    for (id, weight, name) in [("1", "30", "one"), ("2", "10", "two"), ("3", "20", "three")] {
        c.call(&["SET", &format!("w_{id}"), weight], "+OK\r\n")
            .await;
        c.call(&["SET", &format!("name_{id}"), name], "+OK\r\n")
            .await;
        c.call(
            &["HSET", &format!("h_{id}"), "w", weight, "n", name],
            ":2\r\n",
        )
        .await;
    }
    c.call(&["SORT", "ids", "BY", "w_*"], &all(&["2", "3", "1"]))
        .await;
    c.call(
        &["SORT", "ids", "BY", "h_*->w", "DESC"],
        &all(&["1", "3", "2"]),
    )
    .await;
    c.call(
        &[
            "SORT", "ids", "BY", "w_*", "GET", "name_*", "GET", "#", "GET", "h_*->n",
        ],
        &all(&["two", "2", "two", "three", "3", "three", "one", "1", "one"]),
    )
    .await;
    // A missing key or field, or a key of another type, is nil.
    c.call(&["RPUSH", "ids", "4"], ":4\r\n").await;
    c.call(&["SET", "h_4", "not a hash"], "+OK\r\n").await;
    c.call(
        &[
            "SORT", "ids", "GET", "name_*", "GET", "h_*->n", "GET", "nostar",
        ],
        &bulks(&[
            Some("one"),
            Some("one"),
            None,
            Some("two"),
            Some("two"),
            None,
            Some("three"),
            Some("three"),
            None,
            None,
            None,
            None,
        ]),
    )
    .await;
    // A missing weight counts as 0; a weight that is not a number fails.
    c.call(&["SORT", "ids", "BY", "w_*"], &all(&["4", "2", "3", "1"]))
        .await;
    c.call(&["SET", "w_4", "heavy"], "+OK\r\n").await;
    c.call(
        &["SORT", "ids", "BY", "w_*"],
        "-ERR One or more scores can't be converted into double\r\n",
    )
    .await;
    // With ALPHA the weights are strings; a missing one sorts first.
    c.call(&["DEL", "w_2"], ":1\r\n").await;
    c.call(
        &["SORT", "ids", "BY", "w_*", "ALPHA"],
        &all(&["2", "3", "1", "4"]),
    )
    .await;
}

#[tokio::test]
async fn by_nosort_keeps_the_collections_own_order() {
    let (_n, mut c) = standalone().await;
    c.call(&["RPUSH", "l", "c", "a", "b"], ":3\r\n").await;
    c.call(&["SORT", "l", "BY", "nosort"], &all(&["c", "a", "b"]))
        .await;
    c.call(
        &["SORT", "l", "BY", "nosort", "DESC"],
        &all(&["b", "a", "c"]),
    )
    .await;
    c.call(
        &["SORT", "l", "BY", "nosort", "LIMIT", "1", "5", "GET", "#"],
        &all(&["a", "b"]),
    )
    .await;
    c.call(&["ZADD", "z", "3", "x", "1", "y", "2", "w"], ":3\r\n")
        .await;
    c.call(&["SORT", "z", "BY", "nosort"], &all(&["y", "w", "x"]))
        .await;
    c.call(
        &["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "0", "2"],
        &all(&["x", "w"]),
    )
    .await;
    // A set stored without sorting is sorted as strings: the stored list
    // does not depend on the set's layout.
    c.call(&["SADD", "s", "3", "1", "2", "10"], ":4\r\n").await;
    c.call(&["SORT", "s", "BY", "nosort", "STORE", "out"], ":4\r\n")
        .await;
    c.call(&["LRANGE", "out", "0", "-1"], &all(&["1", "10", "2", "3"]))
        .await;
}

#[tokio::test]
async fn store_writes_a_list_and_replaces_what_was_there() {
    let (_n, mut c) = standalone().await;
    c.call(&["RPUSH", "l", "2", "1", "3"], ":3\r\n").await;
    c.call(&["SET", "dst", "a string"], "+OK\r\n").await;
    c.call(&["SORT", "l", "STORE", "dst"], ":3\r\n").await;
    c.call(&["TYPE", "dst"], "+list\r\n").await;
    c.call(&["LRANGE", "dst", "0", "-1"], &all(&["1", "2", "3"]))
        .await;
    // GET values go in; a missing one is an empty string.
    c.call(&["SET", "v_2", "two"], "+OK\r\n").await;
    c.call(
        &["SORT", "l", "GET", "v_*", "GET", "#", "STORE", "dst"],
        ":6\r\n",
    )
    .await;
    c.call(
        &["LRANGE", "dst", "0", "-1"],
        &all(&["", "1", "two", "2", "", "3"]),
    )
    .await;
    // The last STORE wins; an empty result deletes the destination.
    c.call(&["SORT", "l", "STORE", "x", "STORE", "y"], ":3\r\n")
        .await;
    c.call(&["EXISTS", "x", "y"], ":1\r\n").await;
    c.call(&["SORT", "nothing", "STORE", "y"], ":0\r\n").await;
    c.call(&["EXISTS", "y"], ":0\r\n").await;
    c.call(&["SORT_RO", "l", "STORE", "z"], "-ERR syntax error\r\n")
        .await;
}

#[tokio::test]
async fn bad_arguments_and_types_get_redis_errors() {
    let (_n, mut c) = standalone().await;
    c.call(&["RPUSH", "l", "a"], ":1\r\n").await;
    c.call(
        &["SORT", "l"],
        "-ERR One or more scores can't be converted into double\r\n",
    )
    .await;
    c.call(&["SORT", "l", "LIMIT", "1"], "-ERR syntax error\r\n")
        .await;
    c.call(
        &["SORT", "l", "LIMIT", "x", "1"],
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.call(&["SORT", "l", "BY"], "-ERR syntax error\r\n").await;
    c.call(&["SORT", "l", "ALPHA", "sideways"], "-ERR syntax error\r\n")
        .await;
    c.call(&["SET", "str", "x"], "+OK\r\n").await;
    c.call(
        &["SORT", "str"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    c.call(
        &[
            "COMMAND", "GETKEYS", "SORT", "l", "LIMIT", "0", "1", "GET", "store", "STORE", "d",
        ],
        &all(&["l", "d"]),
    )
    .await;
    c.call(&["COMMAND", "GETKEYS", "SORT", "l", "ALPHA"], &all(&["l"]))
        .await;
}

/// One node serving every slot.
fn doc(port: u16) -> Topology {
    Topology {
        epoch: 1,
        shards: vec![Shard {
            name: "s-0".into(),
            slots: vec![SlotRange::new(0, 16383).unwrap()],
            primary: NodeAddr {
                id: node_id_for("s-0-0"),
                host: "127.0.0.1".into(),
                port,
            },
            replicas: vec![],
        }],
    }
}

#[tokio::test]
async fn in_cluster_mode_patterns_stay_in_the_sorted_keys_slot() {
    let n = node(&common::cluster_flags("s-0-0")).await;
    common::install_topology(&n, &doc(n.addr.port())).await;
    let mut c = Conn::to(&n).await;
    c.call(&["AUTH", "pw"], "+OK\r\n").await;
    c.call(&["RPUSH", "{u}ids", "2", "1"], ":2\r\n").await;
    c.call(&["SET", "{u}w_1", "9"], "+OK\r\n").await;
    c.call(
        &["SORT", "{u}ids", "BY", "w_*"],
        "-ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.\r\n",
    )
    .await;
    c.call(
        &["SORT", "{u}ids", "GET", "w_*"],
        "-ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.\r\n",
    )
    .await;
    // A hash tag keeps every key the pattern forms in the sorted key's slot.
    c.call(
        &["SORT", "{u}ids", "BY", "{u}w_*", "GET", "{u}w_*"],
        &bulks(&[None, Some("9")]),
    )
    .await;
    c.call(
        &["SORT", "{u}ids", "BY", "nosort", "GET", "#"],
        &all(&["2", "1"]),
    )
    .await;
    // STORE is a key like any other: it must share the slot.
    assert_ne!(key_slot(b"elsewhere"), key_slot(b"{u}ids"));
    c.call(
        &["SORT", "{u}ids", "STORE", "elsewhere"],
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    )
    .await;
    c.call(&["SORT", "{u}ids", "STORE", "{u}out"], ":2\r\n")
        .await;
}
