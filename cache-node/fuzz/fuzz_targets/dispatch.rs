//! Fuzzes command dispatch: the input is read as a short session — a
//! sequence of commands from two clients, with the clock moved and active
//! expiry run in between — against a node's state built without network
//! (`Shared`, `Db` on a manual clock, the cluster state, `Client`s), the
//! way `server::run_batch` drives it.
//!
//! Command names come from the command table (`cmd::COMMANDS`, with their
//! subcommands at every depth) and arguments mostly from small dictionaries (a few keys,
//! boundary integers, option keywords, floats, range and glob syntax,
//! topology documents), so sessions get past argument parsing and build
//! real values for later commands to work on.
//!
//! Checks: no panic; every reply (and every pub/sub message) encodes to
//! well-formed RESP2 and RESP3 — one value, lengths and counts right, no
//! line break inside a simple string, errors starting with an uppercase
//! code, no RESP3-only type in RESP2. Memory: the node runs with
//! `--proto-max-bulk-len 1mb`, so no value may legitimately exceed 1 MB,
//! and the target's allocator ([`cache_node_fuzz::Limited`]) turns any
//! single allocation over 256 MiB — one sized by a client-supplied number —
//! into a reported crash; `-rss_limit_mb` bounds the total.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use cache_node::client::{Client, User, Wait};
use cache_node::clock::Clock;
use cache_node::cmd::{COMMANDS, Ctx, dispatch};
use cache_node::config::Config;
use cache_node::db::Db;
use cache_node::frame::{Protocol, Reply};
use cache_node::state::{self, Shared};
use clap::Parser as _;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: cache_node_fuzz::Limited = cache_node_fuzz::Limited;
use tidecache_topology::{NodeAddr, Shard, SlotRange, Topology, node_id_for};

/// Most commands in one session, and arguments after a command's name.
const MAX_COMMANDS: usize = 64;
const MAX_ARGS: usize = 16;
/// Longest raw (non-dictionary) argument.
const MAX_RAW: usize = 48;

const KEYS: &[&str] = &["a", "b", "c", "{t}1", "{t}2", "foo", "", "a:1"];

const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "8",
    "10",
    "64",
    "100",
    "1000",
    "16383",
    "16384",
    "65535",
    "65536",
    "1048575",
    "1048576",
    "8388607",
    "8388608",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967295",
    "4294967296",
    "536870911",
    "536870912",
    "4611686018427387904",
    "-4611686018427387904",
    "9223372036854775806",
    "9223372036854775807",
    "-9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "99999999999999999999",
    "-100",
    "-1000000",
    "01",
    "+1",
    " 1",
    "1.0",
];

// Packed: one word per line would make the dictionaries pages long.
#[rustfmt::skip]
const FLOATS: &[&str] = &[
    "0.5", "-0.5", "1.5", "1e308", "-1e308", "1e-320", "inf", "-inf", "+inf", "nan", "1e400",
    "3.0", "0x10", "1e", ".5", "5.", "-0", "1.7976931348623157e308", "(1", "(-inf", "(+inf",
    "(nan", "[a", "(a", "-", "+", "[", "(", "[b", "(c",
];

#[rustfmt::skip]
const WORDS: &[&str] = &[
    // Options of data commands.
    "NX", "XX", "GT", "LT", "CH", "INCR", "EX", "PX", "EXAT", "PXAT", "KEEPTTL", "GET", "PERSIST",
    "WITHSCORES", "WITHSCORE", "WITHVALUES", "LIMIT", "COUNT", "MATCH", "TYPE", "BYSCORE", "BYLEX",
    "REV", "LEFT", "RIGHT", "BEFORE", "AFTER", "RANK", "MAXLEN", "WEIGHTS", "AGGREGATE", "SUM",
    "MIN", "MAX", "AND", "OR", "XOR", "NOT", "BIT", "BYTE", "SET", "INCRBY", "OVERFLOW", "WRAP",
    "SAT", "FAIL", "REPLACE", "DB", "ASYNC", "SYNC", "SAMPLES", "u8", "i8", "u1", "i1", "u63",
    "i64", "u64", "i65", "#0", "#1", "#-1", "string", "list", "hash", "set", "zset",
    // Connection, server and admin options.
    "ID", "ADDR", "LADDR", "USER", "SKIPME", "MAXAGE", "ON", "OFF", "SKIP", "TIMEOUT", "ERROR",
    "WRITE", "ALL", "AUTH", "SETNAME", "LIB-NAME", "LIB-VER", "yes", "no", "normal", "pubsub",
    "master", "replica", "127.0.0.1:40001", "127.0.0.1:40002", "127.0.0.1:6379", "HELP", "2",
    "3", "4", "default", "tidecache-admin", "pw", "adm", "TOPOLOGY", "EPOCH", "FILTERBY",
    "MODULE", "ACLCAT", "PATTERN", "maxmemory", "maxmemory-policy", "maxmemory-samples",
    "lfu-log-factor", "lfu-decay-time", "slowlog-log-slower-than", "slowlog-max-len", "max*",
    "*", "1kb", "100", "1mb", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
    "volatile-lfu", "volatile-random", "volatile-ttl", "volatile-first", "noeviction", "server",
    "clients", "memory", "stats", "keyspace", "cluster", "everything", "default", "get", "set",
    "client", "zunionstore", "bitfield", "sort", "h?llo", "h*", "[a-c]*", "[^a]", "\\*", "[",
    "a*b*c*d*e*f*g*h*", "ch1", "ch2", "ch*",
];

/// The node's name, so its id (and the topology documents) are fixed.
const NODE_NAME: &str = "fuzz-0";

struct Fixtures {
    standalone: Config,
    cluster: Config,
    /// Every command as clients type it: the name, or container and
    /// subcommand, with its arity (which counts every word).
    commands: Vec<(Vec<&'static str>, i32)>,
    /// Topology documents for `TIDECACHE TOPOLOGY SET`, in cluster mode.
    topologies: Vec<String>,
    /// `DISPATCH_TRACE=1`: print each step and reply (to read a crash input).
    trace: bool,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let base = [
            "cache-node",
            "--node-name",
            NODE_NAME,
            "--proto-max-bulk-len",
            "1mb",
        ];
        let standalone = Config::try_parse_from(base).expect("standalone flags");
        let cluster = Config::try_parse_from(base.iter().copied().chain([
            "--cluster-enabled",
            "yes",
            "--requirepass",
            "pw",
            "--admin-password",
            "adm",
        ]))
        .expect("cluster flags");
        // Every row at every depth, as its words: `tidecache|import|begin`
        // is sent as `tidecache import begin`.
        let commands = COMMANDS
            .iter()
            .flat_map(|spec| spec.rows())
            .map(|spec| (spec.name.split('|').collect::<Vec<_>>(), spec.arity))
            .collect();
        let me = state::cluster_state(&cluster).me().clone();
        Fixtures {
            standalone,
            cluster,
            commands,
            topologies: topologies(&me),
            trace: std::env::var_os("DISPATCH_TRACE").is_some(),
        }
    })
}

fn topologies(me: &NodeAddr) -> Vec<String> {
    let other = NodeAddr {
        id: node_id_for("fuzz-1"),
        host: "127.0.0.1".into(),
        port: 7001,
    };
    let shard = |name: &str, start, end, primary: &NodeAddr, replicas: Vec<NodeAddr>| Shard {
        name: name.into(),
        slots: vec![SlotRange::new(start, end).expect("slot range")],
        primary: primary.clone(),
        replicas,
    };
    let docs = [
        Topology {
            epoch: 1,
            shards: vec![shard("s0", 0, 16383, me, vec![])],
        },
        Topology {
            epoch: 2,
            shards: vec![
                shard("s0", 0, 8191, me, vec![]),
                shard("s1", 8192, 16383, &other, vec![]),
            ],
        },
        Topology {
            epoch: 3,
            shards: vec![shard("s1", 0, 16383, &other, vec![me.clone()])],
        },
        Topology {
            epoch: 4,
            shards: vec![shard("s1", 0, 100, &other, vec![])],
        },
    ];
    let mut out: Vec<String> = docs.iter().map(Topology::to_json).collect();
    out.push("{\"epoch\":9,\"shards\":[]}".into());
    out.push("{\"epoch\":1,\"shards\":[{}]}".into());
    out
}

/// Reads the fuzzer's bytes as a session.
struct Gen<'a> {
    data: &'a [u8],
}

impl<'a> Gen<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        Some(from[usize::from(self.byte()?) % from.len()])
    }

    fn arg(&mut self, f: &Fixtures) -> Option<Bytes> {
        let kind = self.byte()?;
        let s: &str = match kind % 10 {
            0..=2 => KEYS[usize::from(kind / 10) % KEYS.len()],
            3 => self.pick(INTS)?,
            4 | 5 => self.pick(WORDS)?,
            6 => return Some(Bytes::from((self.byte()? as i8).to_string())),
            7 => self.pick(FLOATS)?,
            8 => {
                let n = usize::from(self.byte()?) % (MAX_RAW + 1);
                return Some(Bytes::copy_from_slice(self.bytes(n)));
            }
            _ => {
                return Some(Bytes::from(
                    f.topologies[usize::from(kind / 10) % f.topologies.len()].clone(),
                ));
            }
        };
        Some(Bytes::from_static(s.as_bytes()))
    }
}

#[derive(Debug)]
enum Step {
    Command {
        client: usize,
        args: Vec<Bytes>,
    },
    /// Moves the manual clock forward (deadlines, idle times, LFU decay).
    Advance(u64),
    /// Runs active expiry, as the server's expiry loop does.
    Expire(usize),
}

const ADVANCES: &[u64] = &[0, 1, 999, 1000, 1001, 60_000, 3_600_000, 365 * 86_400_000];

fn step(g: &mut Gen, f: &Fixtures) -> Option<Step> {
    let b0 = g.byte()?;
    let b1 = g.byte()?;
    let client = usize::from(b0 >> 7);
    let specials = 3;
    let sel = (usize::from(b0 & 0x7f) << 8 | usize::from(b1)) % (f.commands.len() + specials);
    let mut args: Vec<Bytes> = Vec::new();
    let (words, arity) = match sel.checked_sub(specials) {
        Some(i) => f.commands[i].clone(),
        None => match sel {
            0 => return Some(Step::Advance(g.pick(ADVANCES)?)),
            1 => return Some(Step::Expire(usize::from(g.byte()?))),
            // A name that is not in the table, or one written oddly.
            _ => {
                args.push(g.arg(f)?);
                (Vec::new(), -1)
            }
        },
    };
    let shape = g.byte()?;
    for w in &words {
        let w = if shape & 0x40 != 0 {
            w.to_uppercase()
        } else {
            (*w).to_owned()
        };
        args.push(Bytes::from(w));
    }
    let extra = if shape & 0x80 == 0 {
        // As many arguments as the arity asks for (a few more for "at
        // least"), so most commands get past the generic checks.
        let need = (arity.unsigned_abs() as usize).saturating_sub(args.len());
        if arity < 0 {
            need + usize::from(shape & 7)
        } else {
            need
        }
    } else {
        usize::from(shape & 15)
    };
    for _ in 0..extra.min(MAX_ARGS) {
        args.push(g.arg(f)?);
    }
    if args.is_empty() {
        return None;
    }
    Some(Step::Command { client, args })
}

fuzz_target!(|data: &[u8]| {
    let f = fixtures();
    let mut g = Gen { data };
    let Some(head) = g.byte() else {
        return;
    };
    let cluster_mode = head & 1 == 1;
    let config = if cluster_mode {
        f.cluster.clone()
    } else {
        f.standalone.clone()
    };
    let clock = Clock::manual(1_700_000_000_000);
    let db = Db::new(clock.clone()).with_eviction(config.eviction());
    let cluster = state::cluster_state(&config);
    let shared = Shared::new(config, db, cluster, cache_node::cmd::calls());
    let laddr: SocketAddr = "127.0.0.1:6379".parse().expect("addr");
    // Client 0 is the default user (in cluster mode it may have to AUTH
    // first); client 1 is the operator's admin user.
    let first_user = (!cluster_mode || head & 2 != 0).then_some(User::Default);
    let mut clients = [
        Client::new(
            1,
            "127.0.0.1:40001".parse().expect("addr"),
            laddr,
            first_user,
        ),
        Client::new(
            2,
            "127.0.0.1:40002".parse().expect("addr"),
            laddr,
            Some(User::Admin),
        ),
    ];
    for c in &clients {
        shared
            .clients
            .lock()
            .expect("clients lock")
            .insert(c.id, c.handle.clone());
    }
    let mut closed = [false; 2];
    for _ in 0..MAX_COMMANDS {
        let Some(step) = step(&mut g, f) else {
            break;
        };
        if f.trace {
            eprintln!("{step:?}");
        }
        match step {
            Step::Advance(ms) => clock.advance(ms),
            Step::Expire(budget) => {
                shared.db.lock().expect("db lock").expire_due(budget);
            }
            Step::Command { client, args } => {
                if closed[client] {
                    continue;
                }
                let c = &mut clients[client];
                let mut db = shared.db.lock().expect("db lock");
                let mut cx = Ctx {
                    shared: &shared,
                    client: c,
                    db: &mut db,
                };
                let (reply, name) = dispatch(&mut cx, &args);
                drop(db);
                if f.trace {
                    eprintln!("  -> {reply:?}");
                }
                match c.wait.take() {
                    // The server parks the client; here the command is
                    // dropped, and its timeout reply checked instead.
                    Some(Wait::Keys { on_timeout, .. }) => check_reply(&on_timeout),
                    Some(Wait::Pause) => shared.unpause(),
                    None => check_reply(&reply),
                }
                c.publish_view(name);
                if c.closing || c.handle.is_killed() {
                    closed[client] = true;
                }
                for other in &clients {
                    for message in other.handle.take_outbox() {
                        check_reply(&message);
                    }
                }
                if closed.iter().all(|&c| c) {
                    break;
                }
            }
        }
    }
});

/// Encodes `reply` both ways and checks that each encoding is well-formed.
fn check_reply(reply: &Reply) {
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        let mut out = Vec::new();
        reply.encode(proto, &mut out);
        let mut rest = &out[..];
        // `Many` is several replies in a row; anything else is one value.
        let values = match reply {
            Reply::Many(_) => usize::MAX,
            _ => 1,
        };
        let mut n = 0;
        while !rest.is_empty() && n < values {
            rest = value(rest, proto).unwrap_or_else(|why| {
                panic!(
                    "{proto:?} encoding of {reply:?} is malformed ({why}): {:?}",
                    String::from_utf8_lossy(&out)
                )
            });
            n += 1;
        }
        assert!(
            rest.is_empty() && (n == 1 || values != 1),
            "{proto:?} encoding of {reply:?} is not one value: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// Splits one line (up to CRLF) off `buf`; the line may hold neither CR nor LF.
fn line(buf: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .ok_or("unterminated line")?;
    if buf.get(end..end + 2) != Some(b"\r\n") {
        return Err("line break inside a line");
    }
    Ok((&buf[..end], &buf[end + 2..]))
}

fn number(digits: &[u8]) -> Result<i64, &'static str> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|_| !digits.starts_with(b"+"))
        .ok_or("bad number")
}

/// Parses one RESP value off the front of `buf`; returns the rest.
fn value(buf: &[u8], proto: Protocol) -> Result<&[u8], &'static str> {
    let (&kind, body) = buf.split_first().ok_or("empty")?;
    let resp3 = proto == Protocol::Resp3;
    if !resp3 && !b"+-:$*".contains(&kind) {
        return Err("a RESP3 type in RESP2");
    }
    let (head, rest) = line(body)?;
    let count = |n: i64| usize::try_from(n).map_err(|_| "negative count");
    match kind {
        b'+' => Ok(rest),
        b'-' => {
            let code = head.split(|&b| b == b' ').next().unwrap_or_default();
            if code.is_empty() || !code.iter().all(|b| b.is_ascii_uppercase()) {
                return Err("an error without an uppercase code");
            }
            Ok(rest)
        }
        b':' => number(head).map(|_| rest),
        b'$' | b'=' => {
            let n = number(head)?;
            if n == -1 && !resp3 && kind == b'$' {
                return Ok(rest);
            }
            let n = count(n)?;
            if rest.len() < n + 2 || &rest[n..n + 2] != b"\r\n" {
                return Err("bulk length does not match");
            }
            if kind == b'=' && (n < 4 || &rest[3..4] != b":") {
                return Err("verbatim string without its format");
            }
            Ok(&rest[n + 2..])
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = number(head)?;
            if n == -1 && !resp3 && kind == b'*' {
                return Ok(rest);
            }
            let items = count(n)? * if kind == b'%' { 2 } else { 1 };
            let mut rest = rest;
            for _ in 0..items {
                rest = value(rest, proto)?;
            }
            Ok(rest)
        }
        b'_' if head.is_empty() => Ok(rest),
        b'#' if head == b"t" || head == b"f" => Ok(rest),
        b',' => {
            let ok = matches!(head, b"inf" | b"-inf" | b"nan")
                || std::str::from_utf8(head)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some_and(f64::is_finite);
            if ok { Ok(rest) } else { Err("bad double") }
        }
        _ => Err("unknown type"),
    }
}
