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
    // By default idle clients are never closed, which Redis spells `timeout 0`.
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

    assert!(n.shared.call_counts().contains(&("get", 2)));

    c.call(&["CONFIG", "RESETSTAT"], "+OK\r\n").await;
    // The per-command counts (the `tidecache_command_calls` metric, Redis's
    // commandstats) start again too. Redis counts a call after it ran, so
    // its commandstats then show the RESETSTAT alone, and so do ours.
    assert_eq!(n.shared.call_counts(), [("config|resetstat", 1)]);
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
    assert!(n.shared.call_counts().contains(&("get", 1)));
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

/// redis-py's `test_config_set` and `test_config_set_multi_params` set
/// `timeout`. Its values and error texts are redis-server 7.0.15's.
#[tokio::test]
async fn config_set_timeout_takes_redis_values() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    let get = |v: &str| format!("*2\r\n$7\r\ntimeout\r\n${}\r\n{v}\r\n", v.len());
    let failed = |why: &str| {
        format!("-ERR CONFIG SET failed (possibly related to argument 'timeout') - {why}\r\n")
    };
    c.call(&["CONFIG", "GET", "timeout"], &get("0")).await;
    for bad in ["-1", "2147483648"] {
        c.call(
            &["CONFIG", "SET", "timeout", bad],
            &failed("argument must be between 0 and 2147483647 inclusive"),
        )
        .await;
    }
    for bad in ["abc", "1.5", "+5", "05", "", "1k"] {
        c.call(
            &["CONFIG", "SET", "timeout", bad],
            &failed("argument couldn't be parsed into an integer"),
        )
        .await;
    }
    c.call(&["CONFIG", "GET", "timeout"], &get("0")).await;
    c.call(&["CONFIG", "SET", "TIMEOUT", "2147483647"], "+OK\r\n")
        .await;
    c.call(&["CONFIG", "GET", "timeout"], &get("2147483647"))
        .await;
    // With another parameter, all or nothing.
    c.call(
        &["CONFIG", "SET", "timeout", "70", "maxmemory", "100"],
        "+OK\r\n",
    )
    .await;
    c.call(&["CONFIG", "GET", "timeout"], &get("70")).await;
    c.call(
        &["CONFIG", "SET", "timeout", "5", "nosuch", "1"],
        "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n",
    )
    .await;
    c.call(
        &["CONFIG", "SET", "timeout", "5", "timeout", "6"],
        &failed("duplicate parameter"),
    )
    .await;
    c.call(&["CONFIG", "GET", "timeout"], &get("70")).await;
    c.call(&["CONFIG", "SET", "timeout", "0"], "+OK\r\n").await;
    c.call(&["CONFIG", "GET", "timeout"], &get("0")).await;
    // The start-up flag sets the same value.
    let n = node(&["--timeout", "30"]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["CONFIG", "GET", "timeout"], &get("30")).await;
}

/// `timeout`: a client that sends nothing for that many seconds is closed,
/// inside a transaction too, and so is one that was already idle when the
/// timeout was turned on. Real time: the node runs on the test's runtime,
/// but paused time would also move the clock under the TCP round trips.
#[tokio::test]
async fn idle_clients_are_closed_after_the_timeout() {
    use std::time::{Duration, Instant};
    let n = node(&["--timeout", "1"]).await;
    let start = Instant::now();
    let mut idle = Conn::to(&n).await;
    let mut in_multi = Conn::to(&n).await;
    in_multi.call(&["MULTI"], "+OK\r\n").await;
    in_multi.call(&["SET", "k", "v"], "+QUEUED\r\n").await;
    idle.expect_closed().await;
    in_multi.expect_closed().await;
    // Not before a whole second without input.
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // The transaction died with its client.
    let mut c = Conn::to(&n).await;
    c.call(&["EXISTS", "k"], ":0\r\n").await;

    // Turned on while a client is already idle: it goes too.
    let n = node(&[]).await;
    let mut early = Conn::to(&n).await;
    early.call(&["PING"], "+PONG\r\n").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut c = Conn::to(&n).await;
    c.call(&["CONFIG", "SET", "timeout", "1"], "+OK\r\n").await;
    let set = Instant::now();
    early.expect_closed().await;
    // Idle for longer than the timeout already: closed at once, not a
    // second after its next input.
    assert!(
        set.elapsed() < Duration::from_millis(800),
        "{:?}",
        set.elapsed()
    );
}

/// Input keeps a client open, and as in Redis the timeout never closes a
/// subscriber or a client blocked in a command; once it no longer
/// subscribes or waits, it is an ordinary client again.
#[tokio::test]
async fn active_subscribed_and_blocked_clients_stay_open() {
    use std::time::{Duration, Instant};
    let n = node(&[]).await;
    // The active client, which also drives the others.
    let mut c = Conn::to(&n).await;
    c.call(&["CONFIG", "SET", "timeout", "1"], "+OK\r\n").await;
    let mut sub = Conn::to(&n).await;
    sub.call(
        &["SUBSCRIBE", "news"],
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    )
    .await;
    let mut sub3 = Conn::to(&n).await;
    sub3.send(&["HELLO", "3"]).await;
    // Its id (3) is as long as the first client's.
    sub3.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    sub3.call(
        &["SSUBSCRIBE", "orders"],
        ">3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n",
    )
    .await;
    let mut blocked = Conn::to(&n).await;
    blocked.send(&["BLPOP", "q", "0"]).await;
    // Well past the timeout, with a command every 200 ms from `c`.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        c.call(&["PING"], "+PONG\r\n").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.call(&["PUBLISH", "news", "hi"], ":1\r\n").await;
    sub.expect("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n")
        .await;
    c.call(&["SPUBLISH", "orders", "o1"], ":1\r\n").await;
    sub3.expect(">3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no1\r\n")
        .await;
    c.call(&["RPUSH", "q", "x"], ":1\r\n").await;
    blocked.expect("*2\r\n$1\r\nq\r\n$1\r\nx\r\n").await;
    // Served, the blocked client is idle from its reply on; unsubscribed,
    // the subscriber is idle from its last command.
    sub.call(
        &["UNSUBSCRIBE"],
        "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n",
    )
    .await;
    let served = Instant::now();
    blocked.expect_closed().await;
    sub.expect_closed().await;
    assert!(
        served.elapsed() >= Duration::from_millis(900),
        "{:?}",
        served.elapsed()
    );
    // The RESP3 subscriber is still there (`c` idled out meanwhile).
    let mut c = Conn::to(&n).await;
    c.call(&["SPUBLISH", "orders", "o2"], ":1\r\n").await;
    sub3.expect(">3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no2\r\n")
        .await;
}
