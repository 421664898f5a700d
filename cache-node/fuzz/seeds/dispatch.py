#!/usr/bin/env python3
"""Writes the seed sessions of the `dispatch` fuzz target to seeds/dispatch/.

Each command is encoded with the target's "raw name" step (selector 2), so
the seeds keep meaning the same commands when the command table changes:
two selector bytes (the high bit of the first picks the client), the name
as a raw argument, a shape byte (0x80 | argument count) and each argument
as a raw one (kind 8, length, bytes). See fuzz_targets/dispatch.rs.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def raw(arg: str) -> bytes:
    data = arg.encode()
    assert len(data) <= 48
    return bytes([8, len(data)]) + data


def command(words, client=0):
    name, args = words[0], words[1:]
    assert len(args) <= 15
    out = bytes([client << 7, 2]) + raw(name) + bytes([0x80 | len(args)])
    for a in args:
        out += raw(a)
    return out


def session(head, *commands):
    out = bytes([head])
    for c in commands:
        client = 0
        if c[0] == "@1":
            client, c = 1, c[1:]
        out += command(c, client)
    return out


SEEDS = {
    "strings": session(0, ["SET", "a", "10", "EX", "100"], ["INCRBY", "a", "5"],
                       ["APPEND", "b", "xyz"], ["SETRANGE", "b", "10", "q"],
                       ["GETRANGE", "b", "0", "-1"], ["MGET", "a", "b", "c"]),
    "hash": session(0, ["HSET", "a", "f", "v", "g", "w"], ["HRANDFIELD", "a", "-3", "WITHVALUES"],
                    ["HINCRBY", "a", "n", "7"], ["HSCAN", "a", "0", "COUNT", "1"]),
    "list": session(0, ["RPUSH", "a", "x", "y", "z"], ["LPOS", "a", "y", "RANK", "-1", "COUNT", "0"],
                    ["LMPOP", "1", "a", "LEFT", "COUNT", "2"], ["BLPOP", "c", "0"]),
    "set": session(0, ["SADD", "a", "x", "y", "z"], ["SRANDMEMBER", "a", "-5"],
                   ["SPOP", "a", "2"], ["SINTERCARD", "2", "a", "b", "LIMIT", "1"]),
    "zset": session(0, ["ZADD", "a", "1", "x", "2.5", "y"], ["ZRANDMEMBER", "a", "-4", "WITHSCORES"],
                    ["ZRANGE", "a", "(1", "+inf", "BYSCORE", "LIMIT", "0", "1"],
                    ["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "2", "3"]),
    "bits": session(0, ["SETBIT", "a", "100", "1"], ["BITCOUNT", "a", "0", "-1", "BIT"],
                    ["BITFIELD", "a", "INCRBY", "u8", "#2", "300", "OVERFLOW", "SAT", "GET", "i16", "4"],
                    ["BITOP", "NOT", "d", "a"], ["BITPOS", "d", "0"]),
    "hll": session(0, ["PFADD", "a", "x", "y"], ["PFADD", "b", "z"], ["PFMERGE", "c", "a", "b"],
                   ["PFCOUNT", "a", "b", "c"]),
    "multi": session(0, ["WATCH", "a"], ["@1", "SET", "a", "1"], ["MULTI"], ["INCR", "a"],
                     ["EXEC"], ["MULTI"], ["GET", "a"], ["EXEC"]),
    "pubsub": session(0, ["SUBSCRIBE", "ch1"], ["PSUBSCRIBE", "ch*"], ["@1", "PUBLISH", "ch1", "hi"],
                      ["HELLO", "3"], ["@1", "PUBLISH", "ch2", "yo"], ["RESET"]),
    "keys": session(0, ["SET", "a", "1"], ["PEXPIRE", "a", "10"], ["COPY", "a", "b"],
                    ["SCAN", "0", "MATCH", "*", "COUNT", "10"], ["OBJECT", "ENCODING", "a"],
                    ["RENAME", "b", "c"], ["TTL", "c"]),
    "server": session(0, ["CONFIG", "SET", "maxmemory", "1kb", "maxmemory-policy", "allkeys-lru"],
                      ["SET", "a", "x" * 40], ["INFO", "everything"], ["CLIENT", "LIST"],
                      ["COMMAND", "GETKEYS", "ZUNIONSTORE", "d", "2", "a", "b"],
                      ["@1", "CLIENT", "PAUSE", "100", "WRITE"], ["SET", "b", "1"]),
    "cluster": session(1, ["AUTH", "pw"], ["@1", "TIDECACHE", "TOPOLOGY", "EPOCH"],
                       ["GET", "a"], ["CLUSTER", "SHARDS"], ["CLUSTER", "KEYSLOT", "a"]),
}

if __name__ == "__main__":
    out = os.path.join(HERE, "dispatch")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
