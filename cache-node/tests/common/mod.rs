//! Test helpers: a node on a free loopback port and a raw RESP connection
//! whose replies are compared byte for byte.

#![allow(dead_code)]

pub mod snapshots;

use std::time::Duration;

use cache_node::Node;
use cache_node::clock::Clock;
use cache_node::config::Config;
use clap::Parser as _;
use tidecache_topology::protocol::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The flags of a node as the operator runs it (cluster mode, client and
/// admin passwords `pw` and `adm`), named `name`.
pub fn cluster_flags(name: &str) -> Vec<&str> {
    vec![
        "--cluster-enabled",
        "yes",
        "--requirepass",
        "pw",
        "--admin-password",
        "adm",
        "--node-name",
        name,
    ]
}

/// Starts a node on 127.0.0.1 with a free port and the given extra flags.
pub async fn node(flags: &[&str]) -> Node {
    node_with_clock(flags, Clock::tokio()).await
}

pub async fn node_with_clock(flags: &[&str], clock: Clock) -> Node {
    let mut argv = vec![
        "cache-node",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--shutdown-timeout",
        "1",
    ];
    argv.extend_from_slice(flags);
    let config = Config::try_parse_from(argv).unwrap().resolve().unwrap();
    Node::start_with_clock(config, clock).await.unwrap()
}

pub struct Conn(pub TcpStream);

impl Conn {
    pub async fn to(node: &Node) -> Conn {
        Conn(TcpStream::connect(node.addr).await.unwrap())
    }

    /// Sends one command as a RESP array of bulk strings.
    pub async fn send(&mut self, args: &[&str]) {
        self.0.write_all(&encode(args)).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).await.unwrap();
    }

    /// Reads exactly the expected bytes and compares them.
    pub async fn expect(&mut self, expected: &str) {
        let mut buf = vec![0u8; expected.len()];
        tokio::time::timeout(Duration::from_secs(5), self.0.read_exact(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {expected:?}"))
            .unwrap_or_else(|e| panic!("connection failed waiting for {expected:?}: {e}"));
        assert_eq!(String::from_utf8_lossy(&buf), expected);
    }

    /// Reads and discards `n` bytes (a reply whose order is unspecified).
    pub async fn skip(&mut self, n: usize) {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(Duration::from_secs(5), self.0.read_exact(&mut buf))
            .await
            .expect("timed out")
            .unwrap();
    }

    /// Sends a command and checks its exact reply.
    pub async fn call(&mut self, args: &[&str], expected: &str) {
        self.send(args).await;
        self.expect(expected).await;
    }

    /// Sends an admin request and checks its exact reply.
    pub async fn request(&mut self, request: &Request<'_>, expected: &str) {
        self.send_raw(&request.cmd().get_packed_command()).await;
        self.expect(expected).await;
    }

    /// Asserts that the server closed the connection.
    pub async fn expect_closed(&mut self) {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), self.0.read(&mut buf))
            .await
            .expect("server did not close")
            .unwrap_or(0);
        assert_eq!(
            n,
            0,
            "expected EOF, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

/// `HELLO 3`'s reply to the first client of a standalone node.
pub const HELLO3_FIRST_CLIENT: &str = "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";

pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

impl Conn {
    /// Reads one bulk string reply (`$<len>\r\n<data>\r\n`) of unknown length.
    pub async fn read_bulk(&mut self) -> String {
        let mut header = Vec::new();
        let mut byte = [0u8; 1];
        while !header.ends_with(b"\r\n") {
            tokio::time::timeout(Duration::from_secs(5), self.0.read_exact(&mut byte))
                .await
                .expect("timed out reading a bulk header")
                .unwrap();
            header.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&header);
        assert!(text.starts_with('$'), "not a bulk reply: {text:?}");
        let len: usize = text[1..text.len() - 2].parse().unwrap();
        let mut body = vec![0u8; len + 2];
        tokio::time::timeout(Duration::from_secs(5), self.0.read_exact(&mut body))
            .await
            .expect("timed out reading a bulk body")
            .unwrap();
        body.truncate(len);
        String::from_utf8(body).unwrap()
    }
}

/// A loopback port the OS just handed out and took back (for a flag that
/// cannot take 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `WATCH key`, then `cmd`, then a one-command transaction: whether the
/// transaction ran, i.e. whether `cmd` left the key unchanged.
pub async fn leaves_unchanged(c: &mut Conn, key: &str, cmd: &[&str], reply: &str) -> bool {
    c.call(&["WATCH", key], "+OK\r\n").await;
    c.call(cmd, reply).await;
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["PING"], "+QUEUED\r\n").await;
    c.send(&["EXEC"]).await;
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), c.0.read_exact(&mut buf))
        .await
        .expect("timed out waiting for EXEC")
        .unwrap();
    match &buf {
        b"*-1\r\n" => false,
        b"*1\r\n+" => {
            c.expect("PONG\r\n").await;
            true
        }
        other => panic!("EXEC replied {other:?}"),
    }
}

/// A redis-crate connection to `n` as `user` (the default user when
/// `None`) with `password`, if any.
pub async fn redis_conn(
    n: &Node,
    user: Option<&str>,
    password: Option<&str>,
) -> redis::aio::MultiplexedConnection {
    use redis::IntoConnectionInfo as _;
    let mut info = redis::RedisConnectionInfo::default();
    if let Some(p) = password {
        info = info.set_password(p);
    }
    if let Some(u) = user {
        info = info.set_username(u);
    }
    let info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), n.addr.port())
        .into_connection_info()
        .unwrap()
        .set_redis_settings(info);
    redis::Client::open(info)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Installs topology `doc` on `n` as the admin user (`adm`), as the
/// operator does.
pub async fn install_topology(n: &Node, doc: &tidecache_topology::Topology) {
    let document = doc.to_json();
    let _: () = Request::TopologySet {
        document: document.as_bytes(),
    }
    .cmd()
    .query_async(&mut redis_conn(n, Some("tidecache-admin"), Some("adm")).await)
    .await
    .unwrap();
}
