//! HyperLogLog commands over real TCP, with exact replies. The expected
//! values, byte for byte, and the counts are what redis-server 7 produces for
//! the same commands (hll.c's encoding is unchanged from 7.0 to 7.2).

mod common;

use common::{Conn, node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NOT_HLL: &str = "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n";
const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const CORRUPT: &str = "-INVALIDOBJ Corrupted HLL object detected\r\n";

/// A new, empty HyperLogLog (PFADD or PFMERGE of a missing key): one XZERO
/// covering all 16384 registers, the cached count marked stale.
const EMPTY: &str = "48594c4c0100000000000000000000807fff";

/// PFADD n100 0 1 .. 99 (a sparse value).
const N100: &str = concat!(
    "48594c4c01000000000000000000008041768c407684409a9040c9804100801c8c40418840e688405f803f80",
    "41688040419840708408804120804059842080078040f48042108841368040e2800a8040b08c378833804076",
    "80404680408580405f803380404d8840549040da80415b80228040e280405880409480378024804171804065",
    "8442119440aa8040799040db8040ac904147881a84414280158440bf8440d28c4115844081940b8c40b38031",
    "8c28802d803c80404780446e8040928041e6881588408d80410a80404884412484405a8440a580406d84413e",
    "84298040da80078c1b80405880068042f4804059801d8840aa8c40ed80404880404a942c80388c308040b288",
    "40f28c40b880158418883a8040d994408a80407b8040e8",
);

/// PFMERGE m1 n100 abcd, abcd holding a, b, c and d.
const MERGED_N100_ABCD: &str = concat!(
    "48594c4c01000000000000000000008041768c407684409a9040c9804100801c8c40418840e688405f803f80",
    "41688040419840708408804120804059842080078040f48042108841368040e2800a8040b08c378833804076",
    "80404680408580405f803380404d8840549040da80415b80228040e280405880409480378024804171804065",
    "8442119440aa80406b800c9040db8040ac904147881a8441428015841d8040a08440d28c4115844081940b8c",
    "40b380318c28802d803c80404780446e8040928041e6881588408d80410a80404884412484405a8440a58040",
    "6d84404c8440f084298040da80078c1b80405880068042f4804059801d8840aa8c40ed80404880404a942c80",
    "388c308040b28840f28c40b880158418883a80407080406794408a80407b8040e8",
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// FNV-1a, to compare 12 KiB dense values with Redis's without embedding them.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sends a command whose arguments may be any bytes.
async fn send_bytes<A: AsRef<[u8]>>(c: &mut Conn, args: &[A]) {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    c.0.write_all(&out).await.unwrap();
}

async fn read_exact(c: &mut Conn, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(std::time::Duration::from_secs(10), c.0.read_exact(&mut buf))
        .await
        .expect("timed out")
        .unwrap();
    buf
}

/// GET of a value of `len` bytes.
async fn get(c: &mut Conn, key: &str, len: usize) -> Vec<u8> {
    send_bytes(c, &["GET", key]).await;
    let header = format!("${len}\r\n");
    assert_eq!(
        String::from_utf8_lossy(&read_exact(c, header.len()).await),
        header
    );
    let mut body = read_exact(c, len + 2).await;
    assert_eq!(body.split_off(len), b"\r\n");
    body
}

async fn expect_value(c: &mut Conn, key: &str, hex: &str) {
    let want = unhex(hex);
    assert_eq!(get(c, key, want.len()).await, want, "value of {key}");
}

/// PFADD key with the decimal numbers `from..to`, 1000 per command, as the
/// reference values were built.
async fn add_numbers(c: &mut Conn, key: &str, from: usize, to: usize) {
    let mut i = from;
    while i < to {
        let end = (i + 1000).min(to);
        let mut args = vec!["PFADD".to_string(), key.to_string()];
        args.extend((i..end).map(|n| n.to_string()));
        send_bytes(c, &args).await;
        let reply = read_exact(c, 4).await;
        assert!(reply == b":1\r\n" || reply == b":0\r\n", "{reply:?}");
        i = end;
    }
}

async fn count(c: &mut Conn, keys: &[&str]) -> i64 {
    let mut args = vec!["PFCOUNT"];
    args.extend_from_slice(keys);
    send_bytes(c, &args).await;
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(read_exact(c, 1).await);
    }
    let text = String::from_utf8(line).unwrap();
    assert!(text.starts_with(':'), "{text:?}");
    text[1..text.len() - 2].parse().unwrap()
}

#[tokio::test]
async fn pfadd_builds_redis_values() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    // With no elements PFADD still creates the key, and says so.
    c.call(&["PFADD", "e"], ":1\r\n").await;
    c.call(&["EXISTS", "e"], ":1\r\n").await;
    c.call(&["PFADD", "e"], ":0\r\n").await;
    expect_value(&mut c, "e", EMPTY).await;
    c.call(&["PFCOUNT", "e"], ":0\r\n").await;
    c.call(&["TYPE", "e"], "+string\r\n").await;

    c.call(&["PFADD", "h", "a", "b", "c"], ":1\r\n").await;
    c.call(&["PFADD", "h", "a", "b", "c"], ":0\r\n").await;
    expect_value(
        &mut c,
        "h",
        "48594c4c01000000000000000000008060f38050b1844bfb80425a",
    )
    .await;
    // PFCOUNT caches the count in the value, as Redis does.
    c.call(&["PFCOUNT", "h"], ":3\r\n").await;
    expect_value(
        &mut c,
        "h",
        "48594c4c01000000030000000000000060f38050b1844bfb80425a",
    )
    .await;
    c.call(&["PFCOUNT", "h"], ":3\r\n").await;
    c.call(&["PFADD", "h", "a"], ":0\r\n").await;
    c.call(&["PFADD", "h", "d"], ":1\r\n").await;
    // Only the stale flag changes in the cached bytes.
    expect_value(
        &mut c,
        "h",
        "48594c4c0100000003000000000000805c7b8044768050b1844bfb80425a",
    )
    .await;
    c.call(&["PFCOUNT", "h"], ":4\r\n").await;
    c.call(&["PFADD", "es", ""], ":1\r\n").await;
    expect_value(&mut c, "es", "48594c4c01000000000000000000008057318468cc").await;
    c.call(&["PFADD", "one", "0"], ":1\r\n").await;
    expect_value(&mut c, "one", "48594c4c01000000000000000000008073a88c4c55").await;
    c.call(&["PFCOUNT", "one"], ":1\r\n").await;
    add_numbers(&mut c, "n100", 0, 100).await;
    expect_value(&mut c, "n100", N100).await;
    c.call(&["PFCOUNT", "n100"], ":100\r\n").await;
    // Elements of every length up to 40: every MurmurHash64A tail.
    let alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";
    let mut args = vec!["PFADD", "lens"];
    args.extend((1..=40).map(|i| &alphabet[..i]));
    c.call(&args, ":1\r\n").await;
    expect_value(
        &mut c,
        "lens",
        concat!(
            "48594c4c01000000000000000000008042ce80424e80404680455f8c40848042eb88098040468c421f80",
            "4551840f882c8440b88c434d8840ab80268041a08045d584412b8040a98040908040db90428a8040e980",
            "419b8040499c40e68041d68040d48440ee8040938c414c84412680427e8441d880409884411f94424480",
            "4063844255804218"
        ),
    )
    .await;
    c.call(&["PFCOUNT", "lens"], ":40\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn counts_match_redis_and_its_error_bounds() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    assert_eq!(count(&mut c, &["none"]).await, 0);
    // (elements, Redis's estimate, length, FNV-1a of the value before and
    // after PFCOUNT caches the estimate).
    let cases = [
        (
            1000,
            1001,
            1923,
            0x6331_df2d_5fdc_be26,
            0x5149_0756_a435_4f02,
        ),
        (
            2500,
            2517,
            12304,
            0xeb86_02af_5f67_2216,
            0x05cd_ab76_afad_6630,
        ),
        (
            5000,
            4985,
            12304,
            0x1923_2e3f_33a1_5078,
            0x06aa_2459_4633_3ae4,
        ),
        (
            100_000,
            99565,
            12304,
            0x6ec0_4028_d59d_8fa6,
            0xe06f_8585_e625_cb6e,
        ),
    ];
    for (elements, estimate, len, before, after) in cases {
        let key = format!("n{elements}");
        add_numbers(&mut c, &key, 0, elements).await;
        // Sparse while small, dense past hll-sparse-max-bytes (3000).
        c.call(&["STRLEN", &key], &format!(":{len}\r\n")).await;
        assert_eq!(fnv1a(&get(&mut c, &key, len).await), before, "{key}");
        let got = count(&mut c, &[&key]).await;
        assert_eq!(got, estimate, "{key}");
        // 1.04/sqrt(16384) = 0.81% standard error: well within three.
        assert!(
            (got - elements as i64).abs() as f64 <= elements as f64 * 0.0243,
            "{key}"
        );
        assert_eq!(fnv1a(&get(&mut c, &key, len).await), after, "{key}");
    }
    // Long elements, hashed in 8-byte blocks.
    let tokens: Vec<String> = (0..5000)
        .map(|i| format!("user:{i}:session-token"))
        .collect();
    for chunk in tokens.chunks(1000) {
        let mut args = vec!["PFADD", "long"];
        args.extend(chunk.iter().map(String::as_str));
        send_bytes(&mut c, &args).await;
        read_exact(&mut c, 4).await;
    }
    assert_eq!(
        fnv1a(&get(&mut c, "long", 12304).await),
        0x59ee_5472_5d37_79af
    );
    assert_eq!(count(&mut c, &["long"]).await, 5002);

    // Several keys: the estimate of the union, missing keys as empty.
    assert_eq!(count(&mut c, &["n1000", "n100000"]).await, 99565);
    assert_eq!(count(&mut c, &["n1000", "n5000", "nokey"]).await, 4985);
    assert_eq!(count(&mut c, &["nokey", "nokey2"]).await, 0);
    // Two disjoint sets of 5000.
    assert_eq!(count(&mut c, &["long", "n5000"]).await, 9996);
    n.shutdown().await;
}

#[tokio::test]
async fn pfmerge_writes_the_union() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    // Redis's own test: three overlapping sets.
    c.call(&["PFADD", "hll1", "a", "b", "c"], ":1\r\n").await;
    c.call(&["PFADD", "hll2", "b", "c", "d"], ":1\r\n").await;
    c.call(&["PFADD", "hll3", "c", "d", "e"], ":1\r\n").await;
    c.call(&["PFMERGE", "hll", "hll1", "hll2", "hll3"], "+OK\r\n")
        .await;
    c.call(&["PFCOUNT", "hll"], ":5\r\n").await;
    // The sparse encoding after register-by-register merging, exactly.
    add_numbers(&mut c, "n100", 0, 100).await;
    c.call(&["PFADD", "abcd", "a", "b", "c", "d"], ":1\r\n")
        .await;
    c.call(&["PFMERGE", "m1", "n100", "abcd"], "+OK\r\n").await;
    expect_value(&mut c, "m1", MERGED_N100_ABCD).await;
    c.call(&["PFCOUNT", "m1"], ":104\r\n").await;
    // No sources, or only missing ones: an empty HyperLogLog.
    c.call(&["PFMERGE", "m3"], "+OK\r\n").await;
    expect_value(&mut c, "m3", EMPTY).await;
    c.call(&["PFMERGE", "m5", "missing"], "+OK\r\n").await;
    expect_value(&mut c, "m5", EMPTY).await;
    // A dense input makes the result dense.
    add_numbers(&mut c, "n1000", 0, 1000).await;
    add_numbers(&mut c, "n5000", 0, 5000).await;
    c.call(&["PFMERGE", "m2", "n1000", "n5000"], "+OK\r\n")
        .await;
    assert_eq!(
        fnv1a(&get(&mut c, "m2", 12304).await),
        0x1923_2e3f_33a1_5078
    );
    c.call(&["PFCOUNT", "m2"], ":4985\r\n").await;
    // The destination is an input too, and keeps its TTL.
    c.call(&["PFADD", "m4", "x", "y"], ":1\r\n").await;
    c.call(&["EXPIRE", "m4", "100"], ":1\r\n").await;
    c.call(&["PFMERGE", "m4", "n1000"], "+OK\r\n").await;
    c.call(&["STRLEN", "m4"], ":1927\r\n").await;
    assert_eq!(fnv1a(&get(&mut c, "m4", 1927).await), 0xf1c9_62e2_d390_851a);
    c.call(&["PFCOUNT", "m4"], ":1003\r\n").await;
    c.call(&["TTL", "m4"], ":100\r\n").await;
    // Merging into itself changes nothing but the cache flag.
    c.call(&["PFMERGE", "m4"], "+OK\r\n").await;
    c.call(&["PFCOUNT", "m4"], ":1003\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn values_from_redis_work_and_corrupt_ones_are_refused() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    // A sparse value as Redis stores it (say, restored from an RDB file).
    send_bytes(&mut c, &[b"SET".as_slice(), b"r", &unhex(N100)]).await;
    c.expect("+OK\r\n").await;
    c.call(&["PFCOUNT", "r"], ":100\r\n").await;
    c.call(&["PFADD", "r", "99"], ":0\r\n").await;
    c.call(&["PFADD", "r", "100", "101"], ":1\r\n").await;
    c.call(&["PFCOUNT", "r"], ":102\r\n").await;

    c.call(&["SET", "foo", "bar"], "+OK\r\n").await;
    c.call(&["PFADD", "foo", "1"], NOT_HLL).await;
    c.call(&["PFCOUNT", "foo"], NOT_HLL).await;
    c.call(&["PFCOUNT", "foo", "r"], NOT_HLL).await;
    c.call(&["PFMERGE", "bar", "foo"], NOT_HLL).await;
    c.call(&["PFMERGE", "foo", "r"], NOT_HLL).await;
    c.call(&["EXISTS", "bar"], ":0\r\n").await;
    c.call(&["SET", "short", "HYLL"], "+OK\r\n").await;
    c.call(&["PFCOUNT", "short"], NOT_HLL).await;
    c.call(&["LPUSH", "l", "a"], ":1\r\n").await;
    c.call(&["PFADD", "l", "a"], WRONGTYPE).await;
    c.call(&["PFCOUNT", "l"], WRONGTYPE).await;
    c.call(&["PFMERGE", "l"], WRONGTYPE).await;
    c.call(&["PFMERGE", "d", "r", "l"], WRONGTYPE).await;

    // Redis's corruption tests: bytes after the registers...
    c.call(&["PFADD", "hll", "a", "b", "c"], ":1\r\n").await;
    c.call(&["APPEND", "hll", "hello"], ":32\r\n").await;
    c.call(&["PFCOUNT", "hll"], CORRUPT).await;
    c.call(&["PFCOUNT", "hll", "r"], CORRUPT).await;
    c.call(&["PFMERGE", "d", "hll"], CORRUPT).await;
    c.call(&["EXISTS", "d"], ":0\r\n").await;
    // ...a broken magic, an unknown encoding, a dense value of the wrong size.
    c.call(&["DEL", "hll"], ":1\r\n").await;
    c.call(&["PFADD", "hll", "a", "b", "c"], ":1\r\n").await;
    c.call(&["SETRANGE", "hll", "0", "0123"], ":27\r\n").await;
    c.call(&["PFCOUNT", "hll"], NOT_HLL).await;
    c.call(&["DEL", "hll"], ":1\r\n").await;
    c.call(&["PFADD", "hll", "a", "b", "c"], ":1\r\n").await;
    c.call(&["SETRANGE", "hll", "4", "x"], ":27\r\n").await;
    c.call(&["PFCOUNT", "hll"], NOT_HLL).await;
    c.call(&["SETRANGE", "hll", "4", "\0"], ":27\r\n").await;
    c.call(&["PFCOUNT", "hll"], NOT_HLL).await;
    // A header without registers: a valid cached count is still answered,
    // but nothing can be added.
    send_bytes(
        &mut c,
        &[
            b"SET".as_slice(),
            b"bare",
            b"HYLL\x01\0\0\0\x07\0\0\0\0\0\0\0",
        ],
    )
    .await;
    c.expect("+OK\r\n").await;
    c.call(&["PFCOUNT", "bare"], ":7\r\n").await;
    c.call(&["PFADD", "bare", "a"], CORRUPT).await;
    c.call(&["PFCOUNT", "bare", "bare"], CORRUPT).await;
    c.call(
        &["PFADD"],
        "-ERR wrong number of arguments for 'pfadd' command\r\n",
    )
    .await;
    c.call(
        &["PFCOUNT"],
        "-ERR wrong number of arguments for 'pfcount' command\r\n",
    )
    .await;
    c.call(
        &["COMMAND", "DOCS", "pfcount"],
        "*2\r\n$7\r\npfcount\r\n*6\r\n$7\r\nsummary\r\n$86\r\nReturns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).\r\n$5\r\nsince\r\n$5\r\n2.8.9\r\n$5\r\ngroup\r\n$11\r\nhyperloglog\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn only_real_changes_break_watches() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["PFADD", "k", "a", "b"], ":1\r\n").await;
    // As in Redis: PFADD that raises no register, and PFCOUNT answered from
    // the cache, leave the value alone; storing a fresh count changes it.
    assert!(common::leaves_unchanged(&mut c, "k", &["PFADD", "k", "a"], ":0\r\n").await);
    assert!(common::leaves_unchanged(&mut c, "k", &["PFADD", "k"], ":0\r\n").await);
    assert!(!common::leaves_unchanged(&mut c, "k", &["PFADD", "k", "zz"], ":1\r\n").await);
    assert!(!common::leaves_unchanged(&mut c, "k", &["PFCOUNT", "k"], ":3\r\n").await);
    assert!(common::leaves_unchanged(&mut c, "k", &["PFCOUNT", "k"], ":3\r\n").await);
    assert!(!common::leaves_unchanged(&mut c, "k", &["PFMERGE", "k"], "+OK\r\n").await);
    n.shutdown().await;
}
