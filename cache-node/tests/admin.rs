//! The `TIDECACHE` admin commands as rows of the command table: malformed
//! requests keep the replies the node always gave, the groups keep their
//! ACL categories, and calls are counted per action under one name.

mod common;

use std::time::Duration;

use common::{Conn, cluster_flags, node};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn error(text: &str) -> String {
    format!("-{text}\r\n")
}

const TOPOLOGY_SYNTAX: &str =
    "ERR syntax error: expected TIDECACHE TOPOLOGY SET <json> | GET | EPOCH";
const MIGRATE_SYNTAX: &str = "ERR syntax error: expected TIDECACHE MIGRATE START <id> <host> <port> <epoch> <range>... | STATUS [<id>] | CANCEL <id>";
const IMPORT_SYNTAX: &str = "ERR syntax error: expected TIDECACHE IMPORT BEGIN <id> <epoch> <range>... | APPLY <id> <batch> | COMMIT <id> | ABORT <id> | STATUS <id>";
const REPL_SYNTAX: &str = "ERR syntax error: expected TIDECACHE REPL PSYNC id host port replid offset | SNAPSHOT sync | FETCH id replid offset";

/// A wrong count for an action is the group's syntax error, as when each
/// group was one row; a count the group itself does not take is Redis's
/// arity error, as before.
#[tokio::test]
async fn malformed_admin_requests_answer_as_they_always_did() {
    let n = node(&["--admin-password", "adm"]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["AUTH", "tidecache-admin", "adm"], "+OK\r\n").await;
    let cases: &[(&[&str], String)] = &[
        (
            &["TIDECACHE", "TOPOLOGY", "GET", "x"],
            error(TOPOLOGY_SYNTAX),
        ),
        (&["TIDECACHE", "TOPOLOGY", "SET"], error(TOPOLOGY_SYNTAX)),
        (
            &["TIDECACHE", "topology", "epoch", "1"],
            error(TOPOLOGY_SYNTAX),
        ),
        (&["TIDECACHE", "TOPOLOGY", "PUT"], error(TOPOLOGY_SYNTAX)),
        (
            &["TIDECACHE", "TOPOLOGY"],
            error("ERR wrong number of arguments for 'tidecache|topology' command"),
        ),
        (&["TIDECACHE", "MIGRATE", "CANCEL"], error(MIGRATE_SYNTAX)),
        (
            &["TIDECACHE", "MIGRATE", "START", "m", "h", "1", "1"],
            error(MIGRATE_SYNTAX),
        ),
        (
            &["TIDECACHE", "MIGRATE", "STATUS", "a", "b"],
            error(MIGRATE_SYNTAX),
        ),
        (
            &["TIDECACHE", "IMPORT", "APPLY", "id"],
            error(IMPORT_SYNTAX),
        ),
        (
            &["TIDECACHE", "IMPORT", "STATUS", "a", "b"],
            error(IMPORT_SYNTAX),
        ),
        (
            &["TIDECACHE", "IMPORT", "STATUS"],
            error("ERR wrong number of arguments for 'tidecache|import' command"),
        ),
        (
            &["TIDECACHE", "REPL", "PSYNC", "a", "h"],
            error(REPL_SYNTAX),
        ),
        (
            &["TIDECACHE", "REPL", "FETCH", "a", "r"],
            error(REPL_SYNTAX),
        ),
        (&["TIDECACHE", "REPL", "NOPE", "a"], error(REPL_SYNTAX)),
        // The epoch, then the node's standing, before the rest.
        (
            &["TIDECACHE", "LEASE", "WAIVE", "x", "5"],
            error("ERR value is not an integer or out of range"),
        ),
        (
            &["TIDECACHE", "LEASE", "WAIVE", "1", "5"],
            error("STALE this node runs epoch 0 as a primary, not epoch 1 as a primary"),
        ),
        (
            &["TIDECACHE", "LEASE", "KEEP", "1"],
            error("STALE this node runs epoch 0 as a primary, not epoch 1 as a primary"),
        ),
        (
            &["TIDECACHE", "SLOTSTATS", "x"],
            error("ERR syntax error: expected TIDECACHE SLOTSTATS [LOAD]"),
        ),
        (
            &["TIDECACHE", "SLOTSTATS", "LOAD", "x"],
            error("ERR wrong number of arguments for 'tidecache|slotstats' command"),
        ),
    ];
    for (args, reply) in cases {
        c.call(args, reply).await;
    }
    // Inside a transaction the malformed action is queued and answers at
    // EXEC, as a group's row did.
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["TIDECACHE", "TOPOLOGY", "GET", "x"], "+QUEUED\r\n")
        .await;
    c.call(&["EXEC"], &format!("*1\r\n{}", error(TOPOLOGY_SYNTAX)))
        .await;
    n.shutdown().await;
}

/// A node that cannot be a replication source says so before looking at
/// the request's syntax, and so does one that cannot import.
#[tokio::test]
async fn repl_refuses_before_its_syntax() {
    let n = node(&cluster_flags("a")).await;
    let mut c = Conn::to(&n).await;
    c.call(&["AUTH", "tidecache-admin", "adm"], "+OK\r\n").await;
    let not_source =
        error("ERR this node is not a primary in its topology (yet): nothing to replicate");
    for args in [
        &["TIDECACHE", "REPL", "PSYNC", "a", "h"][..],
        &["TIDECACHE", "REPL", "SNAPSHOT", "1", "2"],
        &["TIDECACHE", "REPL", "NOPE", "a"],
    ] {
        c.call(args, &not_source).await;
    }
    n.shutdown().await;
}

/// The admin groups that are containers list `@slow` as they did as
/// plain rows; `TIDECACHE` itself, a top-level container, lists none.
#[tokio::test]
async fn admin_groups_keep_their_acl_categories() {
    let n = node(&[]).await;
    let mut r = common::redis_conn(&n, None, None).await;
    let slow: Vec<String> = redis::cmd("COMMAND")
        .arg(&["LIST", "FILTERBY", "ACLCAT", "slow"])
        .query_async(&mut r)
        .await
        .unwrap();
    for group in ["topology", "migrate", "import", "repl", "lease"] {
        let name = format!("tidecache|{group}");
        assert!(slow.contains(&name), "{name}");
        assert!(slow.contains(&format!("{name}|{}", "status")) || group != "import");
    }
    assert!(!slow.iter().any(|s| s == "tidecache"));
    let mut c = Conn::to(&n).await;
    c.call(
        &["COMMAND", "INFO", "tidecache|import"],
        "*1\r\n*10\r\n$16\r\ntidecache|import\r\n:-4\r\n*4\r\n+admin\r\n+loading\r\n+stale\r\n+noscript\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n",
    )
    .await;
    n.shutdown().await;
}

/// Calls are counted per action, under the name INFO commandstats and the
/// metric both show.
#[tokio::test]
async fn admin_calls_are_counted_per_action() {
    let port = common::free_port().to_string();
    let n = node(&["--admin-password", "adm", "--http-port", &port]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["AUTH", "tidecache-admin", "adm"], "+OK\r\n").await;
    c.call(&["CONFIG", "RESETSTAT"], "+OK\r\n").await;
    c.call(&["TIDECACHE", "TOPOLOGY", "EPOCH"], ":0\r\n").await;
    c.call(&["TIDECACHE", "TOPOLOGY", "EPOCH"], ":0\r\n").await;
    c.send(&["INFO", "commandstats"]).await;
    let stats = c.read_bulk().await;
    assert!(stats.starts_with("# Commandstats\r\n"), "{stats:?}");
    assert!(
        stats.contains("\r\ncmdstat_tidecache|topology|epoch:calls=2\r\n"),
        "{stats:?}"
    );
    // Not in the default sections, as in Redis.
    c.send(&["INFO"]).await;
    assert!(!c.read_bulk().await.contains("cmdstat_"));

    let mut http = tokio::net::TcpStream::connect(n.http_addr.unwrap())
        .await
        .unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(10), http.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert!(
        body.contains("tidecache_command_calls_total{command=\"tidecache|topology|epoch\"} 2"),
        "{body}"
    );
    n.shutdown().await;
}
