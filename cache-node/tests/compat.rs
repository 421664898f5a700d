//! Differences from Redis found by running redis-py's own command tests
//! against the node (docs/compatibility.md), each pinned here over real TCP.

mod common;

use common::{Conn, node};

/// redis-py's `test_config_get_multi_params` reads the compact-encoding
/// thresholds; they are reported (fixed, under both their listpack names and
/// the ziplist aliases) at the values OBJECT ENCODING goes by.
#[tokio::test]
async fn config_get_reports_the_encoding_thresholds() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(
        &["CONFIG", "GET", "*max-*-entries*"],
        "*12\r\n\
         $25\r\nhash-max-listpack-entries\r\n$3\r\n128\r\n\
         $24\r\nhash-max-ziplist-entries\r\n$3\r\n128\r\n\
         $25\r\nzset-max-listpack-entries\r\n$3\r\n128\r\n\
         $24\r\nzset-max-ziplist-entries\r\n$3\r\n128\r\n\
         $22\r\nset-max-intset-entries\r\n$3\r\n512\r\n\
         $24\r\nset-max-listpack-entries\r\n$3\r\n128\r\n",
    )
    .await;
    c.call(
        &["CONFIG", "GET", "HASH-MAX-ZIPLIST-VALUE", "list-max-*"],
        "*6\r\n\
         $22\r\nhash-max-ziplist-value\r\n$2\r\n64\r\n\
         $22\r\nlist-max-listpack-size\r\n$2\r\n-2\r\n\
         $21\r\nlist-max-ziplist-size\r\n$2\r\n-2\r\n",
    )
    .await;
    // Idle clients are never closed, which Redis spells `timeout 0`.
    c.call(
        &["CONFIG", "GET", "timeout"],
        "*2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n",
    )
    .await;
    // What the thresholds promise: 128 fields stay compact, 129 do not.
    let mut hset = vec!["HSET".to_string(), "h".into()];
    for i in 0..128 {
        hset.extend([format!("f{i}"), "v".into()]);
    }
    let args: Vec<&str> = hset.iter().map(String::as_str).collect();
    c.call(&args, ":128\r\n").await;
    c.call(&["OBJECT", "ENCODING", "h"], "$8\r\nlistpack\r\n")
        .await;
    c.call(&["HSET", "h", "one", "more"], ":1\r\n").await;
    c.call(&["OBJECT", "ENCODING", "h"], "$9\r\nhashtable\r\n")
        .await;
}

/// Reads one INFO reply and returns the value of `field`.
async fn info_field(c: &mut Conn, section: &str, field: &str) -> String {
    c.send(&["INFO", section]).await;
    let text = c.read_bulk().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {field} in {text:?}"))
}

/// A blocked command that wakes and runs is one command processed, like
/// in Redis, however often it was retried while waiting.
#[tokio::test]
async fn a_woken_blocking_pop_is_counted_once() {
    let n = node(&[]).await;
    let mut waiter = Conn::to(&n).await;
    let mut c = Conn::to(&n).await;
    c.call(&["CONFIG", "RESETSTAT"], "+OK\r\n").await;
    waiter.send(&["BLPOP", "q", "0"]).await;
    // A transaction that pushes and pops wakes the waiter with nothing to
    // take: it waits again, and is served by the next push.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["RPUSH", "q", "x"], "+QUEUED\r\n").await;
    c.call(&["LPOP", "q"], "+QUEUED\r\n").await;
    c.call(&["EXEC"], "*2\r\n:1\r\n$1\r\nx\r\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    c.call(&["RPUSH", "q", "x"], ":1\r\n").await;
    waiter.expect("*2\r\n$1\r\nq\r\n$1\r\nx\r\n").await;
    // BLPOP, MULTI, RPUSH, LPOP, EXEC, RPUSH and this INFO (counted as it
    // starts; Redis counts after a command ran, RESETSTAT included, which
    // comes to the same 7). The woken, retried BLPOP once only.
    assert_eq!(
        info_field(&mut c, "stats", "total_commands_processed").await,
        "7"
    );
}

/// redis-py's `test_config_resetstat`: the counters of INFO's stats section
/// start again from zero; gauges do not.
#[tokio::test]
async fn config_resetstat_zeroes_the_stats_counters() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    let mut other = Conn::to(&n).await;
    other.call(&["PING"], "+PONG\r\n").await;
    c.call(&["SET", "k", "v"], "+OK\r\n").await;
    c.call(&["GET", "k"], "$1\r\nv\r\n").await;
    c.call(&["GET", "missing"], "$-1\r\n").await;
    assert_eq!(info_field(&mut c, "stats", "keyspace_hits").await, "1");
    assert_eq!(info_field(&mut c, "stats", "keyspace_misses").await, "1");
    assert_eq!(
        info_field(&mut c, "stats", "total_connections_received").await,
        "2"
    );
    let before: u64 = info_field(&mut c, "stats", "total_commands_processed")
        .await
        .parse()
        .unwrap();
    assert!(before >= 8, "{before}");

    c.call(&["CONFIG", "RESETSTAT"], "+OK\r\n").await;
    // The INFO that reads the counter is the one command counted since.
    assert_eq!(
        info_field(&mut c, "stats", "total_commands_processed").await,
        "1"
    );
    for field in [
        "keyspace_hits",
        "keyspace_misses",
        "total_connections_received",
        "expired_keys",
        "evicted_keys",
    ] {
        assert_eq!(info_field(&mut c, "stats", field).await, "0", "{field}");
    }
    assert_eq!(
        info_field(&mut c, "clients", "connected_clients").await,
        "2"
    );
    // Counting goes on from zero.
    c.call(&["GET", "k"], "$1\r\nv\r\n").await;
    assert_eq!(info_field(&mut c, "stats", "keyspace_hits").await, "1");
    c.call(&["DBSIZE"], ":1\r\n").await;
}

fn names(list: &[&str]) -> String {
    let mut out = format!("*{}\r\n", list.len());
    for n in list {
        out.push_str(&format!("${}\r\n{n}\r\n", n.len()));
    }
    out
}

/// redis-py's `test_command_list`: COMMAND LIST names subcommands too and
/// honours FILTERBY (it used to ignore every argument).
#[tokio::test]
async fn command_list_filters_and_lists_subcommands() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "CONFIG|G*"],
        &names(&["config|get"]),
    )
    .await;
    c.call(
        &["command", "list", "filterby", "pattern", "config*"],
        &names(&[
            "config",
            "config|get",
            "config|set",
            "config|resetstat",
            "config|help",
        ]),
    )
    .await;
    c.call(
        &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "HyperLogLog"],
        &names(&["pfadd", "pfcount", "pfmerge"]),
    )
    .await;
    // Categories are named without '@'; an unknown one matches nothing,
    // and there are no modules.
    for (kind, arg) in [
        ("ACLCAT", "@hyperloglog"),
        ("ACLCAT", "nosuch"),
        ("MODULE", "fakemod"),
    ] {
        c.call(&["COMMAND", "LIST", "FILTERBY", kind, arg], "*0\r\n")
            .await;
    }
    for bad in [
        &["COMMAND", "LIST", "FILTERBY"][..],
        &["COMMAND", "LIST", "FILTERBY", "ACLCAT"],
        &["COMMAND", "LIST", "FILTERBY", "NAME", "get"],
        &["COMMAND", "LIST", "foo", "bar"],
        &[
            "COMMAND", "LIST", "FILTERBY", "ACLCAT", "list", "PATTERN", "l*",
        ],
    ] {
        c.call(bad, "-ERR syntax error\r\n").await;
    }

    // Unfiltered: every top-level command once, with its subcommands after it.
    c.send(&["COMMAND", "COUNT"]).await;
    let top: usize = read_line(&mut c)
        .await
        .strip_prefix(':')
        .unwrap()
        .parse()
        .unwrap();
    c.send(&["COMMAND", "LIST"]).await;
    let total: usize = read_line(&mut c)
        .await
        .strip_prefix('*')
        .unwrap()
        .parse()
        .unwrap();
    let mut listed = Vec::new();
    for _ in 0..total {
        listed.push(c.read_bulk().await);
    }
    assert_eq!(listed.iter().filter(|n| !n.contains('|')).count(), top);
    assert!(listed.iter().any(|n| n == "client|list"));
    assert!(listed.iter().any(|n| n == "lpop"));
}

/// Reads one reply line (an integer or an array header), without its CRLF.
async fn read_line(c: &mut Conn) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        tokio::time::timeout(std::time::Duration::from_secs(5), c.0.read_exact(&mut byte))
            .await
            .expect("timed out reading a reply line")
            .unwrap();
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

/// redis-py's `test_pubsub_numsub` (tests/test_pubsub.py, RESP3): NUMSUB and
/// SHARDNUMSUB answer a flat array in RESP3 as in RESP2, not a map, and
/// repeat a channel asked for twice.
#[tokio::test]
async fn pubsub_numsub_is_a_flat_array_in_resp3() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.send(&["HELLO", "3"]).await;
    c.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    let mut sub = Conn::to(&n).await;
    sub.call(
        &["SUBSCRIBE", "news"],
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    )
    .await;
    sub.call(
        &["SSUBSCRIBE", "orders"],
        "*3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n",
    )
    .await;
    c.call(
        &["PUBSUB", "NUMSUB", "news", "none", "news"],
        "*6\r\n$4\r\nnews\r\n:1\r\n$4\r\nnone\r\n:0\r\n$4\r\nnews\r\n:1\r\n",
    )
    .await;
    c.call(
        &["PUBSUB", "SHARDNUMSUB", "orders", "orders"],
        "*4\r\n$6\r\norders\r\n:1\r\n$6\r\norders\r\n:1\r\n",
    )
    .await;
    c.call(&["PUBSUB", "NUMSUB"], "*0\r\n").await;
}
