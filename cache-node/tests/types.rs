//! Hashes, lists, sets and sorted sets over real TCP, with exact replies.

mod common;

use common::{Conn, node};

#[tokio::test]
async fn hashes() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["HSET", "h", "f1", "a", "f2", "b"], ":2\r\n").await;
    c.call(&["HSET", "h", "f1", "A", "f3", "c"], ":1\r\n").await;
    c.call(
        &["HSET", "h", "f1"],
        "-ERR wrong number of arguments for 'hset' command\r\n",
    )
    .await;
    c.call(&["HGET", "h", "f1"], "$1\r\nA\r\n").await;
    c.call(&["HGET", "h", "nope"], "$-1\r\n").await;
    c.call(&["HGET", "nokey", "f"], "$-1\r\n").await;
    c.call(
        &["HMGET", "h", "f2", "nope", "f3"],
        "*3\r\n$1\r\nb\r\n$-1\r\n$1\r\nc\r\n",
    )
    .await;
    c.call(&["HMGET", "nokey", "a", "b"], "*2\r\n$-1\r\n$-1\r\n")
        .await;
    c.call(&["HLEN", "h"], ":3\r\n").await;
    c.call(&["HEXISTS", "h", "f2"], ":1\r\n").await;
    c.call(&["HSTRLEN", "h", "f1"], ":1\r\n").await;
    c.call(&["HSETNX", "h", "f1", "x"], ":0\r\n").await;
    c.call(&["HSETNX", "h", "f4", "d"], ":1\r\n").await;
    c.call(&["HDEL", "h", "f2", "f3", "f4", "nope"], ":3\r\n")
        .await;
    c.call(&["HGETALL", "h"], "*2\r\n$2\r\nf1\r\n$1\r\nA\r\n")
        .await;
    c.call(&["HKEYS", "h"], "*1\r\n$2\r\nf1\r\n").await;
    c.call(&["HVALS", "h"], "*1\r\n$1\r\nA\r\n").await;
    c.call(&["HMSET", "h", "n", "5"], "+OK\r\n").await;
    c.call(&["HINCRBY", "h", "n", "10"], ":15\r\n").await;
    c.call(
        &["HINCRBY", "h", "f1", "1"],
        "-ERR hash value is not an integer\r\n",
    )
    .await;
    c.call(&["HINCRBYFLOAT", "h", "x", "10.5"], "$4\r\n10.5\r\n")
        .await;
    c.call(&["HINCRBYFLOAT", "h", "x", "0.1"], "$4\r\n10.6\r\n")
        .await;
    c.call(&["HRANDFIELD", "nokey"], "$-1\r\n").await;
    c.call(&["HRANDFIELD", "nokey", "3"], "*0\r\n").await;
    c.call(&["HDEL", "h", "f1", "n", "x"], ":3\r\n").await;
    c.call(&["EXISTS", "h"], ":0\r\n").await;
    c.call(&["HSET", "one", "f", "v"], ":1\r\n").await;
    c.call(&["HRANDFIELD", "one"], "$1\r\nf\r\n").await;
    c.call(
        &["HRANDFIELD", "one", "-2", "WITHVALUES"],
        "*4\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\nf\r\n$1\r\nv\r\n",
    )
    .await;
    c.call(&["TYPE", "one"], "+hash\r\n").await;
    // Type errors go both ways.
    c.call(
        &["GET", "one"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    c.call(&["SET", "s", "x"], "+OK\r\n").await;
    c.call(
        &["HSET", "s", "f", "v"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    c.call(
        &["HGET", "s", "f"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    c.call(&["MGET", "one", "s"], "*2\r\n$-1\r\n$1\r\nx\r\n")
        .await;
    c.call(&["SET", "one", "now a string"], "+OK\r\n").await;
    c.call(&["TYPE", "one"], "+string\r\n").await;
    // RESP3 answers HGETALL with a map.
    c.call(&["HELLO", "3"], common::HELLO3_FIRST_CLIENT).await;
    c.call(&["HSET", "m", "k", "v"], ":1\r\n").await;
    c.call(&["HGETALL", "m"], "%1\r\n$1\r\nk\r\n$1\r\nv\r\n")
        .await;
    n.shutdown().await;
}

#[tokio::test]
async fn sets() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["SADD", "s", "a", "b", "c", "a"], ":3\r\n").await;
    c.call(&["SADD", "s", "c", "d"], ":1\r\n").await;
    c.call(&["SCARD", "s"], ":4\r\n").await;
    c.call(&["SISMEMBER", "s", "a"], ":1\r\n").await;
    c.call(&["SISMEMBER", "s", "z"], ":0\r\n").await;
    c.call(&["SMISMEMBER", "s", "a", "z"], "*2\r\n:1\r\n:0\r\n")
        .await;
    c.call(&["SMISMEMBER", "nokey", "a"], "*1\r\n:0\r\n").await;
    c.call(&["SREM", "s", "a", "b", "z"], ":2\r\n").await;
    c.call(&["SADD", "t", "c", "x"], ":2\r\n").await;
    c.call(&["SINTER", "s", "t"], "*1\r\n$1\r\nc\r\n").await;
    c.call(&["SDIFF", "s", "t"], "*1\r\n$1\r\nd\r\n").await;
    c.call(&["SINTER", "s", "nokey"], "*0\r\n").await;
    c.call(&["SUNIONSTORE", "u", "s", "t"], ":3\r\n").await;
    c.call(&["SCARD", "u"], ":3\r\n").await;
    c.call(&["SINTERSTORE", "u", "s", "nokey"], ":0\r\n").await;
    c.call(&["EXISTS", "u"], ":0\r\n").await;
    c.call(&["SDIFFSTORE", "u", "t", "s"], ":1\r\n").await;
    c.call(&["SMEMBERS", "u"], "*1\r\n$1\r\nx\r\n").await;
    c.call(&["SMOVE", "u", "s", "x"], ":1\r\n").await;
    c.call(&["SMOVE", "u", "s", "x"], ":0\r\n").await;
    c.call(&["EXISTS", "u"], ":0\r\n").await;
    c.call(&["SCARD", "s"], ":3\r\n").await;
    c.call(&["SPOP", "nokey"], "$-1\r\n").await;
    c.call(
        &["SPOP", "s", "-1"],
        "-ERR value is out of range, must be positive\r\n",
    )
    .await;
    c.call(&["SPOP", "s", "10"], "*3\r\n").await;
    // Three one-letter members in random order.
    c.skip(3 * "$1\r\nX\r\n".len()).await;
    c.call(&["EXISTS", "s"], ":0\r\n").await;
    c.call(&["SADD", "one", "m"], ":1\r\n").await;
    c.call(&["SRANDMEMBER", "one"], "$1\r\nm\r\n").await;
    c.call(
        &["SRANDMEMBER", "one", "-3"],
        "*3\r\n$1\r\nm\r\n$1\r\nm\r\n$1\r\nm\r\n",
    )
    .await;
    c.call(&["SRANDMEMBER", "one", "5"], "*1\r\n$1\r\nm\r\n")
        .await;
    c.call(&["TYPE", "one"], "+set\r\n").await;
    c.call(
        &["HGET", "one", "f"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    c.call(
        &["SADD", "h"],
        "-ERR wrong number of arguments for 'sadd' command\r\n",
    )
    .await;
    n.shutdown().await;
}

#[tokio::test]
async fn lists() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["RPUSH", "l", "a", "b", "c"], ":3\r\n").await;
    c.call(&["LPUSH", "l", "z"], ":4\r\n").await;
    c.call(
        &["LRANGE", "l", "0", "-1"],
        "*4\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    c.call(
        &["LRANGE", "l", "-2", "100"],
        "*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    c.call(&["LRANGE", "nokey", "0", "-1"], "*0\r\n").await;
    c.call(&["LLEN", "l"], ":4\r\n").await;
    c.call(&["LINDEX", "l", "-1"], "$1\r\nc\r\n").await;
    c.call(&["LINDEX", "l", "9"], "$-1\r\n").await;
    c.call(&["LSET", "l", "0", "Z"], "+OK\r\n").await;
    c.call(&["LSET", "l", "9", "Z"], "-ERR index out of range\r\n")
        .await;
    c.call(&["LSET", "nokey", "0", "Z"], "-ERR no such key\r\n")
        .await;
    c.call(&["LINSERT", "l", "BEFORE", "b", "x"], ":5\r\n")
        .await;
    c.call(&["LINSERT", "l", "AFTER", "nope", "x"], ":-1\r\n")
        .await;
    c.call(&["LINSERT", "nokey", "AFTER", "a", "x"], ":0\r\n")
        .await;
    c.call(&["RPUSH", "l", "x", "x"], ":7\r\n").await;
    c.call(&["LPOS", "l", "x"], ":2\r\n").await;
    c.call(&["LPOS", "l", "x", "RANK", "-1"], ":6\r\n").await;
    c.call(
        &["LPOS", "l", "x", "COUNT", "0"],
        "*3\r\n:2\r\n:5\r\n:6\r\n",
    )
    .await;
    c.call(
        &["LPOS", "l", "x", "COUNT", "2", "MAXLEN", "3"],
        "*1\r\n:2\r\n",
    )
    .await;
    c.call(&["LPOS", "l", "nope"], "$-1\r\n").await;
    c.call(&["LREM", "l", "-2", "x"], ":2\r\n").await;
    c.call(
        &["LRANGE", "l", "0", "-1"],
        "*5\r\n$1\r\nZ\r\n$1\r\na\r\n$1\r\nx\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    c.call(&["LTRIM", "l", "1", "-2"], "+OK\r\n").await;
    c.call(
        &["LRANGE", "l", "0", "-1"],
        "*3\r\n$1\r\na\r\n$1\r\nx\r\n$1\r\nb\r\n",
    )
    .await;
    c.call(&["LPOP", "l"], "$1\r\na\r\n").await;
    c.call(&["RPOP", "l", "5"], "*2\r\n$1\r\nb\r\n$1\r\nx\r\n")
        .await;
    c.call(&["EXISTS", "l"], ":0\r\n").await;
    c.call(&["LPOP", "l"], "$-1\r\n").await;
    c.call(&["LPOP", "l", "2"], "*-1\r\n").await;
    c.call(
        &["LPOP", "l", "-2"],
        "-ERR value is out of range, must be positive\r\n",
    )
    .await;
    c.call(&["LPUSHX", "l", "a"], ":0\r\n").await;
    c.call(&["RPUSH", "src", "1", "2"], ":2\r\n").await;
    c.call(&["LMOVE", "src", "dst", "LEFT", "RIGHT"], "$1\r\n1\r\n")
        .await;
    c.call(&["RPOPLPUSH", "src", "dst"], "$1\r\n2\r\n").await;
    c.call(
        &["LRANGE", "dst", "0", "-1"],
        "*2\r\n$1\r\n2\r\n$1\r\n1\r\n",
    )
    .await;
    c.call(&["EXISTS", "src"], ":0\r\n").await;
    c.call(
        &["LMOVE", "src", "dst", "LEFT", "UP"],
        "-ERR syntax error\r\n",
    )
    .await;
    c.call(&["SET", "str", "v"], "+OK\r\n").await;
    c.call(
        &["LPUSH", "str", "a"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    c.call(
        &["LMOVE", "dst", "str", "LEFT", "LEFT"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    c.call(&["LLEN", "dst"], ":2\r\n").await;
    c.call(&["TYPE", "dst"], "+list\r\n").await;
    n.shutdown().await;
}

#[tokio::test]
async fn sorted_sets() {
    let n = node(&[]).await;
    let mut c = Conn::to(&n).await;
    c.call(&["ZADD", "z", "1", "a", "2", "b", "3", "c"], ":3\r\n")
        .await;
    c.call(&["ZADD", "z", "CH", "1", "a", "5", "b", "4", "d"], ":2\r\n")
        .await;
    c.call(
        &["ZADD", "z", "NX", "XX", "1", "a"],
        "-ERR XX and NX options at the same time are not compatible\r\n",
    )
    .await;
    c.call(
        &["ZADD", "z", "GT", "LT", "1", "a"],
        "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n",
    )
    .await;
    c.call(
        &["ZADD", "z", "x", "a"],
        "-ERR value is not a valid float\r\n",
    )
    .await;
    c.call(
        &["ZADD", "z", "1"],
        "-ERR wrong number of arguments for 'zadd' command\r\n",
    )
    .await;
    c.call(&["ZADD", "z", "1", "a", "2"], "-ERR syntax error\r\n")
        .await;
    c.call(&["ZADD", "z", "GT", "CH", "0", "c", "10", "c"], ":1\r\n")
        .await;
    c.call(&["ZSCORE", "z", "c"], "$2\r\n10\r\n").await;
    c.call(&["ZADD", "z", "INCR", "2.5", "a"], "$3\r\n3.5\r\n")
        .await;
    c.call(&["ZADD", "z", "XX", "INCR", "1", "nope"], "$-1\r\n")
        .await;
    c.call(&["ZINCRBY", "z", "-1", "a"], "$3\r\n2.5\r\n").await;
    c.call(&["ZCARD", "z"], ":4\r\n").await;
    // Now: a=2.5 d=4 b=5 c=10
    c.call(
        &["ZRANGE", "z", "0", "-1"],
        "*4\r\n$1\r\na\r\n$1\r\nd\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    c.call(
        &["ZRANGE", "z", "0", "1", "WITHSCORES"],
        "*4\r\n$1\r\na\r\n$3\r\n2.5\r\n$1\r\nd\r\n$1\r\n4\r\n",
    )
    .await;
    c.call(&["ZREVRANGE", "z", "0", "0"], "*1\r\n$1\r\nc\r\n")
        .await;
    c.call(
        &["ZRANGE", "z", "(2.5", "5", "BYSCORE"],
        "*2\r\n$1\r\nd\r\n$1\r\nb\r\n",
    )
    .await;
    c.call(
        &[
            "ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2",
        ],
        "*2\r\n$1\r\nb\r\n$1\r\nd\r\n",
    )
    .await;
    c.call(
        &["ZRANGEBYSCORE", "z", "-inf", "(5", "WITHSCORES"],
        "*4\r\n$1\r\na\r\n$3\r\n2.5\r\n$1\r\nd\r\n$1\r\n4\r\n",
    )
    .await;
    c.call(
        &["ZREVRANGEBYSCORE", "z", "10", "5"],
        "*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
    )
    .await;
    c.call(&["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"], "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n").await;
    c.call(
        &["ZRANGEBYSCORE", "z", "x", "1"],
        "-ERR min or max is not a float\r\n",
    )
    .await;
    c.call(&["ZCOUNT", "z", "3", "+inf"], ":3\r\n").await;
    c.call(&["ZRANK", "z", "b"], ":2\r\n").await;
    c.call(&["ZREVRANK", "z", "b"], ":1\r\n").await;
    c.call(&["ZRANK", "z", "b", "WITHSCORE"], "*2\r\n:2\r\n$1\r\n5\r\n")
        .await;
    c.call(&["ZRANK", "z", "nope"], "$-1\r\n").await;
    c.call(&["ZMSCORE", "z", "a", "nope"], "*2\r\n$3\r\n2.5\r\n$-1\r\n")
        .await;
    c.call(&["ZPOPMIN", "z"], "*2\r\n$1\r\na\r\n$3\r\n2.5\r\n")
        .await;
    c.call(
        &["ZPOPMAX", "z", "2"],
        "*4\r\n$1\r\nc\r\n$2\r\n10\r\n$1\r\nb\r\n$1\r\n5\r\n",
    )
    .await;
    c.call(&["ZREM", "z", "d", "nope"], ":1\r\n").await;
    c.call(&["EXISTS", "z"], ":0\r\n").await;
    c.call(&["ZPOPMIN", "z"], "*0\r\n").await;
    // Lexicographic ranges over equal scores.
    c.call(
        &["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"],
        ":4\r\n",
    )
    .await;
    c.call(
        &["ZRANGEBYLEX", "lex", "[b", "(d"],
        "*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    c.call(
        &["ZREVRANGEBYLEX", "lex", "+", "-", "LIMIT", "0", "1"],
        "*1\r\n$1\r\nd\r\n",
    )
    .await;
    c.call(&["ZLEXCOUNT", "lex", "-", "+"], ":4\r\n").await;
    c.call(
        &["ZRANGEBYLEX", "lex", "b", "d"],
        "-ERR min or max not valid string range item\r\n",
    )
    .await;
    c.call(&["ZRANGESTORE", "dst", "lex", "1", "2"], ":2\r\n")
        .await;
    c.call(
        &["ZRANGE", "dst", "0", "-1"],
        "*2\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    c.call(&["ZREMRANGEBYLEX", "lex", "[a", "[b"], ":2\r\n")
        .await;
    c.call(&["ZREMRANGEBYRANK", "lex", "0", "0"], ":1\r\n")
        .await;
    c.call(&["ZREMRANGEBYSCORE", "lex", "-inf", "+inf"], ":1\r\n")
        .await;
    c.call(&["EXISTS", "lex"], ":0\r\n").await;
    c.call(&["ZADD", "one", "1", "m"], ":1\r\n").await;
    c.call(&["ZRANDMEMBER", "one"], "$1\r\nm\r\n").await;
    c.call(
        &["ZRANDMEMBER", "one", "-2", "WITHSCORES"],
        "*4\r\n$1\r\nm\r\n$1\r\n1\r\n$1\r\nm\r\n$1\r\n1\r\n",
    )
    .await;
    c.call(&["TYPE", "one"], "+zset\r\n").await;
    c.call(
        &["LPUSH", "one", "x"],
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    // RESP3 pairs members with double scores.
    c.call(&["HELLO", "3"], common::HELLO3_FIRST_CLIENT).await;
    c.call(
        &["ZRANGE", "one", "0", "-1", "WITHSCORES"],
        "*1\r\n*2\r\n$1\r\nm\r\n,1\r\n",
    )
    .await;
    c.call(&["ZSCORE", "one", "m"], ",1\r\n").await;
    n.shutdown().await;
}
