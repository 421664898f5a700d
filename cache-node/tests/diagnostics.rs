//! SLOWLOG and MEMORY over real TCP.

mod common;

use common::{Conn, node};

#[tokio::test]
async fn slowlog_records_commands_over_the_threshold() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SLOWLOG", "LEN"], ":0\r\n").await;
    c.call(
        &["CONFIG", "GET", "slowlog-*"],
        "*4\r\n$23\r\nslowlog-log-slower-than\r\n$5\r\n10000\r\n$15\r\nslowlog-max-len\r\n$3\r\n128\r\n",
    )
    .await;
    // Threshold 0 logs every command, including the CONFIG SET itself.
    c.call(
        &[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "0",
            "slowlog-max-len",
            "2",
        ],
        "+OK\r\n",
    )
    .await;
    c.call(&["SET", "k", "v"], "+OK\r\n").await;
    c.call(&["GET", "k"], "$1\r\nv\r\n").await;
    c.call(&["SLOWLOG", "LEN"], ":2\r\n").await;
    c.send(&["SLOWLOG", "GET", "1"]).await;
    // [[id, time, micros, [args], addr, name]]: check the shape and args.
    // The entry's tail is the client's address and name: read up to the
    // address's prefix.
    let mut got = Vec::new();
    {
        use tokio::io::AsyncReadExt as _;
        let mut b = [0u8; 1];
        while !got.ends_with(b"127.0.0.1:") {
            tokio::time::timeout(std::time::Duration::from_secs(5), c.0.read_exact(&mut b))
                .await
                .unwrap()
                .unwrap();
            got.push(b[0]);
        }
    }
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.starts_with("*1\r\n*6\r\n:"), "{got}");
    assert!(
        got.contains("*2\r\n$7\r\nSLOWLOG\r\n$3\r\nLEN\r\n"),
        "the newest entry is the SLOWLOG LEN: {got}"
    );
    // The rest of the address, then the empty name.
    let mut rest = Vec::new();
    {
        use tokio::io::AsyncReadExt as _;
        let mut b = [0u8; 1];
        while !rest.ends_with(b"$0\r\n\r\n") {
            c.0.read_exact(&mut b).await.unwrap();
            rest.push(b[0]);
        }
    }
    c.call(
        &["SLOWLOG", "GET", "-2"],
        "-ERR count should be greater than or equal to -1\r\n",
    )
    .await;
    c.call(
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
        "+OK\r\n",
    )
    .await;
    c.call(&["SLOWLOG", "RESET"], "+OK\r\n").await;
    c.call(&["SLOWLOG", "LEN"], ":0\r\n").await;
}

#[tokio::test]
async fn memory_usage_grows_with_the_value() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["MEMORY", "USAGE", "missing"], "$-1\r\n").await;
    c.call(&["SET", "small", "x"], "+OK\r\n").await;
    let big = "y".repeat(10_000);
    c.call(&["SET", "big", &big], "+OK\r\n").await;
    let small = usage(&mut c, "small").await;
    let large = usage(&mut c, "big").await;
    assert!(small > 0 && small < 200, "{small}");
    assert!((10_000..11_000).contains(&large), "{large}");
    c.call(
        &["MEMORY", "USAGE", "big", "SAMPLES", "x"],
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.send(&["MEMORY", "STATS"]).await;
    c.skip(4).await; // "*N\r\n" with N < 100: the map's flat RESP2 form.
}

#[tokio::test]
async fn blmpop_and_bzmpop_block_then_pop() {
    let n = node(&[]).await;
    let mut waiter = Conn::to(&n).await;
    let mut pusher = Conn::to(&n).await;
    waiter
        .call(
            &["BLMPOP", "0", "0", "a", "LEFT"],
            "-ERR numkeys should be greater than 0\r\n",
        )
        .await;
    waiter
        .call(
            &["BLMPOP", "-1", "1", "a", "LEFT"],
            "-ERR timeout is negative\r\n",
        )
        .await;
    waiter
        .call(&["BLMPOP", "0.01", "1", "a", "LEFT"], "*-1\r\n")
        .await;
    waiter
        .send(&["BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "5"])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    pusher.call(&["RPUSH", "b", "1", "2"], ":2\r\n").await;
    waiter
        .expect("*2\r\n$1\r\nb\r\n*2\r\n$1\r\n2\r\n$1\r\n1\r\n")
        .await;
    waiter.send(&["BZMPOP", "0", "1", "z", "MAX"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    pusher
        .call(&["ZADD", "z", "1", "m1", "2", "m2"], ":2\r\n")
        .await;
    waiter
        .expect("*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$2\r\nm2\r\n$1\r\n2\r\n")
        .await;
}

/// Sends MEMORY USAGE and parses its integer reply.
async fn usage(c: &mut Conn, key: &str) -> i64 {
    use tokio::io::AsyncReadExt as _;
    c.send(&["MEMORY", "USAGE", key]).await;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        c.0.read_exact(&mut b).await.unwrap();
        line.push(b[0]);
    }
    let s = String::from_utf8(line).unwrap();
    s[1..s.len() - 2].parse::<i64>().unwrap()
}
