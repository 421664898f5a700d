//! Sorted-set algebra, the numkeys commands (ZUNION and friends, ZINTERCARD,
//! SINTERCARD, ZMPOP, LMPOP), the element scans (HSCAN, SSCAN, ZSCAN),
//! OBJECT, expiry options and the keynum rows of COMMAND INFO / GETKEYS,
//! over real TCP with exact replies.

mod common;

use std::collections::{HashMap, HashSet};

use cache_node::clock::Clock;
use common::{Conn, node, node_with_clock};

/// A RESP array of bulk strings.
fn bulks(items: &[&str]) -> String {
    let mut out = format!("*{}\r\n", items.len());
    for i in items {
        out.push_str(&format!("${}\r\n{i}\r\n", i.len()));
    }
    out
}

fn err(msg: &str) -> String {
    format!("-{msg}\r\n")
}

const SYNTAX: &str = "-ERR syntax error\r\n";
const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const NOT_INTEGER: &str = "-ERR value is not an integer or out of range\r\n";

/// `*2 $1 0 *0`: a scan of a missing key.
const EMPTY_SCAN: &str = "*2\r\n$1\r\n0\r\n*0\r\n";

/// z1 = {a:1, b:2, c:3}, z2 = {b:10, c:20, d:30}, s = {c, d, e}, str = "x".
async fn fixtures(c: &mut Conn) {
    c.call(&["ZADD", "z1", "1", "a", "2", "b", "3", "c"], ":3\r\n")
        .await;
    c.call(&["ZADD", "z2", "10", "b", "20", "c", "30", "d"], ":3\r\n")
        .await;
    c.call(&["SADD", "s", "c", "d", "e"], ":3\r\n").await;
    c.call(&["SET", "str", "x"], "+OK\r\n").await;
}

#[tokio::test]
async fn zunion_zinter_zdiff_combine_scores() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    fixtures(&mut c).await;
    c.call(&["ZUNION", "2", "z1", "z2"], &bulks(&["a", "b", "c", "d"]))
        .await;
    c.call(
        &["zunion", "2", "z1", "z2", "withscores"],
        &bulks(&["a", "1", "b", "12", "c", "23", "d", "30"]),
    )
    .await;
    c.call(
        &["ZUNION", "2", "z1", "z2", "WEIGHTS", "2", "1", "WITHSCORES"],
        &bulks(&["a", "2", "b", "14", "c", "26", "d", "30"]),
    )
    .await;
    c.call(
        &["ZUNION", "2", "z1", "z2", "AGGREGATE", "MIN", "WITHSCORES"],
        &bulks(&["a", "1", "b", "2", "c", "3", "d", "30"]),
    )
    .await;
    c.call(
        &["ZUNION", "2", "z1", "z2", "AGGREGATE", "MAX", "WITHSCORES"],
        &bulks(&["a", "1", "b", "10", "c", "20", "d", "30"]),
    )
    .await;
    // Options in any order, repeated ones win last.
    c.call(
        &[
            "ZUNION",
            "2",
            "z1",
            "z2",
            "WITHSCORES",
            "AGGREGATE",
            "MIN",
            "WEIGHTS",
            "1",
            "1",
            "AGGREGATE",
            "SUM",
            "WEIGHTS",
            "-1",
            "0.5",
        ],
        &bulks(&["a", "-1", "b", "3", "c", "7", "d", "15"]),
    )
    .await;
    // Plain set members score 1.
    c.call(
        &["ZUNION", "2", "z1", "s", "WITHSCORES"],
        &bulks(&["a", "1", "d", "1", "e", "1", "b", "2", "c", "4"]),
    )
    .await;
    c.call(
        &["ZINTER", "2", "z1", "z2", "WITHSCORES"],
        &bulks(&["b", "12", "c", "23"]),
    )
    .await;
    c.call(
        &["ZINTER", "3", "z1", "z2", "s", "WITHSCORES"],
        &bulks(&["c", "24"]),
    )
    .await;
    c.call(
        &[
            "ZINTER",
            "2",
            "z1",
            "z2",
            "WEIGHTS",
            "1",
            "0.5",
            "AGGREGATE",
            "MAX",
            "WITHSCORES",
        ],
        &bulks(&["b", "5", "c", "10"]),
    )
    .await;
    c.call(&["ZINTER", "2", "z1", "nokey"], "*0\r\n").await;
    c.call(&["ZDIFF", "2", "z1", "z2"], &bulks(&["a"])).await;
    c.call(
        &["ZDIFF", "2", "z2", "s", "WITHSCORES"],
        &bulks(&["b", "10"]),
    )
    .await;
    c.call(
        &["ZDIFF", "1", "z1", "WITHSCORES"],
        &bulks(&["a", "1", "b", "2", "c", "3"]),
    )
    .await;
    c.call(&["ZDIFF", "2", "nokey", "z1"], "*0\r\n").await;
    c.call(&["ZUNION", "1", "nokey"], "*0\r\n").await;
    // inf + -inf sums to 0, and so does inf * 0.
    c.call(&["ZADD", "pinf", "+inf", "x"], ":1\r\n").await;
    c.call(&["ZADD", "ninf", "-inf", "x"], ":1\r\n").await;
    c.call(
        &["ZUNION", "2", "pinf", "ninf", "WITHSCORES"],
        &bulks(&["x", "0"]),
    )
    .await;
    c.call(
        &["ZUNION", "1", "pinf", "WEIGHTS", "0", "WITHSCORES"],
        &bulks(&["x", "0"]),
    )
    .await;
    c.call(
        &["ZINTER", "2", "pinf", "pinf", "WITHSCORES"],
        &bulks(&["x", "inf"]),
    )
    .await;
    // RESP3 pairs each member with a double score.
    c.send(&["HELLO", "3"]).await;
    c.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    c.call(
        &["ZUNION", "2", "z1", "z2", "WITHSCORES"],
        "*4\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,12\r\n*2\r\n$1\r\nc\r\n,23\r\n*2\r\n$1\r\nd\r\n,30\r\n",
    )
    .await;
    c.call(&["ZINTER", "2", "z1", "z2"], &bulks(&["b", "c"]))
        .await;
    n.shutdown().await;
}

#[tokio::test]
async fn numkeys_errors_come_from_the_handler() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    fixtures(&mut c).await;
    for (cmd, args) in [
        ("zunion", vec!["ZUNION", "0", "z1"]),
        ("zinter", vec!["ZINTER", "-1", "z1"]),
        ("zdiff", vec!["ZDIFF", "0", "z1"]),
        ("zintercard", vec!["ZINTERCARD", "0", "z1"]),
        ("zunionstore", vec!["ZUNIONSTORE", "d", "0", "z1"]),
        ("zinterstore", vec!["ZINTERSTORE", "d", "0", "z1"]),
        ("zdiffstore", vec!["ZDIFFSTORE", "d", "-5", "z1"]),
    ] {
        c.call(
            &args,
            &err(&format!(
                "ERR at least 1 input key is needed for '{cmd}' command"
            )),
        )
        .await;
    }
    c.call(&["ZUNION", "x", "z1"], NOT_INTEGER).await;
    c.call(&["ZUNIONSTORE", "d", "1.5", "z1"], NOT_INTEGER)
        .await;
    c.call(&["ZUNION", "3", "z1", "z2"], SYNTAX).await;
    c.call(&["ZUNIONSTORE", "d", "2", "z1"], SYNTAX).await;
    c.call(&["ZINTERCARD", "2", "z1"], SYNTAX).await;
    c.call(&["ZUNION", "99999999999999999999", "z1"], NOT_INTEGER)
        .await;
    c.call(&["ZUNION", "9223372036854775807", "z1"], SYNTAX)
        .await;
    c.call(&["ZUNION", "2", "z1", "z2", "WEIGHTS", "1"], SYNTAX)
        .await;
    c.call(
        &["ZUNION", "2", "z1", "z2", "WEIGHTS", "1", "x"],
        &err("ERR weight value is not a float"),
    )
    .await;
    c.call(
        &["ZUNION", "2", "z1", "z2", "WEIGHTS", "1", "nan"],
        &err("ERR weight value is not a float"),
    )
    .await;
    c.call(&["ZUNION", "2", "z1", "z2", "AGGREGATE", "AVG"], SYNTAX)
        .await;
    c.call(&["ZUNION", "2", "z1", "z2", "AGGREGATE"], SYNTAX)
        .await;
    c.call(&["ZUNION", "2", "z1", "z2", "BOGUS"], SYNTAX).await;
    c.call(&["ZDIFF", "2", "z1", "z2", "WEIGHTS", "1", "1"], SYNTAX)
        .await;
    c.call(&["ZDIFF", "2", "z1", "z2", "AGGREGATE", "MIN"], SYNTAX)
        .await;
    c.call(&["ZUNIONSTORE", "d", "2", "z1", "z2", "WITHSCORES"], SYNTAX)
        .await;
    c.call(&["ZINTERCARD", "2", "z1", "z2", "WITHSCORES"], SYNTAX)
        .await;
    c.call(
        &["ZINTERCARD", "2", "z1", "z2", "WEIGHTS", "1", "1"],
        SYNTAX,
    )
    .await;
    c.call(&["ZINTER", "2", "z1", "z2", "LIMIT", "1"], SYNTAX)
        .await;
    // Wrong types: strings and lists are refused, before any option error.
    c.call(&["ZUNION", "2", "z1", "str"], WRONGTYPE).await;
    c.call(&["ZUNION", "2", "z1", "str", "BOGUS"], WRONGTYPE)
        .await;
    c.call(&["RPUSH", "l", "a"], ":1\r\n").await;
    c.call(&["ZINTER", "2", "nokey", "l"], WRONGTYPE).await;
    c.call(&["ZDIFF", "2", "z1", "str"], WRONGTYPE).await;
    c.call(&["ZINTERSTORE", "d", "2", "z1", "str"], WRONGTYPE)
        .await;
    c.call(&["ZINTERCARD", "2", "z1", "l"], WRONGTYPE).await;
    c.call(&["EXISTS", "d"], ":0\r\n").await;
    // Too few arguments for the table's arity.
    c.call(
        &["ZUNION", "1"],
        "-ERR wrong number of arguments for 'zunion' command\r\n",
    )
    .await;
    c.call(
        &["ZUNIONSTORE", "d", "1"],
        "-ERR wrong number of arguments for 'zunionstore' command\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn store_forms_replace_the_destination() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    fixtures(&mut c).await;
    c.call(&["ZUNIONSTORE", "out", "2", "z1", "z2"], ":4\r\n")
        .await;
    c.call(
        &["ZRANGE", "out", "0", "-1", "WITHSCORES"],
        &bulks(&["a", "1", "b", "12", "c", "23", "d", "30"]),
    )
    .await;
    c.call(
        &["ZINTERSTORE", "out", "2", "z1", "z2", "WEIGHTS", "2", "3"],
        ":2\r\n",
    )
    .await;
    c.call(
        &["ZRANGE", "out", "0", "-1", "WITHSCORES"],
        &bulks(&["b", "34", "c", "66"]),
    )
    .await;
    c.call(
        &["ZINTERSTORE", "out", "2", "z1", "z2", "AGGREGATE", "MIN"],
        ":2\r\n",
    )
    .await;
    c.call(
        &["ZRANGE", "out", "0", "-1", "WITHSCORES"],
        &bulks(&["b", "2", "c", "3"]),
    )
    .await;
    c.call(&["ZDIFFSTORE", "out", "2", "z1", "z2"], ":1\r\n")
        .await;
    c.call(
        &["ZRANGE", "out", "0", "-1", "WITHSCORES"],
        &bulks(&["a", "1"]),
    )
    .await;
    c.call(&["ZUNIONSTORE", "fromset", "1", "s"], ":3\r\n")
        .await;
    c.call(
        &["ZRANGE", "fromset", "0", "-1", "WITHSCORES"],
        &bulks(&["c", "1", "d", "1", "e", "1"]),
    )
    .await;
    // An empty result deletes the destination.
    c.call(&["ZINTERSTORE", "out", "2", "z1", "nokey"], ":0\r\n")
        .await;
    c.call(&["EXISTS", "out"], ":0\r\n").await;
    c.call(&["ZDIFFSTORE", "fromset", "2", "s", "s"], ":0\r\n")
        .await;
    c.call(&["EXISTS", "fromset"], ":0\r\n").await;
    // Any type is overwritten, and its TTL goes with it.
    c.call(&["EXPIRE", "str", "100"], ":1\r\n").await;
    c.call(&["ZUNIONSTORE", "str", "1", "z1"], ":3\r\n").await;
    c.call(&["TYPE", "str"], "+zset\r\n").await;
    c.call(&["TTL", "str"], ":-1\r\n").await;
    // The destination may be one of the inputs.
    c.call(&["ZUNIONSTORE", "z1", "2", "z1", "z1"], ":3\r\n")
        .await;
    c.call(
        &["ZRANGE", "z1", "0", "-1", "WITHSCORES"],
        &bulks(&["a", "2", "b", "4", "c", "6"]),
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn zintercard_and_sintercard_count_with_a_limit() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    fixtures(&mut c).await;
    c.call(&["ZINTERCARD", "2", "z1", "z2"], ":2\r\n").await;
    c.call(&["ZINTERCARD", "2", "z1", "z2", "LIMIT", "1"], ":1\r\n")
        .await;
    c.call(&["ZINTERCARD", "2", "z1", "z2", "LIMIT", "0"], ":2\r\n")
        .await;
    c.call(&["ZINTERCARD", "2", "z1", "z2", "LIMIT", "100"], ":2\r\n")
        .await;
    c.call(&["ZINTERCARD", "2", "z1", "s"], ":1\r\n").await;
    c.call(&["ZINTERCARD", "2", "z1", "nokey"], ":0\r\n").await;
    c.call(
        &["ZINTERCARD", "2", "z1", "z2", "LIMIT", "-1"],
        &err("ERR LIMIT can't be negative"),
    )
    .await;
    c.call(
        &["ZINTERCARD", "2", "z1", "z2", "LIMIT", "x"],
        &err("ERR LIMIT can't be negative"),
    )
    .await;

    c.call(&["SADD", "sa", "a", "b", "c", "d"], ":4\r\n").await;
    c.call(&["SADD", "sb", "b", "c", "d", "e"], ":4\r\n").await;
    c.call(&["SADD", "sc", "c", "d", "x"], ":3\r\n").await;
    c.call(&["SINTERCARD", "2", "sa", "sb"], ":3\r\n").await;
    c.call(&["sintercard", "3", "sa", "sb", "sc"], ":2\r\n")
        .await;
    c.call(&["SINTERCARD", "2", "sa", "sb", "LIMIT", "1"], ":1\r\n")
        .await;
    c.call(&["SINTERCARD", "2", "sa", "sb", "limit", "0"], ":3\r\n")
        .await;
    c.call(&["SINTERCARD", "1", "sa"], ":4\r\n").await;
    c.call(&["SINTERCARD", "2", "sa", "nokey"], ":0\r\n").await;
    let numkeys = err("ERR numkeys should be greater than 0");
    c.call(&["SINTERCARD", "0", "sa"], &numkeys).await;
    c.call(&["SINTERCARD", "-1", "sa"], &numkeys).await;
    c.call(&["SINTERCARD", "x", "sa"], &numkeys).await;
    c.call(
        &["SINTERCARD", "3", "sa", "sb"],
        &err("ERR Number of keys can't be greater than number of args"),
    )
    .await;
    c.call(
        &["SINTERCARD", "2", "sa", "sb", "LIMIT", "-1"],
        &err("ERR LIMIT can't be negative"),
    )
    .await;
    c.call(&["SINTERCARD", "1", "sa", "LIMIT"], SYNTAX).await;
    c.call(&["SINTERCARD", "1", "sa", "FOO", "1"], SYNTAX).await;
    // Only sets: a sorted set is the wrong type here, even after a missing key.
    c.call(&["SINTERCARD", "2", "sa", "z1"], WRONGTYPE).await;
    c.call(&["SINTERCARD", "2", "nokey", "str"], WRONGTYPE)
        .await;
    c.call(
        &["SINTERCARD", "1"],
        "-ERR wrong number of arguments for 'sintercard' command\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn zmpop_pops_from_the_first_non_empty_key() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["ZADD", "zm", "1", "a", "2", "b", "3", "c"], ":3\r\n")
        .await;
    c.call(&["SET", "str", "x"], "+OK\r\n").await;
    c.call(&["ZMPOP", "1", "nokey", "MIN"], "*-1\r\n").await;
    c.call(
        &["ZMPOP", "2", "nokey", "zm", "MIN"],
        "*2\r\n$2\r\nzm\r\n*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n",
    )
    .await;
    // Stops at the first non-empty key: the string after it is never looked at.
    c.call(
        &["ZMPOP", "2", "zm", "str", "max", "COUNT", "1"],
        "*2\r\n$2\r\nzm\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
    )
    .await;
    c.call(&["ZADD", "zm", "5", "e", "4", "d"], ":2\r\n").await;
    c.call(
        &["ZMPOP", "1", "zm", "MAX", "COUNT", "10"],
        "*2\r\n$2\r\nzm\r\n*3\r\n*2\r\n$1\r\ne\r\n$1\r\n5\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n",
    )
    .await;
    c.call(&["EXISTS", "zm"], ":0\r\n").await;
    c.call(&["ZMPOP", "2", "str", "zm", "MIN"], WRONGTYPE).await;
    let numkeys = err("ERR numkeys should be greater than 0");
    c.call(&["ZMPOP", "0", "zm", "MIN"], &numkeys).await;
    c.call(&["ZMPOP", "x", "zm", "MIN"], &numkeys).await;
    c.call(&["ZMPOP", "2", "zm", "MIN"], SYNTAX).await;
    c.call(&["ZMPOP", "9223372036854775807", "zm", "MIN"], SYNTAX)
        .await;
    c.call(&["ZMPOP", "1", "zm", "MID"], SYNTAX).await;
    c.call(&["ZMPOP", "1", "zm", "MIN", "COUNT"], SYNTAX).await;
    c.call(
        &["ZMPOP", "1", "zm", "MIN", "COUNT", "1", "COUNT", "2"],
        SYNTAX,
    )
    .await;
    c.call(&["ZMPOP", "1", "zm", "MIN", "LIMIT", "2"], SYNTAX)
        .await;
    let count = err("ERR count should be greater than 0");
    c.call(&["ZMPOP", "1", "zm", "MIN", "COUNT", "0"], &count)
        .await;
    c.call(&["ZMPOP", "1", "zm", "MIN", "COUNT", "x"], &count)
        .await;
    c.call(
        &["ZMPOP", "1", "zm"],
        "-ERR wrong number of arguments for 'zmpop' command\r\n",
    )
    .await;
    // RESP3: a double score, and `_` for nothing popped.
    c.send(&["HELLO", "3"]).await;
    c.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    c.call(&["ZADD", "zm", "1.5", "a"], ":1\r\n").await;
    c.call(
        &["ZMPOP", "1", "zm", "MIN"],
        "*2\r\n$2\r\nzm\r\n*1\r\n*2\r\n$1\r\na\r\n,1.5\r\n",
    )
    .await;
    c.call(&["ZMPOP", "1", "zm", "MIN"], "_\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn lmpop_pops_from_the_first_non_empty_list() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["RPUSH", "l1", "a", "b", "c", "d"], ":4\r\n").await;
    c.call(&["SET", "str", "x"], "+OK\r\n").await;
    c.call(&["LMPOP", "1", "nokey", "LEFT"], "*-1\r\n").await;
    c.call(
        &["LMPOP", "2", "nokey", "l1", "LEFT"],
        "*2\r\n$2\r\nl1\r\n*1\r\n$1\r\na\r\n",
    )
    .await;
    c.call(
        &["lmpop", "2", "l1", "str", "right", "count", "2"],
        "*2\r\n$2\r\nl1\r\n*2\r\n$1\r\nd\r\n$1\r\nc\r\n",
    )
    .await;
    c.call(
        &["LMPOP", "1", "l1", "LEFT", "COUNT", "100"],
        "*2\r\n$2\r\nl1\r\n*1\r\n$1\r\nb\r\n",
    )
    .await;
    c.call(&["EXISTS", "l1"], ":0\r\n").await;
    c.call(&["LMPOP", "2", "l1", "str", "LEFT"], WRONGTYPE)
        .await;
    let numkeys = err("ERR numkeys should be greater than 0");
    c.call(&["LMPOP", "0", "l1", "LEFT"], &numkeys).await;
    c.call(&["LMPOP", "-3", "l1", "LEFT"], &numkeys).await;
    c.call(&["LMPOP", "x", "l1", "LEFT"], &numkeys).await;
    c.call(&["LMPOP", "2", "l1", "LEFT"], SYNTAX).await;
    c.call(&["LMPOP", "1", "l1", "UP"], SYNTAX).await;
    c.call(&["LMPOP", "1", "l1", "LEFT", "COUNT"], SYNTAX).await;
    c.call(
        &["LMPOP", "1", "l1", "LEFT", "COUNT", "1", "COUNT", "1"],
        SYNTAX,
    )
    .await;
    let count = err("ERR count should be greater than 0");
    c.call(&["LMPOP", "1", "l1", "LEFT", "COUNT", "0"], &count)
        .await;
    c.call(&["LMPOP", "1", "l1", "LEFT", "COUNT", "-1"], &count)
        .await;
    c.call(
        &["LMPOP", "1", "l1"],
        "-ERR wrong number of arguments for 'lmpop' command\r\n",
    )
    .await;
    c.send(&["HELLO", "3"]).await;
    c.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    c.call(&["LMPOP", "1", "l1", "LEFT"], "_\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn small_collections_scan_whole_in_one_call() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SADD", "one", "x"], ":1\r\n").await;
    c.call(&["HSET", "h1", "f", "v"], ":1\r\n").await;
    c.call(&["ZADD", "zs1", "1.5", "m"], ":1\r\n").await;
    c.call(&["SET", "str", "x"], "+OK\r\n").await;
    let done = |items: &[&str]| format!("*2\r\n$1\r\n0\r\n{}", bulks(items));
    c.call(&["SSCAN", "one", "0"], &done(&["x"])).await;
    c.call(&["HSCAN", "h1", "0"], &done(&["f", "v"])).await;
    c.call(&["ZSCAN", "zs1", "0"], &done(&["m", "1.5"])).await;
    // A compact collection ignores the cursor, as in Redis.
    c.call(&["SSCAN", "one", "12345", "COUNT", "1"], &done(&["x"]))
        .await;
    c.call(&["SSCAN", "one", "0", "MATCH", "y*"], &done(&[]))
        .await;
    c.call(&["HSCAN", "h1", "0", "MATCH", "f"], &done(&["f", "v"]))
        .await;
    c.call(&["HSCAN", "h1", "0", "MATCH", "v"], &done(&[]))
        .await;
    c.call(
        &["ZSCAN", "zs1", "0", "match", "m*", "count", "5"],
        &done(&["m", "1.5"]),
    )
    .await;
    // Missing keys scan empty, even with bad options; a bad cursor is checked first.
    c.call(&["SSCAN", "nokey", "0"], EMPTY_SCAN).await;
    c.call(&["HSCAN", "nokey", "0", "COUNT", "0"], EMPTY_SCAN)
        .await;
    c.call(&["ZSCAN", "nokey", "7"], EMPTY_SCAN).await;
    for cmd in ["SSCAN", "HSCAN", "ZSCAN"] {
        c.call(&[cmd, "nokey", "x"], &err("ERR invalid cursor"))
            .await;
        c.call(&[cmd, "str", "-1"], &err("ERR invalid cursor"))
            .await;
        c.call(&[cmd, "str", "0"], WRONGTYPE).await;
    }
    c.call(&["HSCAN", "one", "0"], WRONGTYPE).await;
    c.call(&["ZSCAN", "h1", "0"], WRONGTYPE).await;
    c.call(&["SSCAN", "zs1", "0"], WRONGTYPE).await;
    c.call(&["SSCAN", "one", "0", "COUNT", "0"], SYNTAX).await;
    c.call(&["SSCAN", "one", "0", "COUNT", "x"], NOT_INTEGER)
        .await;
    c.call(&["SSCAN", "one", "0", "MATCH"], SYNTAX).await;
    c.call(&["SSCAN", "one", "0", "TYPE", "set"], SYNTAX).await;
    // NOVALUES is Redis 7.4.
    c.call(&["HSCAN", "h1", "0", "NOVALUES"], SYNTAX).await;
    c.call(
        &["ZSCAN", "zs1"],
        "-ERR wrong number of arguments for 'zscan' command\r\n",
    )
    .await;
    // RESP3: still flat arrays of strings, scores included.
    c.send(&["HELLO", "3"]).await;
    c.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    c.call(&["ZSCAN", "zs1", "0"], &done(&["m", "1.5"])).await;
    n.shutdown().await;
}

/// One *SCAN call through the `redis` crate: (next cursor, flat items).
async fn scan_call(
    conn: &mut redis::aio::MultiplexedConnection,
    cmd: &str,
    key: &str,
    cursor: u64,
    extra: &[&str],
) -> (u64, Vec<String>) {
    let mut c = redis::cmd(cmd);
    c.arg(key).arg(cursor);
    for a in extra {
        c.arg(*a);
    }
    c.query_async(conn).await.unwrap()
}

async fn connect(n: &cache_node::Node) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", n.addr.port())).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn large_collections_scan_in_steps_despite_changes() {
    let n = node(&[]).await;
    let mut conn = connect(&n).await;
    let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let _: i64 = redis::cmd("SADD")
        .arg("big")
        .arg(&members)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Iterate while adding new members and removing some original ones.
    let (mut cursor, mut calls, mut seen) = (0u64, 0, HashMap::<String, usize>::new());
    let mut removed = HashSet::new();
    loop {
        let (next, items) = scan_call(&mut conn, "SSCAN", "big", cursor, &["COUNT", "10"]).await;
        calls += 1;
        for m in items {
            *seen.entry(m).or_default() += 1;
        }
        let _: i64 = redis::cmd("SADD")
            .arg("big")
            .arg(format!("new{calls}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let gone = format!("m{}", calls * 3);
        let _: i64 = redis::cmd("SREM")
            .arg("big")
            .arg(&gone)
            .query_async(&mut conn)
            .await
            .unwrap();
        removed.insert(gone);
        cursor = next;
        if cursor == 0 {
            break;
        }
        assert!(calls < 1000, "the iteration ends");
    }
    assert!(calls > 1, "a large set is not returned in one call");
    for m in members.iter().filter(|m| !removed.contains(*m)) {
        assert_eq!(seen.get(m), Some(&1), "{m} returned exactly once");
    }

    // Without changes, a full iteration returns every member exactly once;
    // MATCH filters, COUNT larger than the set returns it whole.
    let (mut cursor, mut all) = (0u64, Vec::new());
    loop {
        let (next, items) = scan_call(&mut conn, "SSCAN", "big", cursor, &["MATCH", "m1*"]).await;
        all.extend(items);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let expected: HashSet<&String> = members
        .iter()
        .filter(|m| m.starts_with("m1") && !removed.contains(*m))
        .collect();
    assert_eq!(all.len(), expected.len());
    assert_eq!(all.iter().collect::<HashSet<_>>(), expected);
    let (next, items) = scan_call(&mut conn, "SSCAN", "big", 0, &["COUNT", "100000"]).await;
    assert_eq!(next, 0);
    let card: usize = redis::cmd("SCARD")
        .arg("big")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(items.len(), card);

    // Hashes: fields with their values.
    let mut pairs = Vec::new();
    for i in 0..300 {
        pairs.push(format!("f{i}"));
        pairs.push(format!("v{i}"));
    }
    let _: i64 = redis::cmd("HSET")
        .arg("hbig")
        .arg(&pairs)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (mut cursor, mut fields, mut calls) = (0u64, HashMap::new(), 0);
    loop {
        let (next, items) = scan_call(&mut conn, "HSCAN", "hbig", cursor, &["COUNT", "20"]).await;
        calls += 1;
        for pair in items.chunks(2) {
            assert_eq!(pair[1], pair[0].replacen('f', "v", 1));
            assert!(
                fields.insert(pair[0].clone(), ()).is_none(),
                "{} twice",
                pair[0]
            );
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(calls > 1);
    assert_eq!(fields.len(), 300);

    // Sorted sets: members with their scores.
    let mut zargs = Vec::new();
    for i in 0..200 {
        zargs.push(format!("{i}.5"));
        zargs.push(format!("z{i}"));
    }
    let _: i64 = redis::cmd("ZADD")
        .arg("zbig")
        .arg(&zargs)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (mut cursor, mut got, mut calls) = (0u64, HashMap::new(), 0);
    loop {
        let (next, items) = scan_call(&mut conn, "ZSCAN", "zbig", cursor, &[]).await;
        calls += 1;
        for pair in items.chunks(2) {
            assert_eq!(format!("z{}", pair[1].trim_end_matches(".5")), pair[0]);
            got.insert(pair[0].clone(), ());
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(calls > 1);
    assert_eq!(got.len(), 200);

    // 512 integers are an intset (one call); one more makes a hash table.
    let ints: Vec<String> = (0..512).map(|i| i.to_string()).collect();
    let _: i64 = redis::cmd("SADD")
        .arg("ints")
        .arg(&ints)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (next, items) = scan_call(&mut conn, "SSCAN", "ints", 0, &[]).await;
    assert_eq!((next, items.len()), (0, 512));
    let _: i64 = redis::cmd("SADD")
        .arg("ints")
        .arg("512")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (next, items) = scan_call(&mut conn, "SSCAN", "ints", 0, &[]).await;
    assert_ne!(next, 0);
    assert!(items.len() < 513);
    n.shutdown().await;
}

#[tokio::test]
async fn object_reports_redis_encodings() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    let long = "x".repeat(45);
    let wide = "v".repeat(65);
    c.call(&["SET", "int", "12345"], "+OK\r\n").await;
    c.call(&["SET", "small", "100"], "+OK\r\n").await;
    c.call(&["SET", "emb", "hello"], "+OK\r\n").await;
    c.call(&["SET", "raw", &long], "+OK\r\n").await;
    c.call(&["RPUSH", "list", "a", "1"], ":2\r\n").await;
    c.call(&["RPUSH", "biglist", &"y".repeat(9000)], ":1\r\n")
        .await;
    c.call(&["SADD", "intset", "1", "2", "-3"], ":3\r\n").await;
    c.call(&["SADD", "lpset", "a", "1"], ":2\r\n").await;
    c.call(&["SADD", "htset", &wide], ":1\r\n").await;
    c.call(&["HSET", "hash", "f", "v"], ":1\r\n").await;
    c.call(&["HSET", "bighash", "f", &wide], ":1\r\n").await;
    c.call(&["ZADD", "zset", "1", "a"], ":1\r\n").await;
    c.call(&["ZADD", "bigzset", "1", &wide], ":1\r\n").await;
    for (key, enc) in [
        ("int", "int"),
        ("emb", "embstr"),
        ("raw", "raw"),
        ("list", "listpack"),
        ("biglist", "quicklist"),
        ("intset", "intset"),
        ("lpset", "listpack"),
        ("htset", "hashtable"),
        ("hash", "listpack"),
        ("bighash", "hashtable"),
        ("zset", "listpack"),
        ("bigzset", "skiplist"),
    ] {
        c.call(
            &["OBJECT", "ENCODING", key],
            &format!("${}\r\n{enc}\r\n", enc.len()),
        )
        .await;
    }
    // Past 128 entries small members leave listpack too.
    let mut sadd = vec!["SADD".to_string(), "wide".into()];
    sadd.extend((0..129).map(|i| format!("m{i}")));
    let sadd: Vec<&str> = sadd.iter().map(String::as_str).collect();
    c.call(&sadd, ":129\r\n").await;
    c.call(&["object", "encoding", "wide"], "$9\r\nhashtable\r\n")
        .await;
    c.call(&["OBJECT", "ENCODING", "nokey"], "$-1\r\n").await;
    // Integers below 10000 are shared objects.
    c.call(&["OBJECT", "REFCOUNT", "small"], ":2147483647\r\n")
        .await;
    c.call(&["OBJECT", "REFCOUNT", "int"], ":1\r\n").await;
    c.call(&["OBJECT", "REFCOUNT", "hash"], ":1\r\n").await;
    c.call(&["OBJECT", "REFCOUNT", "nokey"], "$-1\r\n").await;
    c.call(&["OBJECT", "IDLETIME", "emb"], ":0\r\n").await;
    c.call(&["OBJECT", "IDLETIME", "nokey"], "$-1\r\n").await;
    c.call(
        &["OBJECT", "FREQ", "emb"],
        "-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.\r\n",
    )
    .await;
    c.call(&["OBJECT", "FREQ", "nokey"], "$-1\r\n").await;
    let mut help =
        vec!["OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".to_string()];
    for (sub, summary) in [
        (
            "ENCODING",
            "Returns the internal encoding of a Redis object.",
        ),
        (
            "FREQ",
            "Returns the logarithmic access frequency counter of a Redis object.",
        ),
        (
            "IDLETIME",
            "Returns the time since the last access to a Redis object.",
        ),
        (
            "REFCOUNT",
            "Returns the reference count of a value of a key.",
        ),
        (
            "HELP",
            "Returns helpful text about the different subcommands.",
        ),
    ] {
        help.push(sub.to_string());
        help.push(format!("    {summary}"));
    }
    let mut expected = format!("*{}\r\n", help.len());
    for line in &help {
        expected.push_str(&format!("+{line}\r\n"));
    }
    c.call(&["OBJECT", "HELP"], &expected).await;
    c.call(
        &["OBJECT", "BOGUS", "k"],
        "-ERR unknown subcommand 'BOGUS'. Try OBJECT HELP.\r\n",
    )
    .await;
    c.call(
        &["OBJECT", "ENCODING"],
        "-ERR wrong number of arguments for 'object|encoding' command\r\n",
    )
    .await;
    c.call(
        &["OBJECT", "ENCODING", "a", "b"],
        "-ERR wrong number of arguments for 'object|encoding' command\r\n",
    )
    .await;
    c.call(
        &["OBJECT"],
        "-ERR wrong number of arguments for 'object' command\r\n",
    )
    .await;
    c.send(&["HELLO", "3"]).await;
    c.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    c.call(&["OBJECT", "ENCODING", "nokey"], "_\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn expiry_options_follow_redis() {
    let now_ms: u64 = 1_700_000_000_000;
    let n = node_with_clock(&[], Clock::manual(now_ms)).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "e", "v"], "+OK\r\n").await;
    c.call(&["EXPIRE", "e", "100", "XX"], ":0\r\n").await;
    c.call(&["EXPIRE", "e", "100", "GT"], ":0\r\n").await;
    c.call(&["EXPIRE", "e", "100", "NX"], ":1\r\n").await;
    c.call(&["EXPIRE", "e", "200", "NX"], ":0\r\n").await;
    c.call(&["EXPIRE", "e", "200", "XX"], ":1\r\n").await;
    c.call(&["EXPIRE", "e", "100", "GT"], ":0\r\n").await;
    c.call(&["EXPIRE", "e", "200", "GT"], ":0\r\n").await;
    c.call(&["EXPIRE", "e", "300", "gt"], ":1\r\n").await;
    c.call(&["EXPIRE", "e", "400", "LT"], ":0\r\n").await;
    c.call(&["EXPIRE", "e", "50", "LT", "XX"], ":1\r\n").await;
    c.call(&["TTL", "e"], ":50\r\n").await;
    c.call(&["PEXPIRE", "e", "60000", "GT"], ":1\r\n").await;
    c.call(&["PTTL", "e"], ":60000\r\n").await;
    c.call(&["PEXPIRE", "e", "70000", "NX"], ":0\r\n").await;
    let at = |ms: u64| (now_ms + ms).to_string();
    c.call(&["PEXPIREAT", "e", &at(90_000), "GT"], ":1\r\n")
        .await;
    c.call(&["PEXPIRETIME", "e"], &format!(":{}\r\n", at(90_000)))
        .await;
    c.call(&["PEXPIREAT", "e", &at(95_000), "LT"], ":0\r\n")
        .await;
    let secs = |s: u64| (now_ms / 1000 + s).to_string();
    c.call(&["EXPIREAT", "e", &secs(80), "LT"], ":1\r\n").await;
    c.call(&["EXPIRETIME", "e"], &format!(":{}\r\n", secs(80)))
        .await;
    c.call(&["EXPIREAT", "e", &secs(85), "NX"], ":0\r\n").await;
    c.call(&["EXPIREAT", "e", &secs(85), "XX"], ":1\r\n").await;
    // No TTL counts as infinite: LT always applies, GT never.
    c.call(&["SET", "p", "v"], "+OK\r\n").await;
    c.call(&["EXPIREAT", "p", &secs(10), "GT"], ":0\r\n").await;
    c.call(&["PEXPIRE", "p", "5000", "LT"], ":1\r\n").await;
    c.call(&["PTTL", "p"], ":5000\r\n").await;
    // A past deadline deletes the key, options permitting.
    c.call(&["EXPIRE", "p", "-1", "GT"], ":0\r\n").await;
    c.call(&["EXISTS", "p"], ":1\r\n").await;
    c.call(&["EXPIRE", "p", "-1", "LT"], ":1\r\n").await;
    c.call(&["EXISTS", "p"], ":0\r\n").await;
    c.call(&["EXPIRE", "nokey", "10", "NX"], ":0\r\n").await;
    let nx = err("ERR NX and XX, GT or LT options at the same time are not compatible");
    for opts in [["NX", "XX"], ["NX", "GT"], ["LT", "NX"]] {
        for cmd in ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"] {
            c.call(&[cmd, "e", "10", opts[0], opts[1]], &nx).await;
        }
    }
    c.call(
        &["PEXPIREAT", "e", "10", "GT", "LT"],
        &err("ERR GT and LT options at the same time are not compatible"),
    )
    .await;
    c.call(
        &["EXPIRE", "e", "10", "FOO"],
        &err("ERR Unsupported option FOO"),
    )
    .await;
    // Options are checked before the number.
    c.call(
        &["EXPIRE", "e", "abc", "FOO"],
        &err("ERR Unsupported option FOO"),
    )
    .await;
    c.call(&["EXPIRE", "e", "abc", "NX", "XX"], &nx).await;
    c.call(&["EXPIRE", "e", "abc", "NX"], NOT_INTEGER).await;
    c.call(&["EXPIRE", "nokey", "abc"], NOT_INTEGER).await;
    c.call(
        &["EXPIRE", "e", "9223372036854775807"],
        &err("ERR invalid expire time in 'expire' command"),
    )
    .await;
    c.call(&["TTL", "e"], ":85\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn command_info_and_getkeys_know_keynum_rows() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(
        &["COMMAND", "INFO", "zunionstore"],
        "*1\r\n*10\r\n$11\r\nzunionstore\r\n:-4\r\n*3\r\n+write\r\n+denyoom\r\n+movablekeys\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@sortedset\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
    )
    .await;
    c.call(
        &["COMMAND", "INFO", "zunion", "lmpop"],
        "*2\r\n*10\r\n$6\r\nzunion\r\n:-3\r\n*2\r\n+readonly\r\n+movablekeys\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@read\r\n+@sortedset\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n*10\r\n$5\r\nlmpop\r\n:-4\r\n*2\r\n+write\r\n+movablekeys\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@write\r\n+@list\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
    )
    .await;
    c.call(
        &["COMMAND", "INFO", "sscan"],
        "*1\r\n*10\r\n$5\r\nsscan\r\n:-3\r\n*1\r\n+readonly\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@set\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
    )
    .await;
    c.call(
        &["COMMAND", "INFO", "object|encoding"],
        "*1\r\n*10\r\n$15\r\nobject|encoding\r\n:3\r\n*1\r\n+readonly\r\n:2\r\n:2\r\n:1\r\n*3\r\n+@keyspace\r\n+@read\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
    )
    .await;
    c.call(
        &[
            "COMMAND",
            "GETKEYS",
            "ZUNIONSTORE",
            "d",
            "2",
            "a",
            "b",
            "WEIGHTS",
            "1",
            "2",
        ],
        &bulks(&["d", "a", "b"]),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "zunion", "2", "a", "b"],
        &bulks(&["a", "b"]),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "LMPOP", "3", "a", "b", "c", "LEFT"],
        &bulks(&["a", "b", "c"]),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "SINTERCARD", "1", "a", "LIMIT", "1"],
        &bulks(&["a"]),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "ZMPOP", "1", "a", "MIN"],
        &bulks(&["a"]),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
        &bulks(&["a", "b"]),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "OBJECT", "ENCODING", "k"],
        &bulks(&["k"]),
    )
    .await;
    let invalid = err("ERR Invalid arguments specified for command");
    c.call(
        &["COMMAND", "GETKEYS", "ZUNIONSTORE", "d", "0", "a"],
        &invalid,
    )
    .await;
    c.call(&["COMMAND", "GETKEYS", "ZUNION", "3", "a", "b"], &invalid)
        .await;
    c.call(&["COMMAND", "GETKEYS", "LMPOP", "x", "a", "LEFT"], &invalid)
        .await;
    c.call(
        &["COMMAND", "GETKEYS", "PING", "x"],
        &err("ERR The command has no key arguments"),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "NOSUCH", "x"],
        &err("ERR Invalid command specified"),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "OBJECT", "NOSUCH", "x"],
        &err("ERR Invalid command specified"),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "GET"],
        &err("ERR Invalid number of arguments specified for command"),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "ZUNION", "1"],
        &err("ERR Invalid number of arguments specified for command"),
    )
    .await;
    c.call(
        &["COMMAND", "GETKEYS", "GET"][..2],
        "-ERR wrong number of arguments for 'command|getkeys' command\r\n",
    )
    .await;
    n.shutdown().await;
}
