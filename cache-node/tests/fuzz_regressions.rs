//! Inputs the fuzz targets (`cache-node/fuzz`) found, replayed as ordinary
//! tests: each one crashed, hung or blew up memory before its fix. The
//! decoder's are replayed on a buffer, the way a connection drives it; the
//! dispatcher's over TCP against a node, as the sessions the fuzzer built.

mod common;

use bytes::BytesMut;
use cache_node::parse::{Decoded, Limits, RESERVE_AHEAD, decode};
use common::{Conn, node};

/// decode, crash-c086bce2: `*1\r\n$1001000\r\nabc` made the decoder reserve
/// the whole claimed bulk (1 MB) for 17 bytes received; with the default
/// limits a claimed 512 MB bulk reserved 512 MB per connection.
#[test]
fn a_claimed_bulk_length_reserves_only_what_arrived() {
    for claimed in ["1001000", "536870912"] {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        buf.extend_from_slice(format!("*1\r\n${claimed}\r\nabc").as_bytes());
        let sent = buf.len();
        assert_eq!(
            decode(&mut buf, &Limits::default()),
            Ok(Decoded::Incomplete)
        );
        assert_eq!(buf.len(), sent, "nothing consumed");
        assert!(
            buf.capacity() <= 2 * (sent + RESERVE_AHEAD),
            "claimed {claimed}: capacity {}",
            buf.capacity()
        );
    }
}

/// The other side of the same fix: a big bulk that does arrive, in small
/// reads, still decodes, and the buffer grows with the data rather than
/// ahead of it.
#[test]
fn a_big_bulk_streams_in_with_the_buffer_growing_along() {
    let value = vec![b'v'; 3 << 20];
    let mut wire = format!("*2\r\n$3\r\nSET\r\n${}\r\n", value.len()).into_bytes();
    wire.extend_from_slice(&value);
    wire.extend_from_slice(b"\r\n");
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut fed = 0;
    for piece in wire.chunks(16 * 1024) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        match decode(&mut buf, &Limits::default()) {
            Ok(Decoded::Incomplete) => {
                assert!(fed < wire.len());
                assert!(buf.capacity() <= 4 * (fed + RESERVE_AHEAD), "at {fed}");
            }
            Ok(Decoded::Request(args)) => {
                assert_eq!(fed, wire.len());
                assert_eq!(args.len(), 2);
                assert_eq!(args[1].len(), value.len());
                assert!(buf.is_empty());
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// dispatch, crash-7bc84a3b: `SPOP key 9223372036854775807` on a set
/// panicked ("capacity overflow"): the random pick reserved room for as
/// many members as asked. SRANDMEMBER, ZRANDMEMBER and HRANDFIELD with a
/// huge positive count had the same flaw. A count past the size now means
/// the whole collection, as in Redis.
#[tokio::test]
async fn huge_positive_counts_return_the_whole_collection() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SADD", "s", "x"], ":1\r\n").await;
    c.call(
        &["SRANDMEMBER", "s", "9223372036854775807"],
        "*1\r\n$1\r\nx\r\n",
    )
    .await;
    c.call(&["ZADD", "z", "1", "m"], ":1\r\n").await;
    c.call(
        &["ZRANDMEMBER", "z", "4611686018427387903"],
        "*1\r\n$1\r\nm\r\n",
    )
    .await;
    c.call(&["HSET", "h", "f", "v"], ":1\r\n").await;
    c.call(
        &["HRANDFIELD", "h", "4611686018427387903", "WITHVALUES"],
        "*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    )
    .await;
    c.call(&["SPOP", "s", "9223372036854775807"], "*1\r\n$1\r\nx\r\n")
        .await;
    c.call(&["EXISTS", "s"], ":0\r\n").await;
    c.call(&["PING"], "+PONG\r\n").await;
    n.shutdown().await;
}

/// dispatch: `HRANDFIELD key -2147483648` on a hash looped 2^31 times,
/// building a reply of 2^31 fields (it had no bound at all; SRANDMEMBER and
/// ZRANDMEMBER stopped at 10 million, still gigabytes of reply). A negative
/// count beyond a million is now refused.
#[tokio::test]
async fn huge_negative_counts_are_out_of_range() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["HSET", "h", "f", "v"], ":1\r\n").await;
    c.call(&["SADD", "s", "x"], ":1\r\n").await;
    c.call(&["ZADD", "z", "1", "m"], ":1\r\n").await;
    for cmd in ["HRANDFIELD h", "SRANDMEMBER s", "ZRANDMEMBER z"] {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        for count in ["-2147483648", "-1000001"] {
            args.push(count);
            c.call(&args, "-ERR value is out of range\r\n").await;
            args.pop();
        }
        // Within the bound, repeats still come back exactly |count| times.
        args.push("-3");
        c.send(&args).await;
        let bulk = match cmd.as_bytes()[0] {
            b'H' => "$1\r\nf\r\n",
            b'S' => "$1\r\nx\r\n",
            _ => "$1\r\nm\r\n",
        };
        c.expect(&format!("*3\r\n{bulk}{bulk}{bulk}")).await;
    }
    // Checked before the key is read, as Redis checks its range.
    c.call(
        &["SRANDMEMBER", "nokey", "-1000001"],
        "-ERR value is out of range\r\n",
    )
    .await;
    n.shutdown().await;
}

/// dispatch: with `--proto-max-bulk-len 1mb`, `SETRANGE key 536870000 x`
/// allocated a 512 MB string: SETRANGE and APPEND checked Redis's default
/// limit instead of the configured one.
#[tokio::test]
async fn strings_stay_within_the_configured_bulk_limit() {
    let n = node(&["--proto-max-bulk-len", "1mb"]).await;
    let mut c = Conn::to(&n).await;
    let too_big = "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n";
    c.call(&["SETRANGE", "k", "536870000", "x"], too_big).await;
    c.call(&["SETRANGE", "k", "1048576", "x"], too_big).await;
    c.call(&["EXISTS", "k"], ":0\r\n").await;
    c.call(&["SETRANGE", "k", "1048575", "x"], ":1048576\r\n")
        .await;
    c.call(&["APPEND", "k", "y"], too_big).await;
    c.call(&["STRLEN", "k"], ":1048576\r\n").await;
    n.shutdown().await;
}

/// dispatch, crash-73c41ff2: `SSUBSCRIBE` of several channels inside
/// MULTI made EXEC announce one element per command and then write one per
/// channel (as Redis does, redis/redis#12207), so the client misread every
/// later reply. Several confirmations now nest as one array; a single one
/// stays as Redis writes it.
#[tokio::test]
async fn exec_stays_well_formed_with_subscriptions_inside() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["SET", "k", "v"], "+QUEUED\r\n").await;
    c.call(&["SSUBSCRIBE", "a", "b"], "+QUEUED\r\n").await;
    c.call(
        &["EXEC"],
        "*2\r\n+OK\r\n*2\r\n*3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$10\r\nssubscribe\r\n$1\r\nb\r\n:2\r\n",
    )
    .await;
    // The first connection is subscribed now (RESP2 allows it little else).
    let mut c = Conn::to(&n).await;
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["SUBSCRIBE", "c"], "+QUEUED\r\n").await;
    c.call(
        &["EXEC"],
        "*1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    )
    .await;
    n.shutdown().await;
}
