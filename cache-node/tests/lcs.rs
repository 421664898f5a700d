//! LCS over real TCP, with exact replies. Every expected reply below is what
//! redis-server 7.0.15 answered to the same commands, in RESP2 and (after
//! `HELLO 3`) RESP3.

mod common;

use common::{Conn, node};

const SYNTAX: &str = "-ERR syntax error\r\n";
const NOT_INTEGER: &str = "-ERR value is not an integer or out of range\r\n";
const LEN_AND_IDX: &str = "-ERR If you want both the length and indexes, please just use IDX.\r\n";
// Redis's own message for LCS, not the usual WRONGTYPE.
const NOT_STRINGS: &str = "-ERR The specified keys must contain string values\r\n";
const TOO_BIG: &str =
    "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n";

/// `LCS key1 key2 IDX` of the example below: a map of `matches` and `len`,
/// `head` being its RESP2 (`*4`) or RESP3 (`%2`) header.
fn idx_reply(head: &str, matches: &str, len: usize) -> String {
    format!("{head}$7\r\nmatches\r\n{matches}$3\r\nlen\r\n:{len}\r\n")
}

/// The two runs of "ohmytext" / "mynewtext", last first: "text" at 4..7 and
/// 5..8, "my" at 2..3 and 0..1.
const TEXT: &str = "*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n";
const MY: &str = "*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n";
const TEXT_WITH_LEN: &str = "*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n";
const MY_WITH_LEN: &str = "*3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n";

/// Every form of the command, in the protocol `head` (the IDX map's header)
/// belongs to.
async fn every_option(c: &mut Conn, head: &str) {
    c.call(
        &["MSET", "key1", "ohmytext", "key2", "mynewtext"],
        "+OK\r\n",
    )
    .await;
    c.call(&["LCS", "key1", "key2"], "$6\r\nmytext\r\n").await;
    c.call(&["LCS", "key1", "key2", "LEN"], ":6\r\n").await;
    c.call(
        &["LCS", "key1", "key2", "IDX"],
        &idx_reply(head, &format!("*2\r\n{TEXT}{MY}"), 6),
    )
    .await;
    c.call(
        &["LCS", "key1", "key2", "IDX", "WITHMATCHLEN"],
        &idx_reply(head, &format!("*2\r\n{TEXT_WITH_LEN}{MY_WITH_LEN}"), 6),
    )
    .await;
    // MINMATCHLEN drops the shorter runs from IDX, not from `len`.
    c.call(
        &["LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4"],
        &idx_reply(head, &format!("*1\r\n{TEXT}"), 6),
    )
    .await;
    c.call(
        &[
            "lcs",
            "key1",
            "key2",
            "withmatchlen",
            "minmatchlen",
            "4",
            "idx",
        ],
        &idx_reply(head, &format!("*1\r\n{TEXT_WITH_LEN}"), 6),
    )
    .await;
    c.call(
        &["LCS", "key1", "key2", "IDX", "MINMATCHLEN", "5"],
        &idx_reply(head, "*0\r\n", 6),
    )
    .await;
    // A minimum of 0 or below is no minimum.
    for min in ["0", "-5", "-9223372036854775808"] {
        c.call(
            &["LCS", "key1", "key2", "IDX", "MINMATCHLEN", min],
            &idx_reply(head, &format!("*2\r\n{TEXT}{MY}"), 6),
        )
        .await;
    }
    // The last of a repeated option wins; repeats are no error.
    c.call(
        &[
            "LCS",
            "key1",
            "key2",
            "IDX",
            "IDX",
            "MINMATCHLEN",
            "3",
            "MINMATCHLEN",
            "2",
            "WITHMATCHLEN",
        ],
        &idx_reply(head, &format!("*2\r\n{TEXT_WITH_LEN}{MY_WITH_LEN}"), 6),
    )
    .await;
    // Without IDX, MINMATCHLEN and WITHMATCHLEN change nothing.
    c.call(
        &["LCS", "key1", "key2", "WITHMATCHLEN", "MINMATCHLEN", "4"],
        "$6\r\nmytext\r\n",
    )
    .await;
    c.call(
        &[
            "LCS",
            "key1",
            "key2",
            "LEN",
            "LEN",
            "WITHMATCHLEN",
            "MINMATCHLEN",
            "4",
        ],
        ":6\r\n",
    )
    .await;
    // A string with itself: one run, the whole string.
    c.call(
        &["LCS", "key1", "key1", "IDX", "WITHMATCHLEN"],
        &idx_reply(
            head,
            "*1\r\n*3\r\n*2\r\n:0\r\n:7\r\n*2\r\n:0\r\n:7\r\n:8\r\n",
            8,
        ),
    )
    .await;
}

#[tokio::test]
async fn every_option_in_resp2() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    every_option(&mut c, "*4\r\n").await;
}

#[tokio::test]
async fn idx_is_a_map_in_resp3() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.send(&["HELLO", "3"]).await;
    c.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    every_option(&mut c, "%2\r\n").await;
    // Missing keys and errors look the same as in RESP2.
    c.call(
        &["LCS", "missing", "key2", "IDX"],
        "%2\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:0\r\n",
    )
    .await;
    c.call(&["LCS", "missing", "nothing"], "$0\r\n\r\n").await;
    c.call(&["LCS", "key1", "key2", "LEN", "IDX"], LEN_AND_IDX)
        .await;
    c.call(&["RPUSH", "list", "a"], ":1\r\n").await;
    c.call(&["LCS", "key1", "list"], NOT_STRINGS).await;
}

/// Of several longest subsequences, Redis picks one by how it walks its
/// table back; so does the node, and so the answer depends on the order of
/// the keys.
#[tokio::test]
async fn ties_break_as_in_redis() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["MSET", "t1", "abcabcab", "t2", "bacbacba"], "+OK\r\n")
        .await;
    c.call(&["LCS", "t1", "t2"], "$5\r\nbacab\r\n").await;
    c.call(&["LCS", "t2", "t1"], "$5\r\nabcba\r\n").await;
    let one =
        |a: usize, b: usize| format!("*3\r\n*2\r\n:{a}\r\n:{a}\r\n*2\r\n:{b}\r\n:{b}\r\n:1\r\n");
    c.call(
        &["LCS", "t1", "t2", "IDX", "WITHMATCHLEN"],
        &format!(
            "*4\r\n$7\r\nmatches\r\n*5\r\n{}{}{}{}{}$3\r\nlen\r\n:5\r\n",
            one(7, 6),
            one(6, 4),
            one(5, 2),
            one(3, 1),
            one(1, 0)
        ),
    )
    .await;
    c.call(
        &["LCS", "t1", "t2", "MINMATCHLEN", "2", "IDX", "WITHMATCHLEN"],
        "*4\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:5\r\n",
    )
    .await;
    // A run ends where the shorter string starts.
    c.call(&["MSET", "d1", "aaaa", "d2", "aa"], "+OK\r\n").await;
    c.call(
        &["LCS", "d1", "d2", "IDX", "WITHMATCHLEN"],
        "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:2\r\n",
    )
    .await;
    // Any bytes.
    c.call(&["MSET", "bin", "a\0b\r\nc", "bin2", "\0\r\n"], "+OK\r\n")
        .await;
    c.call(&["LCS", "bin", "bin2"], "$3\r\n\0\r\n\r\n").await;
    c.call(
        &["COMMAND", "GETKEYS", "LCS", "a", "b"],
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    )
    .await;
}

#[tokio::test]
async fn missing_keys_are_empty_strings() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "key2", "mynewtext"], "+OK\r\n").await;
    let empty_idx = "*4\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:0\r\n";
    for (a, b) in [
        ("missing", "key2"),
        ("key2", "missing"),
        ("missing", "nothing"),
    ] {
        c.call(&["LCS", a, b], "$0\r\n\r\n").await;
        c.call(&["LCS", a, b, "LEN"], ":0\r\n").await;
        c.call(&["LCS", a, b, "IDX", "WITHMATCHLEN"], empty_idx)
            .await;
    }
    // Both keys are read: hits and misses count as for GET.
    c.call(&["CONFIG", "RESETSTAT"], "+OK\r\n").await;
    c.call(&["LCS", "key2", "missing"], "$0\r\n\r\n").await;
    c.send(&["INFO", "stats"]).await;
    let info = c.read_bulk().await;
    assert!(info.contains("keyspace_hits:1\r\n"), "{info}");
    assert!(info.contains("keyspace_misses:1\r\n"), "{info}");
}

#[tokio::test]
async fn errors_come_in_redis_order() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(
        &["MSET", "key1", "ohmytext", "key2", "mynewtext"],
        "+OK\r\n",
    )
    .await;
    c.call(&["RPUSH", "list", "a"], ":1\r\n").await;
    c.call(&["SADD", "set", "a"], ":1\r\n").await;
    // A key of another type, on either side, before any option is read.
    for args in [
        &["LCS", "key1", "list"][..],
        &["LCS", "list", "key1"],
        &["LCS", "list", "set"],
        &["LCS", "list", "missing"],
        &["LCS", "list", "key1", "bogus"],
        &["LCS", "key1", "list", "LEN", "IDX"],
    ] {
        c.call(args, NOT_STRINGS).await;
    }
    // Options are read in order, and only then is LEN with IDX refused.
    c.call(&["LCS", "key1", "key2", "LEN", "IDX"], LEN_AND_IDX)
        .await;
    c.call(&["LCS", "key1", "key2", "idx", "len"], LEN_AND_IDX)
        .await;
    c.call(&["LCS", "key1", "key2", "LEN", "IDX", "bogus"], SYNTAX)
        .await;
    c.call(
        &["LCS", "key1", "key2", "LEN", "IDX", "MINMATCHLEN", "x"],
        NOT_INTEGER,
    )
    .await;
    c.call(&["LCS", "key1", "key2", "bogus"], SYNTAX).await;
    // MINMATCHLEN without its value is a syntax error; a bad value is not an integer.
    c.call(&["LCS", "key1", "key2", "MINMATCHLEN"], SYNTAX)
        .await;
    c.call(&["LCS", "key1", "key2", "IDX", "MINMATCHLEN"], SYNTAX)
        .await;
    for bad in ["x", "+3", "3.0", "03", "99999999999999999999", ""] {
        c.call(
            &["LCS", "key1", "key2", "MINMATCHLEN", bad, "IDX"],
            NOT_INTEGER,
        )
        .await;
    }
    c.call(
        &["LCS", "key1"],
        "-ERR wrong number of arguments for 'lcs' command\r\n",
    )
    .await;
}

/// The table Redis's algorithm needs is (len1 + 1) × (len2 + 1) u32s; LCS is
/// refused when that exceeds proto-max-bulk-len (1mb = 1048576 bytes here),
/// with every option, before any work, as Redis 7.0.15 refuses it after
/// `CONFIG SET proto-max-bulk-len 1mb`.
#[tokio::test]
async fn the_table_is_bounded_by_proto_max_bulk_len() {
    let n = node(&["--proto-max-bulk-len", "1mb"]).await;
    let mut c = Conn::to(&n).await;
    let a511 = "a".repeat(511);
    let a512 = "a".repeat(512);
    let c262143 = "c".repeat(262_143);
    let c262144 = "c".repeat(262_144);
    for (key, value) in [
        ("a511", &a511),
        ("a512", &a512),
        ("c262143", &c262143),
        ("c262144", &c262144),
    ] {
        c.call(&["SET", key, value], "+OK\r\n").await;
    }
    c.call(&["SET", "b1023", &"b".repeat(1023)], "+OK\r\n")
        .await;
    c.call(&["SET", "one", "b"], "+OK\r\n").await;
    // 512 × 512 × 4 is exactly the limit: allowed.
    c.call(&["LCS", "a511", "a511", "LEN"], ":511\r\n").await;
    c.call(&["LCS", "a511", "a511"], &format!("$511\r\n{a511}\r\n"))
        .await;
    c.call(
        &["LCS", "a511", "a511", "IDX", "WITHMATCHLEN"],
        "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:0\r\n:510\r\n*2\r\n:0\r\n:510\r\n:511\r\n$3\r\nlen\r\n:511\r\n",
    )
    .await;
    // 512 × 513 × 4 is over, whichever way round, whatever the option
    // (LEN needs no table here, but is refused as Redis refuses it).
    for args in [
        &["LCS", "a511", "a512"][..],
        &["LCS", "a512", "a511"],
        &["LCS", "a512", "a512", "LEN"],
        &["LCS", "a512", "a512", "IDX"],
        &[
            "LCS",
            "a512",
            "a511",
            "IDX",
            "MINMATCHLEN",
            "3",
            "WITHMATCHLEN",
        ],
        &["LCS", "b1023", "a511", "LEN"],
    ] {
        c.call(args, TOO_BIG).await;
    }
    // Against an empty or missing string the table is one column.
    c.call(&["LCS", "c262143", "missing", "LEN"], ":0\r\n")
        .await;
    c.call(&["LCS", "missing", "c262143"], "$0\r\n\r\n").await;
    c.call(&["LCS", "c262144", "missing", "LEN"], TOO_BIG).await;
    c.call(&["LCS", "missing", "c262144", "IDX"], TOO_BIG).await;
    c.call(&["LCS", "b1023", "one", "LEN"], ":1\r\n").await;
    // Argument errors still come first.
    c.call(&["LCS", "a512", "a512", "bogus"], SYNTAX).await;
    c.call(&["LCS", "a512", "a512", "LEN", "IDX"], LEN_AND_IDX)
        .await;
    // And the node goes on serving.
    c.call(&["LCS", "one", "b1023"], "$1\r\nb\r\n").await;
}
