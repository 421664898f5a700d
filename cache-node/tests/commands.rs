//! Commands over real TCP, with exact replies.

mod common;

use cache_node::clock::Clock;
use common::{Conn, node, node_with_clock};
use tidecache_topology::protocol::Request;

#[tokio::test]
async fn strings_and_pipelining() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["PING"], "+PONG\r\n").await;
    c.call(&["ECHO", "hé"], "$3\r\nhé\r\n").await;
    // Three commands in one write come back as three replies, in order.
    let mut batch = common::encode(&["SET", "k", "v"]);
    batch.extend(common::encode(&["GET", "k"]));
    batch.extend(common::encode(&["GET", "missing"]));
    c.send_raw(&batch).await;
    c.expect("+OK\r\n$1\r\nv\r\n$-1\r\n").await;
    c.call(&["MSET", "a", "1", "b", "2"], "+OK\r\n").await;
    c.call(
        &["MGET", "a", "nope", "b"],
        "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n",
    )
    .await;
    c.call(
        &["MSET", "a"],
        "-ERR wrong number of arguments for 'mset' command\r\n",
    )
    .await;
    c.call(&["EXISTS", "a", "a", "nope"], ":2\r\n").await;
    c.call(&["DEL", "a", "b", "nope"], ":2\r\n").await;
    c.call(&["UNLINK", "k"], ":1\r\n").await;
    c.call(&["DBSIZE"], ":0\r\n").await;
    // Inline commands work too.
    c.send_raw(b"SET inline \"a b\"\r\nGET inline\r\n").await;
    c.expect("+OK\r\n$3\r\na b\r\n").await;
    c.call(&["FLUSHALL"], "+OK\r\n").await;
    c.call(&["DBSIZE"], ":0\r\n").await;
    c.call(&["SELECT", "0"], "+OK\r\n").await;
    c.call(&["SELECT", "1"], "-ERR DB index is out of range\r\n")
        .await;
    c.call(
        &["NOSUCH", "x"],
        "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n",
    )
    .await;
    c.call(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    c.call(&["QUIT"], "+OK\r\n").await;
    c.expect_closed().await;
    n.shutdown().await;
}

#[tokio::test]
async fn set_options_follow_redis() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "k", "1", "NX"], "+OK\r\n").await;
    c.call(&["SET", "k", "2", "NX"], "$-1\r\n").await;
    c.call(&["SET", "k", "3", "XX", "GET"], "$1\r\n1\r\n").await;
    c.call(&["SET", "nokey", "3", "XX"], "$-1\r\n").await;
    c.call(&["SET", "nokey", "3", "NX", "GET"], "$-1\r\n").await;
    c.call(&["SET", "k", "v", "NX", "XX"], "-ERR syntax error\r\n")
        .await;
    c.call(
        &["SET", "k", "v", "EX", "10", "PX", "5"],
        "-ERR syntax error\r\n",
    )
    .await;
    c.call(
        &["SET", "k", "v", "EX", "0"],
        "-ERR invalid expire time in 'set' command\r\n",
    )
    .await;
    c.call(
        &["SET", "k", "v", "EX", "x"],
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.call(
        &["SET", "k", "v", "EX", "9223372036854775807"],
        "-ERR invalid expire time in 'set' command\r\n",
    )
    .await;
    c.call(&["SET", "k", "v", "EX", "100"], "+OK\r\n").await;
    c.call(&["TTL", "k"], ":100\r\n").await;
    c.call(&["SET", "k", "w", "KEEPTTL"], "+OK\r\n").await;
    c.call(&["TTL", "k"], ":100\r\n").await;
    c.call(&["SET", "k", "w"], "+OK\r\n").await;
    c.call(&["TTL", "k"], ":-1\r\n").await;
    c.call(&["TTL", "missing"], ":-2\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn counters() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["INCR", "n"], ":1\r\n").await;
    c.call(&["INCRBY", "n", "41"], ":42\r\n").await;
    c.call(&["DECR", "n"], ":41\r\n").await;
    c.call(&["DECRBY", "n", "50"], ":-9\r\n").await;
    c.call(&["SET", "s", "abc"], "+OK\r\n").await;
    c.call(
        &["INCR", "s"],
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.call(&["SET", "big", "9223372036854775807"], "+OK\r\n")
        .await;
    c.call(
        &["INCR", "big"],
        "-ERR increment or decrement would overflow\r\n",
    )
    .await;
    c.call(
        &["INCRBY", "n", "1.5"],
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.call(
        &["DECRBY", "n", "-9223372036854775808"],
        "-ERR decrement would overflow\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn expiry_is_lazy_and_active() {
    let clock = Clock::manual(1_700_000_000_000);
    let n = node_with_clock(&[], clock.clone()).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "a", "1", "PX", "1500"], "+OK\r\n").await;
    c.call(&["SET", "b", "1"], "+OK\r\n").await;
    c.call(&["EXPIRE", "b", "10"], ":1\r\n").await;
    c.call(&["PTTL", "a"], ":1500\r\n").await;
    c.call(&["TTL", "a"], ":2\r\n").await;
    c.call(&["EXPIRE", "b", "5", "GT"], ":0\r\n").await;
    c.call(&["EXPIRE", "b", "5", "LT"], ":1\r\n").await;
    c.call(&["EXPIRE", "b", "5", "NX"], ":0\r\n").await;
    c.call(
        &["EXPIRE", "b", "5", "NX", "XX"],
        "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
    )
    .await;
    c.call(&["PEXPIRE", "missing", "5"], ":0\r\n").await;
    clock.advance(1600);
    c.call(&["GET", "a"], "$-1\r\n").await;
    c.call(&["PERSIST", "b"], ":1\r\n").await;
    c.call(&["PERSIST", "b"], ":0\r\n").await;
    c.call(&["SET", "c", "1", "EXAT", "1700000002"], "+OK\r\n")
        .await;
    clock.advance(1000);
    // The active cycle runs every 100 ms of real time; give it a few rounds.
    for _ in 0..50 {
        c.send(&["DBSIZE"]).await;
        let mut buf = [0u8; 4];
        tokio::io::AsyncReadExt::read_exact(&mut c.0, &mut buf)
            .await
            .unwrap();
        if &buf == b":1\r\n" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.call(&["DBSIZE"], ":1\r\n").await;
    c.call(&["EXPIRE", "b", "-1"], ":1\r\n").await;
    c.call(&["EXISTS", "b"], ":0\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn auth_is_required_when_a_password_is_set() {
    let n = node(&["--requirepass", "s3cret", "--admin-password", "adm"]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["GET", "k"], "-NOAUTH Authentication required.\r\n")
        .await;
    c.call(
        &["AUTH", "wrong"],
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
    c.call(&["AUTH", "s3cret"], "+OK\r\n").await;
    c.call(&["GET", "k"], "$-1\r\n").await;
    c.request(
        &Request::TopologyEpoch,
        "-NOPERM User default has no permissions to run the 'tidecache|topology' command\r\n",
    )
    .await;
    c.call(&["AUTH", "tidecache-admin", "adm"], "+OK\r\n").await;
    c.request(&Request::TopologyEpoch, ":0\r\n").await;
    c.call(&["AUTH", "default", "s3cret"], "+OK\r\n").await;
    n.shutdown().await;

    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["AUTH", "x"], "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn hello_switches_protocol() {
    let n = node(&["--requirepass", "pw"]).await;
    let mut c = Conn::to(&n).await;
    c.send(&["HELLO", "3"]).await;
    c.expect("-NOAUTH HELLO must be called").await;
    let mut rest = String::new();
    let mut buf = [0u8; 1];
    while !rest.ends_with("\r\n") {
        tokio::io::AsyncReadExt::read_exact(&mut c.0, &mut buf)
            .await
            .unwrap();
        rest.push(buf[0] as char);
    }
    c.call(
        &["HELLO", "4"],
        "-NOPROTO sorry, this protocol version is not supported.\r\n",
    )
    .await;
    c.send(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "me"])
        .await;
    c.expect(common::HELLO3_FIRST_CLIENT).await;
    c.call(&["GET", "nothing"], "_\r\n").await;
    c.call(&["CLIENT", "GETNAME"], "$2\r\nme\r\n").await;
    c.call(&["CLIENT", "ID"], ":1\r\n").await;
    c.call(
        &["CLIENT", "SETNAME", "a b"],
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    )
    .await;
    c.call(
        &["CLIENT", "NOPE"],
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn command_table_is_introspectable() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["COMMAND", "INFO", "get"], "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n").await;
    c.call(&["COMMAND", "INFO", "nosuch"], "*1\r\n*-1\r\n")
        .await;
    c.call(&["COMMAND", "DOCS", "echo"], "*2\r\n$4\r\necho\r\n*6\r\n$7\r\nsummary\r\n$25\r\nReturns the given string.\r\n$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$10\r\nconnection\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn more_string_commands() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["APPEND", "s", "Hello"], ":5\r\n").await;
    c.call(&["APPEND", "s", " World"], ":11\r\n").await;
    c.call(&["STRLEN", "s"], ":11\r\n").await;
    c.call(&["STRLEN", "nope"], ":0\r\n").await;
    c.call(&["SETRANGE", "s", "6", "Redis"], ":11\r\n").await;
    c.call(&["GET", "s"], "$11\r\nHello Redis\r\n").await;
    c.call(&["SETRANGE", "pad", "3", "x"], ":4\r\n").await;
    c.call(&["GET", "pad"], "$4\r\n\0\0\0x\r\n").await;
    c.call(&["SETRANGE", "nope", "3", ""], ":0\r\n").await;
    c.call(&["EXISTS", "nope"], ":0\r\n").await;
    c.call(
        &["SETRANGE", "s", "-1", "x"],
        "-ERR offset is out of range\r\n",
    )
    .await;
    c.call(&["SET", "t", "This is a string"], "+OK\r\n").await;
    c.call(&["GETRANGE", "t", "0", "3"], "$4\r\nThis\r\n").await;
    c.call(&["GETRANGE", "t", "-3", "-1"], "$3\r\ning\r\n")
        .await;
    c.call(&["GETRANGE", "t", "0", "-1"], "$16\r\nThis is a string\r\n")
        .await;
    c.call(&["GETRANGE", "t", "10", "100"], "$6\r\nstring\r\n")
        .await;
    c.call(&["GETRANGE", "t", "5", "2"], "$0\r\n\r\n").await;
    c.call(&["GETDEL", "t"], "$16\r\nThis is a string\r\n")
        .await;
    c.call(&["GETDEL", "t"], "$-1\r\n").await;
    c.call(&["SETNX", "n", "1"], ":1\r\n").await;
    c.call(&["SETNX", "n", "2"], ":0\r\n").await;
    c.call(&["SETEX", "e", "100", "v"], "+OK\r\n").await;
    c.call(&["TTL", "e"], ":100\r\n").await;
    c.call(
        &["SETEX", "e", "0", "v"],
        "-ERR invalid expire time in 'setex' command\r\n",
    )
    .await;
    c.call(&["PSETEX", "e", "100000", "v"], "+OK\r\n").await;
    c.call(&["TTL", "e"], ":100\r\n").await;
    c.call(&["GETEX", "e", "EX", "50"], "$1\r\nv\r\n").await;
    c.call(&["TTL", "e"], ":50\r\n").await;
    c.call(&["GETEX", "e", "PERSIST"], "$1\r\nv\r\n").await;
    c.call(&["TTL", "e"], ":-1\r\n").await;
    c.call(
        &["GETEX", "e", "EX", "0"],
        "-ERR invalid expire time in 'getex' command\r\n",
    )
    .await;
    c.call(&["GETEX", "e", "BOGUS", "1"], "-ERR syntax error\r\n")
        .await;
    c.call(&["MSETNX", "m1", "a", "m2", "b"], ":1\r\n").await;
    c.call(&["MSETNX", "m2", "x", "m3", "y"], ":0\r\n").await;
    c.call(&["EXISTS", "m3"], ":0\r\n").await;
    c.call(&["SET", "f", "10.50"], "+OK\r\n").await;
    c.call(&["INCRBYFLOAT", "f", "0.1"], "$4\r\n10.6\r\n").await;
    c.call(&["INCRBYFLOAT", "f", "-5"], "$3\r\n5.6\r\n").await;
    c.call(&["SET", "f", "5.0e3"], "+OK\r\n").await;
    c.call(&["INCRBYFLOAT", "f", "2.0e2"], "$4\r\n5200\r\n")
        .await;
    c.call(
        &["INCRBYFLOAT", "f", "inf"],
        "-ERR value is not a valid float\r\n",
    )
    .await;
    c.call(
        &["INCRBYFLOAT", "s", "1"],
        "-ERR value is not a valid float\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn more_key_commands() {
    let clock = Clock::manual(1_700_000_000_000);
    let n = node_with_clock(&[], clock.clone()).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "a", "1"], "+OK\r\n").await;
    c.call(&["TYPE", "a"], "+string\r\n").await;
    c.call(&["TYPE", "zz"], "+none\r\n").await;
    c.call(&["TOUCH", "a", "zz", "a"], ":2\r\n").await;
    c.call(&["EXPIREAT", "a", "1700000100"], ":1\r\n").await;
    c.call(&["TTL", "a"], ":100\r\n").await;
    c.call(&["EXPIRETIME", "a"], ":1700000100\r\n").await;
    c.call(&["PEXPIREAT", "a", "1700000050000"], ":1\r\n").await;
    c.call(&["PEXPIRETIME", "a"], ":1700000050000\r\n").await;
    c.call(&["EXPIRETIME", "zz"], ":-2\r\n").await;
    c.call(&["RENAME", "a", "b"], "+OK\r\n").await;
    c.call(&["EXISTS", "a"], ":0\r\n").await;
    c.call(&["PEXPIRETIME", "b"], ":1700000050000\r\n").await;
    c.call(&["RENAME", "zz", "b"], "-ERR no such key\r\n").await;
    c.call(&["SET", "c", "3"], "+OK\r\n").await;
    c.call(&["RENAMENX", "b", "c"], ":0\r\n").await;
    c.call(&["RENAMENX", "b", "d"], ":1\r\n").await;
    c.call(&["COPY", "d", "c"], ":0\r\n").await;
    c.call(&["COPY", "d", "c", "REPLACE"], ":1\r\n").await;
    c.call(&["GET", "c"], "$1\r\n1\r\n").await;
    c.call(
        &["COPY", "d", "e", "DB", "1"],
        "-ERR DB index is out of range\r\n",
    )
    .await;
    c.call(&["KEYS", "d*"], "*1\r\n$1\r\nd\r\n").await;
    c.call(&["KEYS", "nothing*"], "*0\r\n").await;
    c.call(&["EXPIREAT", "d", "1"], ":1\r\n").await;
    c.call(&["EXISTS", "d"], ":0\r\n").await;
    c.call(&["FLUSHALL"], "+OK\r\n").await;
    c.call(&["RANDOMKEY"], "$-1\r\n").await;
    c.call(&["SET", "only", "1"], "+OK\r\n").await;
    c.call(&["RANDOMKEY"], "$4\r\nonly\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn bare_command_lists_every_command() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.send(&["COMMAND"]).await;
    c.expect("*").await;
    // The rest of that long reply stays unread: ask on a fresh connection.
    let mut c = Conn::to(&n).await;
    c.call(
        &["COMMAND", "NOSUCH"],
        "-ERR unknown subcommand 'NOSUCH'. Try COMMAND HELP.\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn scan_visits_every_key_once_while_the_keyspace_grows() {
    use redis::AsyncCommands as _;
    let n = node(&[]).await;
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", n.addr.port())).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..2000 {
        let _: () = conn.set(format!("k:{i}"), i).await.unwrap();
    }
    let _: () = conn.hset("h:1", "f", "v").await.unwrap();
    let mut seen = std::collections::HashMap::new();
    let mut cursor = 0u64;
    let mut extra = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("k:*")
            .arg("COUNT")
            .arg(100)
            .query_async(&mut conn)
            .await
            .unwrap();
        for k in keys {
            *seen.entry(k).or_insert(0) += 1;
        }
        // Grow the keyspace during the iteration.
        let _: () = conn.set(format!("new:{extra}"), 1).await.unwrap();
        extra += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 2000, "every key present throughout is returned");
    assert!(seen.values().all(|&n| n == 1), "and returned once");
    let (_, hashes): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("TYPE")
        .arg("hash")
        .arg("COUNT")
        .arg(100_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(hashes, vec!["h:1".to_string()]);
    let err = redis::cmd("SCAN")
        .arg("x")
        .query_async::<redis::Value>(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.detail(), Some("invalid cursor"));
    n.shutdown().await;
}

#[tokio::test]
async fn config_get_and_set() {
    let n = node(&["--maxmemory", "1mb"]).await;
    let mut c = Conn::to(&n).await;
    c.call(
        &["CONFIG", "GET", "maxmemory"],
        "*2\r\n$9\r\nmaxmemory\r\n$7\r\n1048576\r\n",
    )
    .await;
    c.call(&["CONFIG", "GET", "maxmemory*"], "*6\r\n$9\r\nmaxmemory\r\n$7\r\n1048576\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n$17\r\nmaxmemory-samples\r\n$1\r\n5\r\n").await;
    c.call(&["CONFIG", "GET", "nothing"], "*0\r\n").await;
    c.call(&["CONFIG", "SET", "maxmemory", "64"], "+OK\r\n")
        .await;
    c.call(&["SET", "k", "a value"], "+OK\r\n").await;
    c.call(
        &["SET", "k2", "v"],
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    )
    .await;
    c.call(&["GET", "k"], "$7\r\na value\r\n").await;
    c.call(&["DEL", "k"], ":1\r\n").await;
    c.call(&["CONFIG", "SET", "maxmemory", "0"], "+OK\r\n")
        .await;
    c.call(&["SET", "k2", "v"], "+OK\r\n").await;
    c.call(
        &["CONFIG", "SET", "port", "1"],
        "-ERR Unknown option or number of arguments for CONFIG SET - 'port'\r\n",
    )
    .await;
    c.call(&["CONFIG", "SET", "maxmemory", "lots"], "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - invalid memory size \"lots\"\r\n").await;
    n.shutdown().await;
}
