//! What a connection can be besides request/reply: a transaction, a
//! subscriber, a blocked client, a paused or killed one. Real TCP, exact
//! replies.

mod common;

use std::time::Duration;

use common::{Conn, node};

#[tokio::test]
async fn transactions_queue_and_run_atomically() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["SET", "k", "1"], "+QUEUED\r\n").await;
    c.call(&["INCR", "k"], "+QUEUED\r\n").await;
    // A runtime error fails that command only.
    c.call(&["LPUSH", "k", "x"], "+QUEUED\r\n").await;
    c.call(&["GET", "k"], "+QUEUED\r\n").await;
    c.call(
        &["EXEC"],
        "*4\r\n+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n$1\r\n2\r\n",
    )
    .await;
    c.call(&["EXEC"], "-ERR EXEC without MULTI\r\n").await;
    c.call(&["DISCARD"], "-ERR DISCARD without MULTI\r\n").await;

    // An error while queueing aborts the whole transaction.
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["MULTI"], "-ERR MULTI calls can not be nested\r\n")
        .await;
    c.call(&["SET", "k", "changed"], "+QUEUED\r\n").await;
    c.call(
        &["NOSUCHCMD"],
        "-ERR unknown command 'NOSUCHCMD', with args beginning with: \r\n",
    )
    .await;
    c.call(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    c.call(
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    )
    .await;
    c.call(&["GET", "k"], "$1\r\n2\r\n").await;

    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["SET", "k", "discarded"], "+QUEUED\r\n").await;
    c.call(&["DISCARD"], "+OK\r\n").await;
    c.call(&["GET", "k"], "$1\r\n2\r\n").await;
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["EXEC"], "*0\r\n").await;
}

#[tokio::test]
async fn watch_fails_a_transaction_whose_keys_changed() {
    let n = node(&[]).await;
    let mut a = Conn::to(&n).await;
    let mut b = Conn::to(&n).await;
    a.call(&["SET", "balance", "10"], "+OK\r\n").await;

    a.call(&["WATCH", "balance"], "+OK\r\n").await;
    b.call(&["INCRBY", "balance", "5"], ":15\r\n").await;
    a.call(&["MULTI"], "+OK\r\n").await;
    a.call(
        &["WATCH", "x"],
        "-ERR WATCH inside MULTI is not allowed\r\n",
    )
    .await;
    a.call(&["SET", "balance", "0"], "+QUEUED\r\n").await;
    a.call(&["EXEC"], "*-1\r\n").await;
    a.call(&["GET", "balance"], "$2\r\n15\r\n").await;

    // Untouched watched keys let it through; EXEC forgets the watches.
    a.call(&["WATCH", "balance", "other"], "+OK\r\n").await;
    a.call(&["MULTI"], "+OK\r\n").await;
    a.call(&["SET", "balance", "0"], "+QUEUED\r\n").await;
    a.call(&["EXEC"], "*1\r\n+OK\r\n").await;
    b.call(&["SET", "balance", "1"], "+OK\r\n").await;
    a.call(&["MULTI"], "+OK\r\n").await;
    a.call(&["EXEC"], "*0\r\n").await;

    // Deleting, expiring or flushing a watched key that existed counts.
    a.call(&["WATCH", "balance"], "+OK\r\n").await;
    b.call(&["FLUSHALL"], "+OK\r\n").await;
    a.call(&["MULTI"], "+OK\r\n").await;
    a.call(&["EXEC"], "*-1\r\n").await;
    // A flush does not touch a watched key that did not exist (Redis 7).
    a.call(&["WATCH", "absent"], "+OK\r\n").await;
    b.call(&["FLUSHALL"], "+OK\r\n").await;
    a.call(&["MULTI"], "+OK\r\n").await;
    a.call(&["EXEC"], "*0\r\n").await;
    // UNWATCH forgets.
    a.call(&["WATCH", "w"], "+OK\r\n").await;
    a.call(&["UNWATCH"], "+OK\r\n").await;
    b.call(&["SET", "w", "1"], "+OK\r\n").await;
    a.call(&["MULTI"], "+OK\r\n").await;
    a.call(&["EXEC"], "*0\r\n").await;
}

/// A transaction that subscribes runs to its end (Redis checks the
/// subscribed context when a command arrives, not inside EXEC); afterwards
/// the connection is subscribed. Replies as Redis 7.0.15 gives them.
#[tokio::test]
async fn a_transaction_that_subscribes_runs_to_its_end() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "k", "v"], "+OK\r\n").await;
    c.call(&["MULTI"], "+OK\r\n").await;
    c.call(&["SUBSCRIBE", "ch"], "+QUEUED\r\n").await;
    c.call(&["GET", "k"], "+QUEUED\r\n").await;
    c.call(
        &["EXEC"],
        "*2\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n$1\r\nv\r\n",
    )
    .await;
    c.call(
        &["GET", "k"],
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    )
    .await;
}

#[tokio::test]
async fn published_messages_reach_channel_and_pattern_subscribers() {
    let n = node(&[]).await;
    let mut sub = Conn::to(&n).await;
    let mut publisher = Conn::to(&n).await;
    sub.call(
        &["SUBSCRIBE", "news", "sport"],
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n",
    )
    .await;
    sub.call(
        &["PSUBSCRIBE", "n*"],
        "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:3\r\n",
    )
    .await;
    // A subscribed RESP2 connection only takes subscription commands and PING.
    sub.call(
        &["GET", "k"],
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    )
    .await;
    sub.call(&["PING"], "*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;

    publisher
        .call(&["PUBLISH", "news", "hello"], ":2\r\n")
        .await;
    sub.expect("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n")
        .await;
    sub.expect("*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n")
        .await;
    publisher.call(&["PUBLISH", "nobody", "x"], ":1\r\n").await;
    sub.expect("*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$6\r\nnobody\r\n$1\r\nx\r\n")
        .await;
    publisher.call(&["PUBLISH", "zzz", "x"], ":0\r\n").await;

    publisher
        .call(
            &["PUBSUB", "NUMSUB", "news", "none"],
            "*4\r\n$4\r\nnews\r\n:1\r\n$4\r\nnone\r\n:0\r\n",
        )
        .await;
    publisher.call(&["PUBSUB", "NUMPAT"], ":1\r\n").await;
    publisher
        .call(&["PUBSUB", "CHANNELS", "sp*"], "*1\r\n$5\r\nsport\r\n")
        .await;

    sub.call(
        &["UNSUBSCRIBE", "sport"],
        "*3\r\n$11\r\nunsubscribe\r\n$5\r\nsport\r\n:2\r\n",
    )
    .await;
    sub.call(
        &["PUNSUBSCRIBE"],
        "*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:1\r\n",
    )
    .await;
    sub.call(
        &["UNSUBSCRIBE"],
        "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n",
    )
    .await;
    sub.call(
        &["UNSUBSCRIBE"],
        "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
    )
    .await;
    // Back to a normal connection.
    sub.call(&["GET", "k"], "$-1\r\n").await;
    publisher.call(&["PUBLISH", "news", "gone"], ":0\r\n").await;
}

#[tokio::test]
async fn resp3_subscribers_get_push_frames_between_replies() {
    let n = node(&[]).await;
    let mut sub = Conn::to(&n).await;
    let mut publisher = Conn::to(&n).await;
    sub.send(&["HELLO", "3"]).await;
    sub.skip(common::HELLO3_FIRST_CLIENT.len()).await;
    sub.call(
        &["SSUBSCRIBE", "orders"],
        ">3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n",
    )
    .await;
    // RESP3 keeps the connection usable for ordinary commands.
    sub.call(&["SET", "k", "v"], "+OK\r\n").await;
    publisher
        .call(&["SPUBLISH", "orders", "o1"], ":1\r\n")
        .await;
    publisher.call(&["PUBLISH", "orders", "o1"], ":0\r\n").await;
    sub.expect(">3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no1\r\n")
        .await;
    publisher
        .call(
            &["PUBSUB", "SHARDNUMSUB", "orders"],
            "*2\r\n$6\r\norders\r\n:1\r\n",
        )
        .await;
    sub.call(&["RESET"], "+RESET\r\n").await;
    publisher.call(&["PUBSUB", "SHARDCHANNELS"], "*0\r\n").await;
}

#[tokio::test]
async fn blocked_pops_wake_on_push_and_time_out() {
    let n = node(&[]).await;
    let mut waiter = Conn::to(&n).await;
    let mut pusher = Conn::to(&n).await;

    waiter.send(&["BLPOP", "q1", "q2", "0"]).await;
    // Commands pipelined behind a blocked one wait for it.
    waiter.send(&["PING"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    pusher.call(&["RPUSH", "q2", "a", "b"], ":2\r\n").await;
    waiter
        .expect("*2\r\n$2\r\nq2\r\n$1\r\na\r\n+PONG\r\n")
        .await;
    pusher
        .call(&["LRANGE", "q2", "0", "-1"], "*1\r\n$1\r\nb\r\n")
        .await;

    // Data already there: no wait.
    waiter
        .call(&["BRPOP", "q2", "1"], "*2\r\n$2\r\nq2\r\n$1\r\nb\r\n")
        .await;
    waiter.call(&["BLPOP", "q1", "0.05"], "*-1\r\n").await;
    waiter
        .call(&["BLPOP", "q1", "-1"], "-ERR timeout is negative\r\n")
        .await;
    waiter
        .call(
            &["BLPOP", "q1", "soon"],
            "-ERR timeout is not a float or out of range\r\n",
        )
        .await;
    pusher.call(&["SET", "str", "x"], "+OK\r\n").await;
    waiter
        .call(
            &["BLPOP", "str", "0"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        )
        .await;

    // BLMOVE and sorted sets.
    waiter
        .send(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"])
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    pusher.call(&["LPUSH", "src", "m"], ":1\r\n").await;
    waiter.expect("$1\r\nm\r\n").await;
    pusher
        .call(&["LRANGE", "dst", "0", "-1"], "*1\r\n$1\r\nm\r\n")
        .await;
    waiter.send(&["BZPOPMIN", "z", "0"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    pusher
        .call(&["ZADD", "z", "2", "two", "1", "one"], ":2\r\n")
        .await;
    waiter
        .expect("*3\r\n$1\r\nz\r\n$3\r\none\r\n$1\r\n1\r\n")
        .await;
    waiter
        .call(
            &["BZPOPMAX", "z", "0"],
            "*3\r\n$1\r\nz\r\n$3\r\ntwo\r\n$1\r\n2\r\n",
        )
        .await;

    // Inside a transaction nothing blocks.
    waiter.call(&["MULTI"], "+OK\r\n").await;
    waiter.call(&["BLPOP", "empty", "0"], "+QUEUED\r\n").await;
    waiter.call(&["EXEC"], "*1\r\n*-1\r\n").await;
}

#[tokio::test]
async fn a_blocked_client_that_leaves_takes_nothing() {
    let n = node(&[]).await;
    let mut gone = Conn::to(&n).await;
    let mut pusher = Conn::to(&n).await;
    gone.send(&["BLPOP", "jobs", "0"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(gone);
    tokio::time::sleep(Duration::from_millis(50)).await;
    pusher.call(&["RPUSH", "jobs", "j1"], ":1\r\n").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    pusher.call(&["LLEN", "jobs"], ":1\r\n").await;
}

#[tokio::test]
async fn client_unblock_ends_a_wait() {
    let n = node(&[]).await;
    let mut waiter = Conn::to(&n).await;
    let mut admin = Conn::to(&n).await;
    waiter.call(&["CLIENT", "ID"], ":1\r\n").await;
    admin.call(&["CLIENT", "UNBLOCK", "1"], ":0\r\n").await;
    waiter.send(&["BLPOP", "q", "0"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin.call(&["CLIENT", "UNBLOCK", "1"], ":1\r\n").await;
    waiter.expect("*-1\r\n").await;
    waiter.send(&["BRPOP", "q", "0"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin
        .call(&["CLIENT", "UNBLOCK", "1", "ERROR"], ":1\r\n")
        .await;
    waiter
        .expect("-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")
        .await;
    // WAIT for a replica that is not there blocks too: TIMEOUT makes it
    // answer what it has, as its own timeout would; ERROR fails it.
    waiter.send(&["WAIT", "1", "0"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin.send(&["INFO", "clients"]).await;
    assert!(admin.read_bulk().await.contains("blocked_clients:1\r\n"));
    admin.call(&["CLIENT", "UNBLOCK", "1"], ":1\r\n").await;
    waiter.expect(":0\r\n").await;
    waiter.send(&["WAIT", "1", "0"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin
        .call(&["CLIENT", "UNBLOCK", "1", "ERROR"], ":1\r\n")
        .await;
    waiter
        .expect("-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")
        .await;
    admin.send(&["INFO", "clients"]).await;
    assert!(admin.read_bulk().await.contains("blocked_clients:0\r\n"));
    admin.call(&["CLIENT", "UNBLOCK", "1"], ":0\r\n").await;
    waiter.call(&["PING"], "+PONG\r\n").await;
    // One wait, one unblock: a second one finds the first pending or the
    // wait over, and is not left behind to end the next wait early.
    waiter.send(&["BLPOP", "q", "0"]).await;
    loop {
        admin.send(&["INFO", "clients"]).await;
        if admin.read_bulk().await.contains("blocked_clients:1\r\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin.send(&["CLIENT", "UNBLOCK", "1"]).await;
    admin.send(&["CLIENT", "UNBLOCK", "1"]).await;
    admin.expect(":1\r\n:0\r\n").await;
    waiter.expect("*-1\r\n").await;
    let started = std::time::Instant::now();
    waiter.call(&["BLPOP", "q", "0.2"], "*-1\r\n").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn client_reply_off_and_skip_drop_replies() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.send(&["CLIENT", "REPLY", "OFF"]).await;
    c.send(&["SET", "a", "1"]).await;
    c.send(&["CLIENT", "REPLY", "ON"]).await;
    c.expect("+OK\r\n").await;
    c.send(&["CLIENT", "REPLY", "SKIP"]).await;
    c.send(&["GET", "a"]).await;
    c.call(&["GET", "a"], "$1\r\n1\r\n").await;
}

#[tokio::test]
async fn client_list_info_and_kill() {
    let n = node(&[]).await;
    let mut me = Conn::to(&n).await;
    let mut victim = Conn::to(&n).await;
    victim
        .call(&["CLIENT", "SETNAME", "victim"], "+OK\r\n")
        .await;
    me.send(&["CLIENT", "LIST"]).await;
    let list = me.read_bulk().await;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("id=1 addr=127.0.0.1:"), "{list}");
    assert!(lines[0].contains(" cmd=client|list "), "{list}");
    assert!(lines[1].contains(" name=victim "), "{list}");
    assert!(lines[1].contains(" cmd=client|setname "), "{list}");
    me.send(&["CLIENT", "INFO"]).await;
    let info = me.read_bulk().await;
    assert!(info.starts_with("id=1 ") && info.ends_with('\n'), "{info}");
    assert!(
        info.contains(" flags=N ") && info.contains(" resp=2 "),
        "{info}"
    );

    me.call(&["CLIENT", "KILL", "1.2.3.4:5"], "-ERR No such client\r\n")
        .await;
    me.call(&["CLIENT", "KILL", "ID", "2"], ":1\r\n").await;
    victim.expect_closed().await;
    // SKIPME defaults to yes.
    me.call(&["CLIENT", "KILL", "ID", "1"], ":0\r\n").await;
    me.call(&["CLIENT", "KILL", "ID", "1", "SKIPME", "no"], ":1\r\n")
        .await;
    me.expect_closed().await;
}

#[tokio::test]
async fn client_pause_write_holds_writes_until_it_ends() {
    let n = node(&[]).await;
    let mut admin = Conn::to(&n).await;
    let mut writer = Conn::to(&n).await;
    admin
        .call(&["CLIENT", "PAUSE", "300", "WRITE"], "+OK\r\n")
        .await;
    // Reads go on.
    writer.call(&["GET", "k"], "$-1\r\n").await;
    let start = std::time::Instant::now();
    writer.send(&["SET", "k", "v"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin.call(&["GET", "k"], "$-1\r\n").await;
    admin.call(&["CLIENT", "UNPAUSE"], "+OK\r\n").await;
    writer.expect("+OK\r\n").await;
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "UNPAUSE ends the pause early"
    );
    admin.call(&["GET", "k"], "$1\r\nv\r\n").await;
    admin
        .call(&["CLIENT", "PAUSE", "-1"], "-ERR timeout is negative\r\n")
        .await;
    // A pause that runs out lets writes through by itself.
    admin
        .call(&["CLIENT", "PAUSE", "50", "WRITE"], "+OK\r\n")
        .await;
    writer.call(&["SET", "k", "w"], "+OK\r\n").await;
}

#[tokio::test]
async fn getset_and_substr_are_the_old_names() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SET", "k", "hello", "EX", "100"], "+OK\r\n").await;
    c.call(&["GETSET", "k", "world"], "$5\r\nhello\r\n").await;
    // Like SET, GETSET drops the deadline.
    c.call(&["TTL", "k"], ":-1\r\n").await;
    c.call(&["GETSET", "new", "v"], "$-1\r\n").await;
    c.call(&["SUBSTR", "k", "1", "3"], "$3\r\norl\r\n").await;
    c.call(&["LPUSH", "l", "x"], ":1\r\n").await;
    c.call(
        &["GETSET", "l", "v"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
}
