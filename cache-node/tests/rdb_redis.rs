//! RDB and DUMP/RESTORE interoperability with a real redis-server (Debian's
//! 7.0, which `make unit` installs): files and payloads go both ways, and
//! redis-check-rdb accepts the node's files.
//!
//! The same data, every type in every encoding redis-server 7.0 keeps it
//! in (listpack, intset, quicklist with packed and plain nodes, hash
//! tables, skiplists, HyperLogLog strings, LZF-compressible and integer
//! strings, TTLs), is written to both servers by the same commands; each
//! server's keyspace is then read back through the same commands and
//! compared.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

/// A redis-server on a free loopback port, with its files in `dir`.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(dir: &Path) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--dir", dir.to_str().unwrap(), "--dbfilename", "dump.rdb"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "redis-server is needed: `make unit` installs it (e2e/scripts/tools.sh packages)",
            );
        RedisServer { child, port }
    }

    async fn conn(&self) -> MultiplexedConnection {
        connect(&format!("redis://127.0.0.1:{}", self.port)).await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.get_multiplexed_async_connection().await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidecache-rdb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn cmd(c: &mut MultiplexedConnection, args: &[&[u8]]) -> redis::Value {
    let mut command = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        command.arg(*a);
    }
    command
        .query_async(c)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(args[0])))
}

/// Writes every type in every encoding redis-server 7.0 uses for it.
async fn populate(c: &mut MultiplexedConnection) {
    let long_text = "tidecache ".repeat(10_000);
    let strings: Vec<(&str, Vec<u8>)> = vec![
        ("s:small", b"hello".to_vec()),
        ("s:int", b"12345".to_vec()),
        ("s:neg", b"-7".to_vec()),
        ("s:bigint", b"9223372036854775807".to_vec()),
        ("s:lzf", long_text.into_bytes()),
        ("s:bin", (0..=255u8).collect()),
        ("s:empty", Vec::new()),
    ];
    for (k, v) in &strings {
        cmd(c, &[b"SET", k.as_bytes(), v]).await;
    }
    cmd(c, &[b"PFADD", b"hll:sparse", b"a", b"b", b"c"]).await;
    let many: Vec<Vec<u8>> = (0..5000).map(|i| format!("e{i}").into_bytes()).collect();
    let mut args: Vec<&[u8]> = vec![b"PFADD", b"hll:dense"];
    args.extend(many.iter().map(|m| &m[..]));
    cmd(c, &args).await;

    // Lists: one packed node, many packed nodes, and integers in them.
    cmd(
        c,
        &[b"RPUSH", b"l:small", b"a", b"1", b"-300", b"70000", b"bb"],
    )
    .await;
    let items: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("item-{i}").into_bytes())
        .collect();
    let mut args: Vec<&[u8]> = vec![b"RPUSH", b"l:big"];
    args.extend(items.iter().map(|m| &m[..]));
    cmd(c, &args).await;

    // Sets: an intset and a hash table.
    cmd(
        c,
        &[
            b"SADD",
            b"set:ints",
            b"1",
            b"2",
            b"-3",
            b"100000",
            b"5000000000",
        ],
    )
    .await;
    let mut args: Vec<&[u8]> = vec![b"SADD", b"set:big"];
    args.extend(items.iter().take(600).map(|m| &m[..]));
    cmd(c, &args).await;
    cmd(c, &[b"SADD", b"set:str", b"x", b"y"]).await;

    // Sorted sets: a listpack and a skiplist, odd scores included.
    cmd(
        c,
        &[
            b"ZADD", b"z:small", b"1", b"one", b"2.5", b"two", b"-inf", b"low", b"inf", b"high",
        ],
    )
    .await;
    let scored: Vec<(Vec<u8>, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("{}", f64::from(i) / 7.0).into_bytes(),
                format!("m{i}").into_bytes(),
            )
        })
        .collect();
    let mut args: Vec<&[u8]> = vec![b"ZADD", b"z:big"];
    for (s, m) in &scored {
        args.push(s);
        args.push(m);
    }
    cmd(c, &args).await;

    // Hashes: a listpack (with integers) and a hash table (many fields, and
    // a value too long for a listpack).
    cmd(c, &[b"HSET", b"h:small", b"f", b"v", b"n", b"42"]).await;
    let mut args: Vec<&[u8]> = vec![b"HSET", b"h:big"];
    for (s, m) in &scored {
        args.push(m);
        args.push(s);
    }
    cmd(c, &args).await;
    let long_value = vec![b'v'; 200];
    cmd(c, &[b"HSET", b"h:longvalue", b"f", &long_value]).await;

    // Deadlines.
    for k in ["s:small", "l:small", "h:small", "z:small", "set:ints"] {
        cmd(c, &[b"PEXPIRE", k.as_bytes(), b"3600000"]).await;
    }
}

/// A canonical view of a keyspace: per key, its type, its contents in a
/// fixed order, and whether it has a deadline (and how far, in seconds).
async fn keyspace(c: &mut MultiplexedConnection) -> Keyspace {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query_async(c).await.unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let t: String = redis::cmd("TYPE").arg(&key).query_async(c).await.unwrap();
        let mut contents: Vec<Vec<u8>> = match t.as_str() {
            "string" => vec![redis::cmd("GET").arg(&key).query_async(c).await.unwrap()],
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(c)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(c)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(c)
                .await
                .unwrap(),
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(c)
                .await
                .unwrap(),
            other => panic!("unexpected type {other}"),
        };
        if t == "set" {
            contents.sort();
        }
        if t == "zset" {
            // redis-server 7.0 prints scores with 17 digits, the node (as
            // Redis 7.2 does) with the fewest that read back the same double.
            for score in contents.iter_mut().skip(1).step_by(2) {
                let f: f64 = std::str::from_utf8(score).unwrap().parse().unwrap();
                *score = format!("{f:?}").into_bytes();
            }
        }
        if t == "hash" {
            let mut pairs: Vec<Vec<Vec<u8>>> = contents.chunks(2).map(|p| p.to_vec()).collect();
            pairs.sort();
            contents = pairs.concat();
        }
        let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(c).await.unwrap();
        // Seconds, rounded to tens: both servers are read a moment apart.
        out.insert(
            key,
            (t, contents, if ttl < 0 { ttl } else { (ttl + 5) / 10 }),
        );
    }
    out
}

type Keyspace = BTreeMap<Vec<u8>, (String, Vec<Vec<u8>>, i64)>;

/// Asserts two keyspaces are equal, naming the keys that differ (the
/// whole maps are too long to print).
fn assert_same(got: &Keyspace, want: &Keyspace) {
    let short = |v: &[Vec<u8>]| {
        let s: Vec<String> = v
            .iter()
            .take(6)
            .map(|e| String::from_utf8_lossy(&e[..e.len().min(40)]).into_owned())
            .collect();
        format!("{} elements: {s:?}", v.len())
    };
    let mut diffs = Vec::new();
    for key in got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (got.get(key), want.get(key)) {
            (Some(g), Some(w)) if g == w => {}
            (g, w) => {
                let first_diff = match (g, w) {
                    (Some(g), Some(w)) => g.1.iter().zip(&w.1).position(|(a, b)| a != b).map(|i| {
                        format!(
                            " first difference at element {i}: {:?} vs {:?}",
                            String::from_utf8_lossy(&g.1[i]),
                            String::from_utf8_lossy(&w.1[i])
                        )
                    }),
                    _ => None,
                };
                diffs.push(format!(
                    "{}: got {:?}, want {:?}{}",
                    String::from_utf8_lossy(key),
                    g.map(|g| (&g.0, short(&g.1), g.2)),
                    w.map(|w| (&w.0, short(&w.1), w.2)),
                    first_diff.unwrap_or_default()
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "keyspaces differ:\n{}", diffs.join("\n"));
}

async fn wait_for_bgsave(c: &mut MultiplexedConnection) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(c)
            .await
            .unwrap();
        if info.contains("rdb_bgsave_in_progress:0") {
            assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
            return;
        }
        assert!(Instant::now() < deadline, "BGSAVE did not finish: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn check_rdb(path: &Path) {
    let out = Command::new("redis-check-rdb")
        .arg(path)
        .output()
        .expect("redis-check-rdb");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("RDB looks OK!"),
        "redis-check-rdb: {text}"
    );
}

#[tokio::test]
async fn redis_server_files_and_payloads_load_into_the_node() {
    let dir = scratch("from-redis");
    let redis = RedisServer::start(&dir);
    let mut rc = redis.conn().await;
    // Elements above 1000 bytes go in plain quicklist nodes.
    cmd(&mut rc, &[b"DEBUG", b"QUICKLIST-PACKED-THRESHOLD", b"1000"]).await;
    populate(&mut rc).await;
    let big = vec![b'p'; 3000];
    cmd(&mut rc, &[b"RPUSH", b"l:plain", b"small", &big, b"tail"]).await;
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("set:ints")
        .query_async(&mut rc)
        .await
        .unwrap();
    assert_eq!(enc, "intset");
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("z:small")
        .query_async(&mut rc)
        .await
        .unwrap();
    assert_eq!(enc, "listpack");
    cmd(&mut rc, &[b"SAVE"]).await;
    let want = keyspace(&mut rc).await;

    // The file, loaded by a standalone node at start-up.
    let node = common::node(&["--dir", dir.to_str().unwrap()]).await;
    let mut nc = connect(&format!("redis://{}", node.addr)).await;
    assert_same(&keyspace(&mut nc).await, &want);

    // Each key's DUMP payload, restored into the node.
    cmd(&mut nc, &[b"FLUSHALL"]).await;
    for key in want.keys() {
        let payload: Vec<u8> = redis::cmd("DUMP")
            .arg(key)
            .query_async(&mut rc)
            .await
            .unwrap();
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut rc)
            .await
            .unwrap();
        let ttl = pttl.max(0).to_string();
        cmd(&mut nc, &[b"RESTORE", key, ttl.as_bytes(), &payload]).await;
    }
    assert_same(&keyspace(&mut nc).await, &want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn node_files_and_payloads_load_into_redis_server() {
    let dir = scratch("from-node");
    let node = common::node(&["--dir", dir.to_str().unwrap()]).await;
    let mut nc = connect(&format!("redis://{}", node.addr)).await;
    populate(&mut nc).await;
    let want = keyspace(&mut nc).await;

    // BGSAVE's file passes redis-check-rdb and loads into redis-server.
    let reply: String = redis::cmd("BGSAVE").query_async(&mut nc).await.unwrap();
    assert_eq!(reply, "Background saving started");
    wait_for_bgsave(&mut nc).await;
    check_rdb(&dir.join("dump.rdb"));
    let redis = RedisServer::start(&dir);
    let mut rc = redis.conn().await;
    assert_same(&keyspace(&mut rc).await, &want);

    // SAVE's too, and LASTSAVE moves no backwards.
    let before: i64 = redis::cmd("LASTSAVE").query_async(&mut nc).await.unwrap();
    cmd(&mut nc, &[b"SAVE"]).await;
    let after: i64 = redis::cmd("LASTSAVE").query_async(&mut nc).await.unwrap();
    assert!(after >= before && before > 0);
    check_rdb(&dir.join("dump.rdb"));

    // Each key's DUMP payload, restored into redis-server.
    cmd(&mut rc, &[b"FLUSHALL"]).await;
    for key in want.keys() {
        let payload: Vec<u8> = redis::cmd("DUMP")
            .arg(key)
            .query_async(&mut nc)
            .await
            .unwrap();
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut nc)
            .await
            .unwrap();
        let ttl = pttl.max(0).to_string();
        cmd(&mut rc, &[b"RESTORE", key, ttl.as_bytes(), &payload]).await;
    }
    assert_same(&keyspace(&mut rc).await, &want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// RESTORE's checks and their order are redis-server's, with its error
/// texts, compared reply for reply.
#[tokio::test]
async fn restore_errors_match_redis_server() {
    let dir = scratch("restore-errors");
    let redis = RedisServer::start(&dir);
    let node = common::node(&[]).await;
    let mut rc = redis.conn().await;
    let mut nc = connect(&format!("redis://{}", node.addr)).await;
    for c in [&mut rc, &mut nc] {
        cmd(c, &[b"SET", b"k", b"v"]).await;
        cmd(c, &[b"RPUSH", b"l", b"a", b"b"]).await;
    }
    let good: Vec<u8> = redis::cmd("DUMP")
        .arg("l")
        .query_async(&mut rc)
        .await
        .unwrap();
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    let mut newer = good.clone();
    let n = newer.len();
    newer[n - 10] = 99;
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"k", b"0", &good],
        vec![b"RESTORE", b"new", b"-1", &good],
        vec![b"RESTORE", b"new", b"x", &good],
        vec![b"RESTORE", b"new", b"0", &bad_crc],
        vec![b"RESTORE", b"new", b"0", &newer],
        vec![b"RESTORE", b"new", b"0", b"short"],
        vec![b"RESTORE", b"new", b"0", &good, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"new", b"0", &good, b"FREQ", b"256"],
        vec![
            b"RESTORE",
            b"new",
            b"0",
            &good,
            b"IDLETIME",
            b"1",
            b"FREQ",
            b"1",
        ],
        vec![b"RESTORE", b"new", b"0", &good, b"BOGUS"],
        vec![b"RESTORE", b"new", b"1", &good, b"ABSTTL"],
        vec![b"RESTORE", b"k", b"1", &good, b"ABSTTL", b"REPLACE"],
        vec![
            b"RESTORE",
            b"new2",
            b"0",
            &good,
            b"REPLACE",
            b"IDLETIME",
            b"10",
        ],
        vec![b"EXISTS", b"new", b"k", b"new2"],
        vec![b"LRANGE", b"new2", b"0", b"-1"],
    ];
    for args in cases {
        let run = |c: &mut MultiplexedConnection| {
            let mut command = redis::cmd(std::str::from_utf8(args[0]).unwrap());
            for a in &args[1..] {
                command.arg(*a);
            }
            let mut c = c.clone();
            async move {
                match command.query_async::<redis::Value>(&mut c).await {
                    Ok(v) => format!("{v:?}"),
                    Err(e) => format!("error {:?} {:?}", e.code(), e.detail()),
                }
            }
        };
        let (r, n) = (run(&mut rc).await, run(&mut nc).await);
        assert_eq!(
            n,
            r,
            "{:?}",
            args.iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
