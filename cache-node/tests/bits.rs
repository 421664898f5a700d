//! Bit commands over real TCP, with exact replies (checked against
//! redis-server 7).

mod common;

use common::{Conn, node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BAD_OFFSET: &str = "-ERR bit offset is not an integer or out of range\r\n";
const BAD_BIT: &str = "-ERR bit is not an integer or out of range\r\n";
const BAD_TYPE: &str = "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n";
const NOT_INTEGER: &str = "-ERR value is not an integer or out of range\r\n";
const SYNTAX: &str = "-ERR syntax error\r\n";
const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

/// Sends a command whose arguments may be any bytes.
async fn send_bytes(c: &mut Conn, args: &[&[u8]]) {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    c.0.write_all(&out).await.unwrap();
}

/// Checks that the next reply is exactly these bytes.
async fn expect_bytes(c: &mut Conn, expected: &[u8]) {
    let mut buf = vec![0u8; expected.len()];
    tokio::time::timeout(std::time::Duration::from_secs(5), c.0.read_exact(&mut buf))
        .await
        .expect("timed out")
        .unwrap();
    assert_eq!(buf, expected);
}

/// GET of a value expected to be exactly `value`.
async fn expect_value(c: &mut Conn, key: &str, value: &[u8]) {
    send_bytes(c, &[b"GET", key.as_bytes()]).await;
    let mut expected = format!("${}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(value);
    expected.extend_from_slice(b"\r\n");
    expect_bytes(c, &expected).await;
}

#[tokio::test]
async fn setbit_and_getbit() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SETBIT", "k", "7", "1"], ":0\r\n").await;
    expect_value(&mut c, "k", b"\x01").await;
    c.call(&["SETBIT", "k", "7", "1"], ":1\r\n").await;
    c.call(&["SETBIT", "k", "7", "0"], ":1\r\n").await;
    // Clearing a bit past the end still grows the string.
    c.call(&["SETBIT", "k", "15", "0"], ":0\r\n").await;
    expect_value(&mut c, "k", b"\x00\x00").await;
    c.call(&["SETBIT", "k", "0", "1"], ":0\r\n").await;
    c.call(&["GETBIT", "k", "0"], ":1\r\n").await;
    c.call(&["GETBIT", "k", "1"], ":0\r\n").await;
    c.call(&["GETBIT", "k", "100000"], ":0\r\n").await;
    c.call(&["GETBIT", "missing", "3"], ":0\r\n").await;
    c.call(&["EXISTS", "missing"], ":0\r\n").await;
    // The bits of an existing string, most significant first: 'a' is 0x61.
    c.call(&["SET", "s", "a"], "+OK\r\n").await;
    c.call(&["GETBIT", "s", "1"], ":1\r\n").await;
    c.call(&["GETBIT", "s", "2"], ":1\r\n").await;
    c.call(&["GETBIT", "s", "3"], ":0\r\n").await;
    c.call(&["SETBIT", "s", "6", "1"], ":0\r\n").await;
    c.call(&["GET", "s"], "$1\r\nc\r\n").await;
    for bad in ["-1", "x", "01", "+1", "4294967296", "9223372036854775808"] {
        c.call(&["SETBIT", "k", bad, "1"], BAD_OFFSET).await;
        c.call(&["GETBIT", "k", bad], BAD_OFFSET).await;
    }
    for bad in ["2", "-1", "01", "x", ""] {
        c.call(&["SETBIT", "nokey", "1", bad], BAD_BIT).await;
    }
    c.call(&["EXISTS", "nokey"], ":0\r\n").await;
    c.call(&["LPUSH", "l", "a"], ":1\r\n").await;
    c.call(&["SETBIT", "l", "1", "1"], WRONGTYPE).await;
    c.call(&["GETBIT", "l", "1"], WRONGTYPE).await;
    // The offset is checked before the type.
    c.call(&["GETBIT", "l", "x"], BAD_OFFSET).await;
    // SETBIT edits the value in place: the TTL stays.
    c.call(&["SET", "t", "x", "EX", "100"], "+OK\r\n").await;
    c.call(&["SETBIT", "t", "100", "1"], ":0\r\n").await;
    c.call(&["TTL", "t"], ":100\r\n").await;
    c.call(&["STRLEN", "t"], ":13\r\n").await;
    c.call(&["SETBIT", "k", "2", "1"], ":0\r\n").await;
    c.call(&["TYPE", "k"], "+string\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn offsets_stop_at_proto_max_bulk_len() {
    let n = node(&["--proto-max-bulk-len", "1mb"]).await;
    let mut c = Conn::to(&n).await;
    // The last bit of a 1 MiB string is addressable, the next one is not.
    c.call(&["SETBIT", "k", "8388607", "1"], ":0\r\n").await;
    c.call(&["STRLEN", "k"], ":1048576\r\n").await;
    c.call(&["SETBIT", "k", "8388608", "1"], BAD_OFFSET).await;
    c.call(&["GETBIT", "k", "8388608"], BAD_OFFSET).await;
    c.call(&["BITCOUNT", "k"], ":1\r\n").await;
    c.call(&["BITPOS", "k", "1"], ":8388607\r\n").await;
    c.call(&["BITFIELD", "k", "GET", "u8", "#1048575"], "*1\r\n:1\r\n")
        .await;
    c.call(&["BITFIELD", "k", "GET", "u8", "#1048576"], BAD_OFFSET)
        .await;
    // A field starting in the last byte may not grow the string past it.
    c.call(
        &["BITFIELD", "k", "SET", "u16", "8388600", "1"],
        "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n",
    )
    .await;
    c.call(&["STRLEN", "k"], ":1048576\r\n").await;
    c.call(
        &["BITFIELD", "k", "SET", "u8", "8388600", "3"],
        "*1\r\n:1\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn bitcount_counts_ranges_of_bytes_or_bits() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "k", "foobar"], "+OK\r\n").await;
    c.call(&["BITCOUNT", "k"], ":26\r\n").await;
    c.call(&["BITCOUNT", "k", "0", "0"], ":4\r\n").await;
    c.call(&["BITCOUNT", "k", "1", "1"], ":6\r\n").await;
    c.call(&["BITCOUNT", "k", "1", "1", "BYTE"], ":6\r\n").await;
    c.call(&["BITCOUNT", "k", "5", "30", "BIT"], ":17\r\n")
        .await;
    c.call(&["BITCOUNT", "k", "0", "-1", "bit"], ":26\r\n")
        .await;
    c.call(&["BITCOUNT", "k", "-2", "-1"], ":7\r\n").await;
    c.call(&["BITCOUNT", "k", "2", "100"], ":16\r\n").await;
    c.call(&["BITCOUNT", "k", "4", "2"], ":0\r\n").await;
    // Both ends negative and reversed count nothing, even where clamping
    // would bring them together; checked before the unit is parsed.
    c.call(&["BITCOUNT", "k", "-100", "-200", "BIT"], ":0\r\n")
        .await;
    c.call(&["BITCOUNT", "k", "-1", "-2", "FOO"], ":0\r\n")
        .await;
    c.call(&["BITCOUNT", "k", "-2", "-1", "FOO"], SYNTAX).await;
    c.call(&["BITCOUNT", "k", "0"], SYNTAX).await;
    c.call(&["BITCOUNT", "k", "0", "1", "BIT", "x"], SYNTAX)
        .await;
    c.call(&["BITCOUNT", "k", "x", "1"], NOT_INTEGER).await;
    c.call(&["BITCOUNT", "k", "0", "01"], NOT_INTEGER).await;
    // Redis 7.2 answers 0 for a missing key before looking at the range.
    c.call(&["BITCOUNT", "missing"], ":0\r\n").await;
    c.call(&["BITCOUNT", "missing", "0"], ":0\r\n").await;
    c.call(&["BITCOUNT", "missing", "a", "b", "c"], ":0\r\n")
        .await;
    c.call(&["SET", "e", ""], "+OK\r\n").await;
    c.call(&["BITCOUNT", "e"], ":0\r\n").await;
    c.call(&["BITCOUNT", "e", "0", "-1"], ":0\r\n").await;
    c.call(&["LPUSH", "l", "a"], ":1\r\n").await;
    c.call(&["BITCOUNT", "l"], WRONGTYPE).await;
    c.call(&["BITCOUNT", "l", "x"], WRONGTYPE).await;
    c.call(
        &["BITCOUNT"],
        "-ERR wrong number of arguments for 'bitcount' command\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn bitpos_finds_the_first_set_or_clear_bit() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    send_bytes(&mut c, &[b"SET", b"k", b"\xff\xf0\x00"]).await;
    c.expect("+OK\r\n").await;
    c.call(&["BITPOS", "k", "0"], ":12\r\n").await;
    send_bytes(&mut c, &[b"SET", b"k", b"\x00\xff\xf0"]).await;
    c.expect("+OK\r\n").await;
    c.call(&["BITPOS", "k", "1", "0"], ":8\r\n").await;
    c.call(&["BITPOS", "k", "1", "2"], ":16\r\n").await;
    c.call(&["BITPOS", "k", "1", "2", "-1", "BYTE"], ":16\r\n")
        .await;
    c.call(&["BITPOS", "k", "1", "7", "15", "BIT"], ":8\r\n")
        .await;
    c.call(&["BITPOS", "k", "1", "7", "-3", "bit"], ":8\r\n")
        .await;
    c.call(&["BITPOS", "k", "0", "8", "-1", "BIT"], ":20\r\n")
        .await;
    c.call(&["BITPOS", "k", "1", "3", "2"], ":-1\r\n").await;
    // Looking for a 0 in an all-ones string: just past its end when no end
    // is given (the string counts as zero-padded), -1 within a given range.
    send_bytes(&mut c, &[b"SET", b"ff", b"\xff\xff"]).await;
    c.expect("+OK\r\n").await;
    c.call(&["BITPOS", "ff", "0"], ":16\r\n").await;
    c.call(&["BITPOS", "ff", "0", "1"], ":16\r\n").await;
    c.call(&["BITPOS", "ff", "0", "0", "-1"], ":-1\r\n").await;
    c.call(&["BITPOS", "ff", "0", "3", "-1", "BIT"], ":-1\r\n")
        .await;
    c.call(&["BITPOS", "ff", "1", "200"], ":-1\r\n").await;
    c.call(&["BITPOS", "ff", "0", "200"], ":-1\r\n").await;
    send_bytes(&mut c, &[b"SET", b"z", b"\x00\x00"]).await;
    c.expect("+OK\r\n").await;
    c.call(&["BITPOS", "z", "1"], ":-1\r\n").await;
    c.call(&["BITPOS", "z", "0", "1"], ":8\r\n").await;
    // A missing key is an endless run of zeros, whatever the range.
    c.call(&["BITPOS", "missing", "0"], ":0\r\n").await;
    c.call(&["BITPOS", "missing", "1", "a"], ":-1\r\n").await;
    // An empty string has no bits at all.
    c.call(&["SET", "e", ""], "+OK\r\n").await;
    c.call(&["BITPOS", "e", "0"], ":-1\r\n").await;
    c.call(&["BITPOS", "e", "1"], ":-1\r\n").await;
    c.call(
        &["BITPOS", "k", "2"],
        "-ERR The bit argument must be 1 or 0.\r\n",
    )
    .await;
    c.call(
        &["BITPOS", "missing", "2"],
        "-ERR The bit argument must be 1 or 0.\r\n",
    )
    .await;
    c.call(&["BITPOS", "k", "x"], NOT_INTEGER).await;
    c.call(&["BITPOS", "k", "0", "x"], NOT_INTEGER).await;
    c.call(&["BITPOS", "k", "0", "0", "x"], NOT_INTEGER).await;
    // The unit is parsed before the end.
    c.call(&["BITPOS", "k", "0", "0", "x", "x"], SYNTAX).await;
    c.call(&["BITPOS", "k", "0", "0", "1", "x"], SYNTAX).await;
    c.call(&["BITPOS", "k", "0", "0", "1", "BIT", "x"], SYNTAX)
        .await;
    c.call(&["LPUSH", "l", "a"], ":1\r\n").await;
    c.call(&["BITPOS", "l", "0", "x"], WRONGTYPE).await;
    n.shutdown().await;
}

#[tokio::test]
async fn bitop_combines_strings() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    send_bytes(&mut c, &[b"SET", b"a", b"\x0f\xf0"]).await;
    c.expect("+OK\r\n").await;
    send_bytes(&mut c, &[b"SET", b"b", b"\xff"]).await;
    c.expect("+OK\r\n").await;
    // Shorter strings and missing keys read as zeros.
    c.call(&["BITOP", "AND", "d", "a", "b"], ":2\r\n").await;
    expect_value(&mut c, "d", b"\x0f\x00").await;
    c.call(&["BITOP", "or", "d", "a", "b"], ":2\r\n").await;
    expect_value(&mut c, "d", b"\xff\xf0").await;
    c.call(&["BITOP", "XOR", "d", "a", "b"], ":2\r\n").await;
    expect_value(&mut c, "d", b"\xf0\xf0").await;
    c.call(&["BITOP", "XOR", "d", "a", "b", "a"], ":2\r\n")
        .await;
    expect_value(&mut c, "d", b"\xff\x00").await;
    c.call(&["BITOP", "AND", "d", "a", "missing"], ":2\r\n")
        .await;
    expect_value(&mut c, "d", b"\x00\x00").await;
    c.call(&["BITOP", "NOT", "d", "a"], ":2\r\n").await;
    expect_value(&mut c, "d", b"\xf0\x0f").await;
    c.call(&["BITOP", "NOT", "d", "d"], ":2\r\n").await;
    expect_value(&mut c, "d", b"\x0f\xf0").await;
    // The destination is replaced, TTL included.
    c.call(&["SET", "t", "x", "EX", "100"], "+OK\r\n").await;
    c.call(&["BITOP", "OR", "t", "a"], ":2\r\n").await;
    c.call(&["TTL", "t"], ":-1\r\n").await;
    // An empty result deletes the destination.
    c.call(&["SET", "e", ""], "+OK\r\n").await;
    c.call(&["BITOP", "AND", "d", "missing", "e"], ":0\r\n")
        .await;
    c.call(&["EXISTS", "d"], ":0\r\n").await;
    c.call(
        &["BITOP", "NOT", "d", "a", "b"],
        "-ERR BITOP NOT must be called with a single source key.\r\n",
    )
    .await;
    c.call(&["BITOP", "NOPE", "d", "a"], SYNTAX).await;
    c.call(&["LPUSH", "l", "x"], ":1\r\n").await;
    c.call(&["BITOP", "AND", "d", "a", "l"], WRONGTYPE).await;
    c.call(&["BITOP", "NOT", "d", "l"], WRONGTYPE).await;
    // Any type of destination is overwritten.
    c.call(&["BITOP", "OR", "l", "a"], ":2\r\n").await;
    c.call(&["TYPE", "l"], "+string\r\n").await;
    c.call(
        &["BITOP", "AND", "d"],
        "-ERR wrong number of arguments for 'bitop' command\r\n",
    )
    .await;
    // The destination is the first key.
    c.call(
        &["COMMAND", "INFO", "bitop"],
        "*1\r\n*10\r\n$5\r\nbitop\r\n:-4\r\n*2\r\n+write\r\n+denyoom\r\n:2\r\n:-1\r\n:1\r\n*3\r\n+@write\r\n+@bitmap\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn bitfield_reads_and_writes_integers() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    // The examples of Redis's documentation.
    c.call(
        &[
            "BITFIELD", "mykey", "INCRBY", "i5", "100", "1", "GET", "u4", "0",
        ],
        "*2\r\n:1\r\n:0\r\n",
    )
    .await;
    for expected in [
        "*2\r\n:1\r\n:1\r\n",
        "*2\r\n:2\r\n:2\r\n",
        "*2\r\n:3\r\n:3\r\n",
        "*2\r\n:0\r\n:3\r\n",
    ] {
        c.call(
            &[
                "BITFIELD", "k", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "INCRBY", "u2",
                "102", "1",
            ],
            expected,
        )
        .await;
    }
    c.call(
        &[
            "BITFIELD", "k", "OVERFLOW", "FAIL", "INCRBY", "u2", "102", "1",
        ],
        "*1\r\n$-1\r\n",
    )
    .await;
    // A field at bit 7 of five bits, as in Redis's bitops.c comment.
    c.call(&["BITFIELD", "f", "SET", "u5", "7", "23"], "*1\r\n:0\r\n")
        .await;
    expect_value(&mut c, "f", b"\x01\x70").await;
    c.call(
        &[
            "BITFIELD", "f", "GET", "u5", "7", "GET", "i5", "7", "GET", "u16", "0",
        ],
        "*3\r\n:23\r\n:-9\r\n:368\r\n",
    )
    .await;
    // `#n` addresses the n-th field of the type's width.
    c.call(
        &[
            "BITFIELD", "h", "SET", "u8", "#1", "200", "GET", "u8", "8", "GET", "i8", "#1",
        ],
        "*3\r\n:0\r\n:200\r\n:-56\r\n",
    )
    .await;
    expect_value(&mut c, "h", b"\x00\xc8").await;
    // SET answers the old value, INCRBY the new one; overflow per policy.
    c.call(
        &[
            "BITFIELD", "o", "SET", "i8", "0", "300", "GET", "i8", "0", "OVERFLOW", "SAT", "SET",
            "i8", "0", "300", "SET", "u8", "0", "-1", "GET", "u8", "0", "OVERFLOW", "WRAP",
            "INCRBY", "u8", "0", "2", "OVERFLOW", "SAT", "INCRBY", "i8", "0", "-200",
        ],
        "*7\r\n:0\r\n:44\r\n:44\r\n:127\r\n:255\r\n:1\r\n:-128\r\n",
    )
    .await;
    c.call(
        &[
            "BITFIELD", "w", "SET", "i64", "0", "-1", "GET", "u63", "0", "GET", "u63", "1",
            "OVERFLOW", "SAT", "INCRBY", "i64", "0", "-9223372036854775808", "OVERFLOW", "WRAP",
            "INCRBY", "i64", "0", "-9223372036854775808",
        ],
        "*5\r\n:0\r\n:9223372036854775807\r\n:9223372036854775807\r\n:-9223372036854775808\r\n:0\r\n",
    )
    .await;
    // Redis's headroom arithmetic wraps: a SET far below the minimum
    // saturates to the maximum.
    c.call(
        &[
            "BITFIELD",
            "q",
            "OVERFLOW",
            "SAT",
            "SET",
            "i33",
            "0",
            "-9223372036854775808",
            "GET",
            "i33",
            "0",
            "SET",
            "i8",
            "40",
            "-9223372036854775681",
            "GET",
            "i8",
            "40",
            "SET",
            "i8",
            "48",
            "-9223372036854775680",
            "GET",
            "i8",
            "48",
        ],
        "*6\r\n:0\r\n:4294967295\r\n:0\r\n:127\r\n:0\r\n:-128\r\n",
    )
    .await;
    // Even a write that fails grows the string to cover it, as in Redis.
    c.call(
        &[
            "BITFIELD", "g", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "10",
        ],
        "*1\r\n$-1\r\n",
    )
    .await;
    expect_value(&mut c, "g", b"\x00").await;
    // Reads past the end are zeros and create nothing.
    c.call(
        &["BITFIELD", "missing", "GET", "i64", "1000"],
        "*1\r\n:0\r\n",
    )
    .await;
    c.call(&["BITFIELD", "missing"], "*0\r\n").await;
    c.call(&["EXISTS", "missing"], ":0\r\n").await;
    // BITFIELD edits in place: the TTL stays.
    c.call(&["SET", "t", "x", "EX", "100"], "+OK\r\n").await;
    c.call(&["BITFIELD", "t", "SET", "u8", "0", "1"], "*1\r\n:120\r\n")
        .await;
    c.call(&["TTL", "t"], ":100\r\n").await;
    // RESP3 nil for a failed write.
    c.call(&["HELLO", "3"], common::HELLO3_FIRST_CLIENT).await;
    c.call(
        &["BITFIELD", "k", "OVERFLOW", "FAIL", "SET", "u2", "0", "4"],
        "*1\r\n_\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn bitfield_errors_follow_redis() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    for bad in ["u64", "i65", "u0", "I8", "x", "", "u", "u+8", "u08"] {
        c.call(&["BITFIELD", "k", "GET", bad, "0"], BAD_TYPE).await;
    }
    for bad in ["-1", "#-1", "x", "+1", "01", "4294967296", "#536870912"] {
        c.call(&["BITFIELD", "k", "GET", "u8", bad], BAD_OFFSET)
            .await;
    }
    c.call(
        &["BITFIELD", "k", "GET", "u8", "4294967295"],
        "*1\r\n:0\r\n",
    )
    .await;
    c.call(
        &["BITFIELD", "k", "GET", "u8", "#536870911"],
        "*1\r\n:0\r\n",
    )
    .await;
    c.call(&["BITFIELD", "k", "SET", "u8", "0", "x"], NOT_INTEGER)
        .await;
    c.call(&["BITFIELD", "k", "SET", "u8", "#1"], SYNTAX).await;
    c.call(&["BITFIELD", "k", "GET", "u8"], SYNTAX).await;
    c.call(&["BITFIELD", "k", "FOO"], SYNTAX).await;
    c.call(&["BITFIELD", "k", "OVERFLOW"], SYNTAX).await;
    c.call(
        &["BITFIELD", "k", "OVERFLOW", "FOO"],
        "-ERR Invalid OVERFLOW type specified\r\n",
    )
    .await;
    c.call(&["BITFIELD", "k", "OVERFLOW", "SAT"], "*0\r\n")
        .await;
    // Nothing was written by any of these.
    c.call(&["EXISTS", "k"], ":0\r\n").await;
    c.call(&["SET", "k", "\u{7f}"], "+OK\r\n").await;
    c.call(
        &["BITFIELD_RO", "k", "GET", "u8", "0", "GET", "i4", "#1"],
        "*2\r\n:127\r\n:-1\r\n",
    )
    .await;
    c.call(
        &["BITFIELD_RO", "k", "OVERFLOW", "WRAP", "GET", "u8", "0"],
        "*1\r\n:127\r\n",
    )
    .await;
    c.call(
        &["BITFIELD_RO", "k", "GET", "u8", "0", "SET", "u8", "0", "1"],
        "-ERR BITFIELD_RO only supports the GET subcommand\r\n",
    )
    .await;
    c.call(&["BITFIELD_RO", "k", "SET", "u8", "0", "x"], NOT_INTEGER)
        .await;
    c.call(&["LPUSH", "l", "a"], ":1\r\n").await;
    c.call(&["BITFIELD", "l", "GET", "u8", "0"], WRONGTYPE)
        .await;
    c.call(&["BITFIELD", "l", "SET", "u8", "0", "1"], WRONGTYPE)
        .await;
    c.call(&["BITFIELD", "l"], WRONGTYPE).await;
    c.call(
        &["BITFIELD_RO", "l", "SET", "u8", "0", "1"],
        "-ERR BITFIELD_RO only supports the GET subcommand\r\n",
    )
    .await;
    c.call(&["BITFIELD", "l", "GET", "u8", "x"], BAD_OFFSET)
        .await;
    n.shutdown().await;
}

#[tokio::test]
async fn writes_that_change_nothing_keep_watches() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "b", "\u{1}"], "+OK\r\n").await;
    // As in Redis: a write counts only when the string's bytes change.
    assert!(common::leaves_unchanged(&mut c, "b", &["SETBIT", "b", "7", "1"], ":1\r\n").await);
    assert!(!common::leaves_unchanged(&mut c, "b", &["SETBIT", "b", "7", "0"], ":1\r\n").await);
    // Clearing a bit past the end grows the string.
    assert!(!common::leaves_unchanged(&mut c, "b", &["SETBIT", "b", "15", "0"], ":0\r\n").await);
    assert!(
        common::leaves_unchanged(
            &mut c,
            "b",
            &[
                "BITFIELD", "b", "SET", "u8", "0", "0", "INCRBY", "u4", "8", "0"
            ],
            "*2\r\n:0\r\n:0\r\n"
        )
        .await
    );
    assert!(
        common::leaves_unchanged(
            &mut c,
            "b",
            &[
                "BITFIELD", "b", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "-1"
            ],
            "*1\r\n$-1\r\n"
        )
        .await
    );
    assert!(
        !common::leaves_unchanged(
            &mut c,
            "b",
            &[
                "BITFIELD", "b", "SET", "u8", "0", "0", "SET", "u8", "0", "1"
            ],
            "*2\r\n:0\r\n:0\r\n"
        )
        .await
    );
    assert!(
        !common::leaves_unchanged(
            &mut c,
            "b",
            &["BITFIELD", "b", "SET", "u8", "16", "0"],
            "*1\r\n:0\r\n"
        )
        .await
    );
    assert!(
        common::leaves_unchanged(
            &mut c,
            "b",
            &["BITFIELD_RO", "b", "GET", "u8", "0"],
            "*1\r\n:1\r\n"
        )
        .await
    );
    n.shutdown().await;
}
