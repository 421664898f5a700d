//! A cluster-aware, open-loop load generator that moves slots while it runs
//! and then checks that no acknowledged write was lost, for
//! `bench/migrate.sh` (Tidecache's live slot migration against
//! `redis-cli --cluster reshard`).
//!
//! ```text
//! migrate_load --seed 127.0.0.1:7301 [--password P] [--conns 4] [--rate 2000]
//!              [--before 3] [--after 2] [--keys 250000] [--key-slots 0-4095]
//!              [--move-timeout 120] [--dump FILE]
//!              (--move-cmd '<shell command>' |
//!               --migrate '<TIDECACHE MIGRATE START args>' --admin-password P [--status-file FILE])
//! migrate_load node-id <name>      # prints tidecache_topology::node_id_for(name)
//! ```
//!
//! - Reads `CLUSTER SLOTS` from the seed into a 16384-entry slot table.
//! - Preloads `--keys` keys `pre:<n>` (16-byte values) whose slots lie in
//!   `--key-slots`, pipelined to each slot's owner.
//! - Starts `--conns` threads, each sending `--rate` requests/s on a fixed
//!   schedule (open loop, as `fixed_rate.rs`: a request's latency is measured
//!   from when it was *due*, redirects included, so a stall shows in full).
//!   Requests alternate a SET of a fresh key `w:<thread>:<seq>` (its slot in
//!   `--key-slots` every other time, anywhere otherwise) and a GET of a
//!   preloaded key, whose value is checked. `-MOVED` updates the thread's
//!   table and retries, `-ASK` retries once at the named node after
//!   `ASKING`, `-TRYAGAIN` retries after 1 ms; any other error reply or I/O
//!   error is a client error (the connection is dropped and reopened).
//! - After `--before` seconds, runs `--move-cmd` with `sh -c` (its stdout and
//!   stderr go to this process's stderr) and times it; the load keeps going
//!   while it runs and for `--after` seconds after it exits. With
//!   `--migrate` instead, it sends `TIDECACHE MIGRATE START <args>` to the
//!   seed as `tidecache-admin` over a connection opened before the load,
//!   then `TIDECACHE MIGRATE STATUS <id>` every 10 ms on it until the move
//!   ends, and writes the last STATUS reply (a field or value per line) to
//!   `--status-file`: no process starts inside the measured window.
//! - Then reads back every acknowledged SET and every preloaded key.
//! - With `--dump FILE`, writes one line per successful request, in due
//!   order: `<due ms from the move's start> <latency ms> <SET|GET>`.
//!
//! Prints one line on stdout:
//! `move_ms=… p99_before_ms=… p99_during_ms=… p99_ratio=… max_write_during_ms=…
//! max_during_ms=… requests=… acked_writes=… lost_writes=… client_errors=…
//! move_exit=…` and then `p50_before_ms`, `p99_after_ms`, `during_requests`,
//! `bad_reads` (GETs that read a wrong value), `lost_preload`, `unverified`
//! (keys whose read-back failed: counted in `client_errors`, not as lost),
//! `moved`, `ask`, `tryagain`, `preload_ms`. "Before" are the requests due
//! before the move command started, "during" those due while it ran.
//! `move_exit` is the command's exit code (128 + signal), -1 when it ran past
//! `--move-timeout` (its process group is killed), -2 when it could not run.
//! Exits 1 when a write or a preloaded key was lost, a GET read a wrong
//! value, a client error happened or the move command failed (the line is
//! printed first), 2 on bad arguments.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tidecache_topology::key_slot;
use tidecache_topology::protocol::Request;

const SLOTS: usize = 16384;
/// Connect, read and write timeout of every socket.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// `MOVED`/`ASK` redirects followed for one request before giving up.
const MAX_REDIRECTS: u32 = 16;
/// `TRYAGAIN` replies retried (1 ms apart) for one request before giving up.
const MAX_TRYAGAIN: u32 = 1000;
/// Commands per pipelined batch (preload and read-back).
const BATCH: usize = 1000;
/// How long the load threads may take to finish what was due before the stop.
const DRAIN: Duration = Duration::from_secs(15);
/// Error messages kept (and printed) per thread.
const KEEP_ERRORS: usize = 5;

fn usage(why: &str) -> ! {
    eprintln!("migrate_load: {why}");
    eprintln!(
        "usage: migrate_load --seed HOST:PORT [--password P] [--conns 4] [--rate 2000] \
         [--before 3] [--after 2] [--keys 250000] [--key-slots 0-4095] [--move-timeout 120] \
         [--dump FILE] (--move-cmd '<shell command>' | --migrate '<MIGRATE START args>' \
         --admin-password P [--status-file FILE])\n       migrate_load node-id <name>"
    );
    std::process::exit(2)
}

#[derive(Debug, Clone)]
struct Opts {
    seed: String,
    password: Option<String>,
    conns: usize,
    /// Requests per second, per connection.
    rate: u64,
    before: Duration,
    after: Duration,
    keys: usize,
    key_slots: (u16, u16),
    move_cmd: String,
    /// `TIDECACHE MIGRATE START` arguments: the move is driven from here.
    migrate: Option<String>,
    admin_password: Option<String>,
    /// Where a driven move's last `STATUS` reply goes.
    status_file: Option<String>,
    move_timeout: Duration,
    /// Where to write every request's due time, latency and kind.
    dump: Option<String>,
}

fn parse_opts(args: &[String]) -> Opts {
    let mut o = Opts {
        seed: String::new(),
        password: None,
        conns: 4,
        rate: 2000,
        before: Duration::from_secs(3),
        after: Duration::from_secs(2),
        keys: 250_000,
        key_slots: (0, 4095),
        move_cmd: String::new(),
        migrate: None,
        admin_password: None,
        status_file: None,
        move_timeout: Duration::from_secs(120),
        dump: None,
    };
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (args[i].clone(), None),
        };
        const FLAGS: [&str; 14] = [
            "--seed",
            "--password",
            "--conns",
            "--rate",
            "--before",
            "--after",
            "--keys",
            "--key-slots",
            "--move-timeout",
            "--move-cmd",
            "--migrate",
            "--admin-password",
            "--status-file",
            "--dump",
        ];
        if flag == "--help" || flag == "-h" {
            usage("help");
        }
        if !FLAGS.contains(&flag.as_str()) {
            usage(&format!("unknown option {flag}"));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i)
                    .cloned()
                    .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
            }
        };
        i += 1;
        let num = |v: &str| -> f64 {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .unwrap_or_else(|| usage(&format!("{flag}: not a non-negative number: {v:?}")))
        };
        match flag.as_str() {
            "--seed" => o.seed = value,
            "--password" => o.password = Some(value),
            "--conns" => o.conns = num(&value) as usize,
            "--rate" => o.rate = num(&value) as u64,
            "--before" => o.before = Duration::from_secs_f64(num(&value)),
            "--after" => o.after = Duration::from_secs_f64(num(&value)),
            "--keys" => o.keys = num(&value) as usize,
            "--move-timeout" => o.move_timeout = Duration::from_secs_f64(num(&value)),
            "--move-cmd" => o.move_cmd = value,
            "--migrate" => o.migrate = Some(value),
            "--admin-password" => o.admin_password = Some(value),
            "--status-file" => o.status_file = Some(value),
            "--dump" => o.dump = Some(value),
            "--key-slots" => {
                let (a, b) = value.split_once('-').unwrap_or((&value, &value));
                match (a.parse::<u16>(), b.parse::<u16>()) {
                    (Ok(a), Ok(b)) if a <= b && usize::from(b) < SLOTS => o.key_slots = (a, b),
                    _ => usage(&format!(
                        "--key-slots: expected START-END within 0-16383, got {value:?}"
                    )),
                }
            }
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    if o.seed.is_empty() {
        usage("--seed is required");
    }
    if o.move_cmd.is_empty() == o.migrate.is_none() {
        usage("one of --move-cmd and --migrate is required");
    }
    if o.migrate.is_some() && o.admin_password.is_none() {
        usage("--migrate needs --admin-password");
    }
    if o.conns == 0 || o.rate == 0 {
        usage("--conns and --rate must be positive");
    }
    o
}

// ---- RESP ------------------------------------------------------------------

/// A reply, RESP2 (and the RESP3 types folded into these).
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

fn bad_data(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Reads one reply.
fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = Vec::with_capacity(64);
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad_data(format!(
            "truncated reply line {:?}",
            String::from_utf8_lossy(&line)
        )));
    }
    line.truncate(line.len() - 2);
    let text = String::from_utf8_lossy(&line[1..]).into_owned();
    let int = |t: &str| -> std::io::Result<i64> {
        t.parse()
            .map_err(|_| bad_data(format!("bad length or integer {t:?} in a reply")))
    };
    let bulk = |r: &mut dyn BufRead, len: i64| -> std::io::Result<Option<Vec<u8>>> {
        if len < 0 {
            return Ok(None);
        }
        let mut data = vec![0; len as usize + 2];
        r.read_exact(&mut data)?;
        data.truncate(len as usize);
        Ok(Some(data))
    };
    Ok(match line[0] {
        b'+' => Reply::Status(text),
        b'-' => Reply::Error(text),
        b':' => Reply::Int(int(&text)?),
        b'#' | b',' | b'(' => Reply::Status(text),
        b'_' => Reply::Bulk(None),
        b'$' | b'=' => Reply::Bulk(bulk(r, int(&text)?)?),
        b'!' => {
            let data = bulk(r, int(&text)?)?.unwrap_or_default();
            Reply::Error(String::from_utf8_lossy(&data).into_owned())
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = int(&text)?;
            if n < 0 {
                Reply::Array(None)
            } else {
                let n = if line[0] == b'%' { 2 * n } else { n };
                let mut items = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    items.push(read_reply(r)?);
                }
                Reply::Array(Some(items))
            }
        }
        _ => {
            return Err(bad_data(format!(
                "not a RESP reply: {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
    })
}

/// Appends a command (an array of bulk strings) to `out`.
fn encode_into(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(&mut out, args);
    out
}

/// One blocking connection to one node.
struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str, password: Option<&str>) -> Result<Conn, String> {
        Self::open_as(addr, None, password)
    }

    /// A connection logged in as `user` (the default user when `None`).
    fn open_as(addr: &str, user: Option<&str>, password: Option<&str>) -> Result<Conn, String> {
        let sa = addr
            .to_socket_addrs()
            .map_err(|e| format!("resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("resolve {addr}: no address"))?;
        let s = TcpStream::connect_timeout(&sa, IO_TIMEOUT)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let setup = |s: &TcpStream| -> std::io::Result<TcpStream> {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            s.try_clone()
        };
        let read_half = setup(&s).map_err(|e| format!("socket setup {addr}: {e}"))?;
        let mut c = Conn {
            writer: s,
            reader: BufReader::with_capacity(64 * 1024, read_half),
        };
        if let Some(p) = password {
            let auth = match user {
                Some(u) => encode(&[b"AUTH", u.as_bytes(), p.as_bytes()]),
                None => encode(&[b"AUTH", p.as_bytes()]),
            };
            match c.call(&auth) {
                Ok(Reply::Error(e)) => return Err(format!("AUTH at {addr}: -{e}")),
                Ok(_) => {}
                Err(e) => return Err(format!("AUTH at {addr}: {e}")),
            }
        }
        Ok(c)
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    fn call(&mut self, request: &[u8]) -> std::io::Result<Reply> {
        self.send(request)?;
        self.read()
    }
}

// ---- the cluster -----------------------------------------------------------

enum Redirect {
    Moved(u16, String),
    Ask(String),
}

/// `MOVED <slot> <host:port>` or `ASK <slot> <host:port>`; an empty host
/// (Redis's "same endpoint") means the host of the node that answered.
fn parse_redirect(error: &str, from: &str) -> Option<Redirect> {
    let mut parts = error.split_ascii_whitespace();
    let kind = parts.next()?;
    let slot: u16 = parts.next()?.parse().ok()?;
    let mut addr = parts.next()?.to_owned();
    if addr.starts_with(':') {
        let host = from.rsplit_once(':').map_or(from, |(h, _)| h);
        addr = format!("{host}{addr}");
    }
    if usize::from(slot) >= SLOTS {
        return None;
    }
    match kind {
        "MOVED" => Some(Redirect::Moved(slot, addr)),
        "ASK" => Some(Redirect::Ask(addr)),
        _ => None,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    moved: u64,
    ask: u64,
    tryagain: u64,
}

/// A client's view of the cluster: the slot table and one connection per node.
struct Cluster {
    password: Option<String>,
    /// `host:port` of each slot's owner; empty when no node serves it.
    table: Vec<String>,
    conns: HashMap<String, Conn>,
    counters: Counters,
}

impl Cluster {
    fn new(password: Option<String>) -> Self {
        Cluster {
            password,
            table: vec![String::new(); SLOTS],
            conns: HashMap::new(),
            counters: Counters::default(),
        }
    }

    fn conn(&mut self, addr: &str) -> Result<&mut Conn, String> {
        if !self.conns.contains_key(addr) {
            let c = Conn::open(addr, self.password.as_deref())?;
            self.conns.insert(addr.to_owned(), c);
        }
        Ok(self.conns.get_mut(addr).expect("just inserted"))
    }

    /// Fills the slot table from `CLUSTER SLOTS` at `addr`.
    fn load_slots(&mut self, addr: &str) -> Result<(), String> {
        let seed_host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_owned();
        let conn = self.conn(addr)?;
        let reply = conn
            .call(&encode(&[b"CLUSTER", b"SLOTS"]))
            .map_err(|e| format!("CLUSTER SLOTS at {addr}: {e}"))?;
        let bad = |what: &str| format!("CLUSTER SLOTS at {addr}: {what} in {reply:?}");
        let entries = match &reply {
            Reply::Array(Some(e)) => e,
            Reply::Error(e) => return Err(format!("CLUSTER SLOTS at {addr}: -{e}")),
            _ => return Err(bad("not an array")),
        };
        self.table.iter_mut().for_each(String::clear);
        for entry in entries {
            let Reply::Array(Some(fields)) = entry else {
                return Err(bad("an entry is not an array"));
            };
            let (Some(Reply::Int(start)), Some(Reply::Int(end)), Some(Reply::Array(Some(node)))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(bad("an entry is not [start, end, [host, port, ...], ...]"));
            };
            let host = match node.first() {
                Some(Reply::Bulk(Some(h))) => String::from_utf8_lossy(h).into_owned(),
                Some(Reply::Status(h)) => h.clone(),
                _ => return Err(bad("a node has no host")),
            };
            let host = if host.is_empty() || host == "?" {
                seed_host.clone()
            } else {
                host
            };
            let Some(Reply::Int(port)) = node.get(1) else {
                return Err(bad("a node has no port"));
            };
            if *start < 0 || *end < *start || *end >= SLOTS as i64 {
                return Err(bad("a slot range out of bounds"));
            }
            for slot in *start as usize..=*end as usize {
                self.table[slot] = format!("{host}:{port}");
            }
        }
        Ok(())
    }

    fn unserved_slots(&self) -> usize {
        self.table.iter().filter(|a| a.is_empty()).count()
    }

    /// Sends one request (with `ASKING` first when `asking`) and reads its reply.
    fn roundtrip(&mut self, addr: &str, request: &[u8], asking: bool) -> Result<Reply, String> {
        let conn = self.conn(addr)?;
        let io = |e: std::io::Error| format!("{addr}: {e}");
        if asking {
            let mut both = encode(&[b"ASKING"]);
            both.extend_from_slice(request);
            conn.send(&both).map_err(io)?;
            if let Reply::Error(e) = conn.read().map_err(io)? {
                conn.read().map_err(io)?;
                return Ok(Reply::Error(format!("{e} (reply to ASKING)")));
            }
        } else {
            conn.send(request).map_err(io)?;
        }
        conn.read().map_err(io)
    }

    /// One command for `slot`, following redirects; the final reply, or why there is none.
    fn call(&mut self, slot: u16, request: &[u8]) -> Result<Reply, String> {
        let mut ask: Option<String> = None;
        let (mut redirects, mut tryagain) = (0, 0);
        loop {
            let (addr, asking) = match ask.take() {
                Some(a) => (a, true),
                None => (self.table[usize::from(slot)].clone(), false),
            };
            if addr.is_empty() {
                return Err(format!("slot {slot} is served by no node"));
            }
            let reply = match self.roundtrip(&addr, request, asking) {
                Ok(r) => r,
                Err(e) => {
                    self.conns.remove(&addr);
                    return Err(e);
                }
            };
            let Reply::Error(e) = reply else {
                return Ok(reply);
            };
            match parse_redirect(&e, &addr) {
                Some(r) => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(format!(
                            "slot {slot}: more than {MAX_REDIRECTS} redirects, last -{e} from {addr}"
                        ));
                    }
                    match r {
                        Redirect::Moved(s, to) => {
                            self.counters.moved += 1;
                            self.table[usize::from(s)] = to;
                        }
                        Redirect::Ask(to) => {
                            self.counters.ask += 1;
                            ask = Some(to);
                        }
                    }
                }
                None if e.starts_with("TRYAGAIN") => {
                    self.counters.tryagain += 1;
                    tryagain += 1;
                    if tryagain > MAX_TRYAGAIN {
                        return Err(format!(
                            "slot {slot}: -{e} from {addr} {MAX_TRYAGAIN} times"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                None => return Err(format!("-{e} from {addr} (slot {slot})")),
            }
        }
    }

    /// Runs many commands, each given with its key's slot, pipelined in
    /// batches to each slot's owner, following redirects (re-sent in later
    /// rounds). Each command's final reply, or why there is none.
    fn pipeline(&mut self, commands: &[(u16, Vec<u8>)]) -> Vec<Result<Reply, String>> {
        let mut results: Vec<Option<Result<Reply, String>>> = vec![None; commands.len()];
        let mut pending: Vec<(usize, Option<String>)> =
            (0..commands.len()).map(|i| (i, None)).collect();
        let mut rounds = 0;
        let mut tryagain_rounds = 0;
        while !pending.is_empty() {
            if rounds > MAX_REDIRECTS || tryagain_rounds > MAX_TRYAGAIN {
                for (i, _) in pending.drain(..) {
                    results[i] = Some(Err(format!(
                        "slot {}: still redirected after {rounds} rounds",
                        commands[i].0
                    )));
                }
                break;
            }
            // Group by (node, asking), keeping the commands' order within a group.
            let mut groups: Vec<((String, bool), Vec<usize>)> = Vec::new();
            let mut index: HashMap<(String, bool), usize> = HashMap::new();
            for (i, ask) in pending.drain(..) {
                let key = match ask {
                    Some(a) => (a, true),
                    None => (self.table[usize::from(commands[i].0)].clone(), false),
                };
                if key.0.is_empty() {
                    results[i] = Some(Err(format!("slot {} is served by no node", commands[i].0)));
                    continue;
                }
                let g = *index.entry(key.clone()).or_insert_with(|| {
                    groups.push((key, Vec::new()));
                    groups.len() - 1
                });
                groups[g].1.push(i);
            }
            let mut retry_tryagain = false;
            for ((addr, asking), members) in groups {
                for chunk in members.chunks(BATCH) {
                    let outcome = self.pipeline_batch(&addr, asking, chunk, commands);
                    match outcome {
                        Ok(replies) => {
                            for (&i, reply) in chunk.iter().zip(replies) {
                                match reply {
                                    Reply::Error(e) => match parse_redirect(&e, &addr) {
                                        Some(Redirect::Moved(s, to)) => {
                                            self.counters.moved += 1;
                                            self.table[usize::from(s)] = to;
                                            pending.push((i, None));
                                        }
                                        Some(Redirect::Ask(to)) => {
                                            self.counters.ask += 1;
                                            pending.push((i, Some(to)));
                                        }
                                        None if e.starts_with("TRYAGAIN") => {
                                            self.counters.tryagain += 1;
                                            retry_tryagain = true;
                                            pending.push((i, None));
                                        }
                                        None => results[i] = Some(Err(format!("-{e} from {addr}"))),
                                    },
                                    r => results[i] = Some(Ok(r)),
                                }
                            }
                        }
                        Err(e) => {
                            self.conns.remove(&addr);
                            for &i in chunk {
                                results[i] = Some(Err(e.clone()));
                            }
                        }
                    }
                }
            }
            if retry_tryagain {
                tryagain_rounds += 1;
                std::thread::sleep(Duration::from_millis(1));
            } else {
                rounds += 1;
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("no reply".into())))
            .collect()
    }

    fn pipeline_batch(
        &mut self,
        addr: &str,
        asking: bool,
        chunk: &[usize],
        commands: &[(u16, Vec<u8>)],
    ) -> Result<Vec<Reply>, String> {
        let conn = self.conn(addr)?;
        let io = |e: std::io::Error| format!("{addr}: {e}");
        let mut buf = Vec::with_capacity(chunk.len() * 64);
        for &i in chunk {
            if asking {
                encode_into(&mut buf, &[b"ASKING"]);
            }
            buf.extend_from_slice(&commands[i].1);
        }
        conn.send(&buf).map_err(io)?;
        let mut replies = Vec::with_capacity(chunk.len());
        for _ in chunk {
            if asking && let Reply::Error(e) = conn.read().map_err(io)? {
                conn.read().map_err(io)?;
                replies.push(Reply::Error(format!("{e} (reply to ASKING)")));
                continue;
            }
            replies.push(conn.read().map_err(io)?);
        }
        Ok(replies)
    }
}

// ---- keys ------------------------------------------------------------------

fn preload_key(n: u32) -> String {
    format!("pre:{n}")
}

fn preload_value(n: u32) -> String {
    format!("p{n:015}")
}

fn write_key(thread: usize, seq: u64) -> String {
    format!("w:{thread}:{seq}")
}

/// 16 bytes, unique per key.
fn write_value(thread: usize, seq: u64) -> String {
    format!("{thread:04x}{seq:012x}")
}

fn in_range(slot: u16, range: (u16, u16)) -> bool {
    (range.0..=range.1).contains(&slot)
}

// ---- the load --------------------------------------------------------------

/// One request: when it was due (from the load's start), how long until its
/// final reply, and whether it was a SET.
#[derive(Debug, Clone, Copy)]
struct Sample {
    due_ns: u64,
    latency_ns: u64,
    write: bool,
}

#[derive(Debug, Default)]
struct ThreadOut {
    samples: Vec<Sample>,
    /// The `seq` of every acknowledged SET (key and value derive from it).
    acked: Vec<u64>,
    errors: u64,
    bad_reads: u64,
    messages: Vec<String>,
    counters: Counters,
}

impl ThreadOut {
    fn note(&mut self, what: String) {
        if self.messages.len() < KEEP_ERRORS {
            self.messages.push(what);
        }
    }
}

struct Shared {
    opts: Opts,
    table: Vec<String>,
    preloaded: Vec<u32>,
    /// When the schedule starts.
    base: Instant,
    /// Requests due at or after this (ns since `base`) are not sent.
    stop_ns: AtomicU64,
    /// Give up on whatever is still due.
    abort: AtomicBool,
}

fn load(thread: usize, shared: Arc<Shared>) -> ThreadOut {
    let o = &shared.opts;
    let mut cluster = Cluster::new(o.password.clone());
    cluster.table = shared.table.clone();
    let mut out = ThreadOut::default();
    let interval_ns = 1_000_000_000 / o.rate;
    // Threads start staggered over one interval, not in lockstep.
    let offset_ns = interval_ns * thread as u64 / o.conns as u64;
    let mut seq: u64 = 0;
    let mut rng: u64 =
        0x9e37_79b9_7f4a_7c15 ^ (thread as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    for i in 0u64.. {
        let due_ns = offset_ns + interval_ns * i;
        if due_ns >= shared.stop_ns.load(Ordering::Relaxed) {
            break;
        }
        let due = shared.base + Duration::from_nanos(due_ns);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if due_ns >= shared.stop_ns.load(Ordering::Relaxed) {
            break;
        }
        if shared.abort.load(Ordering::Relaxed) {
            let stop = shared.stop_ns.load(Ordering::Relaxed);
            let left = stop.saturating_sub(due_ns).div_ceil(interval_ns);
            out.errors += 1;
            out.note(format!(
                "thread {thread}: gave up with {left} requests still due {:?} after the stop",
                DRAIN
            ));
            break;
        }
        let write = i % 2 == 0 || shared.preloaded.is_empty();
        let (slot, request, expect) = if write {
            seq += 1;
            if (i / 2) % 2 == 0 {
                while !in_range(key_slot(write_key(thread, seq).as_bytes()), o.key_slots) {
                    seq += 1;
                }
            }
            let key = write_key(thread, seq);
            let value = write_value(thread, seq);
            let req = encode(&[b"SET", key.as_bytes(), value.as_bytes()]);
            (key_slot(key.as_bytes()), req, None)
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = shared.preloaded[(rng % shared.preloaded.len() as u64) as usize];
            let key = preload_key(n);
            let req = encode(&[b"GET", key.as_bytes()]);
            (key_slot(key.as_bytes()), req, Some((key, preload_value(n))))
        };
        let result = cluster.call(slot, &request);
        let latency_ns = due.elapsed().as_nanos() as u64;
        match (result, expect) {
            (Ok(Reply::Status(s)), None) if s == "OK" => {
                out.acked.push(seq);
                out.samples.push(Sample {
                    due_ns,
                    latency_ns,
                    write: true,
                });
            }
            (Ok(r), None) => {
                out.errors += 1;
                out.note(format!(
                    "thread {thread}: SET {} answered {r:?}",
                    write_key(thread, seq)
                ));
            }
            (Ok(r), Some((key, value))) => {
                if r != Reply::Bulk(Some(value.clone().into_bytes())) {
                    out.bad_reads += 1;
                    out.note(format!(
                        "thread {thread}: GET {key} answered {r:?}, expected {value:?}"
                    ));
                }
                out.samples.push(Sample {
                    due_ns,
                    latency_ns,
                    write: false,
                });
            }
            (Err(e), _) => {
                out.errors += 1;
                out.note(format!("thread {thread}: {e}"));
            }
        }
    }
    out.counters = cluster.counters;
    out
}

// ---- main ------------------------------------------------------------------

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Nearest-rank percentile of sorted latencies, in ms; NaN when empty.
fn percentile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    ms(sorted[rank - 1])
}

fn fail(what: &str) -> ExitCode {
    eprintln!("migrate_load: {what}");
    ExitCode::FAILURE
}

/// Runs the move command; (exit code, start, end). -1 when it did not exit
/// within the timeout (it is killed), -2 when it could not start.
fn run_move(cmd: &str, timeout: Duration) -> (i32, Instant, Instant) {
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    // Its own process group, so that a timeout kills everything it started.
    let child = Command::new("sh")
        .process_group(0)
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("migrate_load: cannot run sh -c {cmd:?}: {e}");
            return (-2, start, Instant::now());
        }
    };
    // A thread blocks in wait() and notes the exit time, so the main thread
    // neither polls (the cores are shared with the servers) nor misses the timeout.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send((status, Instant::now()));
    });
    let (status, end) = match rx.recv_timeout(timeout) {
        Ok(done) => done,
        Err(_) => {
            let end = Instant::now();
            eprintln!("migrate_load: the move command ran longer than {timeout:?}; killing it");
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let _ = rx.recv_timeout(Duration::from_secs(5));
            return (-1, start, end);
        }
    };
    match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            (code, start, end)
        }
        Err(e) => {
            eprintln!("migrate_load: waiting for the move command: {e}");
            (-2, start, end)
        }
    }
}

/// The admin user `--migrate` logs in as.
const ADMIN_USER: &str = "tidecache-admin";
/// How often a driven move's `STATUS` is asked.
const STATUS_EVERY: Duration = Duration::from_millis(10);

/// The `MIGRATE START` request `--migrate` spells
/// (`<id> <host> <port> <epoch> <range>...`).
fn start_request(words: &[String]) -> Result<Request<'_>, String> {
    let [id, host, port, epoch, ranges @ ..] = words else {
        return Err("--migrate: expected <id> <host> <port> <epoch> <range>...".into());
    };
    if ranges.is_empty() {
        return Err("--migrate: no slot range to move".into());
    }
    let bad = |what: &str, word: &str| format!("--migrate: bad {what} {word:?}");
    Ok(Request::MigrateStart {
        id,
        host,
        port: port.parse().map_err(|_| bad("port", port))?,
        epoch: epoch.parse().map_err(|_| bad("epoch", epoch))?,
        ranges: ranges
            .iter()
            .map(|r| r.parse().map_err(|_| bad("slot range", r)))
            .collect::<Result<_, _>>()?,
    })
}

/// An admin request as RESP, for [`Conn::call`].
fn encode_request(request: &Request) -> Vec<u8> {
    let args = request.args();
    encode(&args.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

/// A Tidecache move driven from this process, as the operator drives one:
/// over a connection opened beforehand, so that the measured window holds
/// the move and nothing else (a `--move-cmd` that starts `redis-cli`
/// processes puts their start-up in it: measured, each process start
/// stalled this load for 2-5 ms on the 2-core machines, with no move at all).
struct Driven {
    conn: Conn,
    start: Vec<String>,
    status_file: Option<String>,
}

impl Driven {
    fn open(
        seed: &str,
        password: &str,
        start: &str,
        status_file: Option<String>,
    ) -> Result<Self, String> {
        let start: Vec<String> = start.split_ascii_whitespace().map(str::to_owned).collect();
        start_request(&start)?;
        Ok(Driven {
            conn: Conn::open_as(seed, Some(ADMIN_USER), Some(password))?,
            start,
            status_file,
        })
    }

    /// Starts the move and polls it to its end: (exit code as `run_move`'s,
    /// start, end). 0 when done, 3 when START was refused, 4 when the move
    /// failed or was cancelled, 5 on a bad `STATUS` reply or a lost
    /// connection, -1 past the timeout.
    fn run(mut self, timeout: Duration) -> (i32, Instant, Instant) {
        let start = Instant::now();
        let request = start_request(&self.start).expect("checked in Driven::open");
        match self.conn.call(&encode_request(&request)) {
            Ok(Reply::Status(s)) if s == "OK" => {}
            other => {
                eprintln!("migrate_load: TIDECACHE MIGRATE START replied {other:?}");
                return (3, start, Instant::now());
            }
        }
        let status = encode_request(&Request::MigrateStatus {
            id: Some(&self.start[0]),
        });
        loop {
            let fields = match self.conn.call(&status) {
                Ok(Reply::Array(Some(items))) => items
                    .into_iter()
                    .map(|r| match r {
                        Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
                        Reply::Status(s) => s,
                        Reply::Int(i) => i.to_string(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>(),
                other => {
                    eprintln!("migrate_load: TIDECACHE MIGRATE STATUS replied {other:?}");
                    return (5, start, Instant::now());
                }
            };
            let state = fields
                .chunks(2)
                .find(|f| f[0] == "state")
                .and_then(|f| f.get(1).cloned())
                .unwrap_or_default();
            if matches!(state.as_str(), "done" | "failed" | "cancelled") {
                let end = Instant::now();
                if let Some(path) = &self.status_file
                    && let Err(e) = std::fs::write(path, fields.join("\n") + "\n")
                {
                    eprintln!("migrate_load: writing {path}: {e}");
                }
                if state != "done" {
                    eprintln!("migrate_load: the move ended {state}: {fields:?}");
                    return (4, start, end);
                }
                return (0, start, end);
            }
            if start.elapsed() > timeout {
                eprintln!("migrate_load: the move ran longer than {timeout:?}");
                return (-1, start, Instant::now());
            }
            std::thread::sleep(STATUS_EVERY);
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("node-id") {
        let [_, name] = args.as_slice() else {
            usage("node-id takes one name");
        };
        println!("{}", tidecache_topology::node_id_for(name));
        return ExitCode::SUCCESS;
    }
    let opts = parse_opts(&args);

    // The slot table.
    let mut seed = Cluster::new(opts.password.clone());
    if let Err(e) = seed.load_slots(&opts.seed) {
        return fail(&e);
    }
    let unserved = seed.unserved_slots();
    if unserved > 0 {
        return fail(&format!(
            "{unserved} of {SLOTS} slots are served by no node according to {}",
            opts.seed
        ));
    }

    // Preload.
    let t = Instant::now();
    let mut preloaded = Vec::with_capacity(opts.keys);
    let mut n: u32 = 0;
    while preloaded.len() < opts.keys {
        if in_range(key_slot(preload_key(n).as_bytes()), opts.key_slots) {
            preloaded.push(n);
        }
        n = match n.checked_add(1) {
            Some(n) => n,
            None => return fail("ran out of preload key names"),
        };
    }
    let sets: Vec<(u16, Vec<u8>)> = preloaded
        .iter()
        .map(|&n| {
            let key = preload_key(n);
            let req = encode(&[b"SET", key.as_bytes(), preload_value(n).as_bytes()]);
            (key_slot(key.as_bytes()), req)
        })
        .collect();
    let results = seed.pipeline(&sets);
    drop(sets);
    let bad: Vec<String> = results
        .iter()
        .filter_map(|r| match r {
            Ok(Reply::Status(s)) if s == "OK" => None,
            Ok(r) => Some(format!("{r:?}")),
            Err(e) => Some(e.clone()),
        })
        .collect();
    if !bad.is_empty() {
        return fail(&format!(
            "preload: {} of {} SETs failed, the first: {}",
            bad.len(),
            results.len(),
            bad[0]
        ));
    }
    drop(results);
    let preload_ms = t.elapsed().as_secs_f64() * 1e3;
    eprintln!(
        "migrate_load: preloaded {} keys in slots {}-{} in {preload_ms:.0} ms",
        preloaded.len(),
        opts.key_slots.0,
        opts.key_slots.1
    );

    // The load.
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        table: seed.table.clone(),
        preloaded,
        base: Instant::now() + Duration::from_millis(100),
        stop_ns: AtomicU64::new(u64::MAX),
        abort: AtomicBool::new(false),
    });
    // The move's connection is opened before the load starts.
    let driven = match &opts.migrate {
        Some(start) => match Driven::open(
            &opts.seed,
            opts.admin_password.as_deref().unwrap_or_default(),
            start,
            opts.status_file.clone(),
        ) {
            Ok(d) => Some(d),
            Err(e) => return fail(&e),
        },
        None => None,
    };
    let threads: Vec<_> = (0..opts.conns)
        .map(|c| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || load(c, shared))
        })
        .collect();
    let move_at = shared.base + opts.before;
    if let Some(wait) = move_at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    let (move_exit, move_start, move_end) = match driven {
        Some(d) => {
            eprintln!(
                "migrate_load: TIDECACHE MIGRATE START {}",
                d.start.join(" ")
            );
            d.run(opts.move_timeout)
        }
        None => {
            eprintln!("migrate_load: running the move command: {}", opts.move_cmd);
            run_move(&opts.move_cmd, opts.move_timeout)
        }
    };
    let move_ms = (move_end - move_start).as_secs_f64() * 1e3;
    eprintln!("migrate_load: the move command exited with {move_exit} after {move_ms:.1} ms");
    std::thread::sleep(opts.after);
    let stop = Instant::now();
    shared
        .stop_ns
        .store((stop - shared.base).as_nanos() as u64, Ordering::Relaxed);
    {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            std::thread::sleep(DRAIN);
            shared.abort.store(true, Ordering::Relaxed);
        });
    }
    let mut outs = Vec::new();
    for (i, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok(o) => outs.push(o),
            Err(_) => return fail(&format!("load thread {i} panicked")),
        }
    }

    // Latencies.
    let start_ns = (move_start - shared.base).as_nanos() as u64;
    let end_ns = (move_end - shared.base).as_nanos() as u64;
    let (mut before, mut during, mut after) = (Vec::new(), Vec::new(), Vec::new());
    let (mut max_write_during, mut max_during) = (0u64, 0u64);
    for s in outs.iter().flat_map(|o| &o.samples) {
        if s.due_ns < start_ns {
            before.push(s.latency_ns);
        } else if s.due_ns < end_ns {
            during.push(s.latency_ns);
            max_during = max_during.max(s.latency_ns);
            if s.write {
                max_write_during = max_write_during.max(s.latency_ns);
            }
        } else {
            after.push(s.latency_ns);
        }
    }
    before.sort_unstable();
    during.sort_unstable();
    after.sort_unstable();
    let p99_before = percentile_ms(&before, 0.99);
    let p99_during = percentile_ms(&during, 0.99);
    let p99_ratio = p99_during / p99_before;
    let samples: usize = outs.iter().map(|o| o.samples.len()).sum();
    let mut client_errors: u64 = outs.iter().map(|o| o.errors).sum();
    let bad_reads: u64 = outs.iter().map(|o| o.bad_reads).sum();
    let mut counters = Counters::default();
    for o in &outs {
        counters.moved += o.counters.moved;
        counters.ask += o.counters.ask;
        counters.tryagain += o.counters.tryagain;
        for m in &o.messages {
            eprintln!("migrate_load: {m}");
        }
    }
    let requests = samples as u64 + client_errors;
    if let Some(path) = &opts.dump {
        let mut all: Vec<&Sample> = outs.iter().flat_map(|o| &o.samples).collect();
        all.sort_unstable_by_key(|s| s.due_ns);
        let mut text = String::with_capacity(all.len() * 24);
        for s in all {
            let due = (s.due_ns as f64 - start_ns as f64) / 1e6;
            let kind = if s.write { "SET" } else { "GET" };
            text.push_str(&format!("{due:.3} {:.3} {kind}\n", ms(s.latency_ns)));
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("migrate_load: cannot write {path}: {e}");
        }
    }

    // Read back every acknowledged SET and every preloaded key. A key whose
    // read failed (I/O, an error reply) is "unverified", not lost.
    let mut check = Cluster::new(opts.password.clone());
    let (mut lost_writes, mut lost_preload, mut unverified) = (0u64, 0u64, 0u64);
    let acked: usize = outs.iter().map(|o| o.acked.len()).sum();
    let mut keys: Vec<(String, String, bool)> = Vec::with_capacity(acked + shared.preloaded.len());
    for (t, o) in outs.iter().enumerate() {
        keys.extend(
            o.acked
                .iter()
                .map(|&seq| (write_key(t, seq), write_value(t, seq), true)),
        );
    }
    keys.extend(
        shared
            .preloaded
            .iter()
            .map(|&n| (preload_key(n), preload_value(n), false)),
    );
    match check.load_slots(&opts.seed) {
        Err(e) => {
            eprintln!("migrate_load: read-back impossible: {e}");
            client_errors += 1;
            unverified = keys.len() as u64;
        }
        Ok(()) => {
            let gets: Vec<(u16, Vec<u8>)> = keys
                .iter()
                .map(|(k, _, _)| (key_slot(k.as_bytes()), encode(&[b"GET", k.as_bytes()])))
                .collect();
            let t = Instant::now();
            let results = check.pipeline(&gets);
            let mut shown = 0;
            for (r, (key, value, is_write)) in results.iter().zip(&keys) {
                match r {
                    Ok(Reply::Bulk(Some(v))) if v == value.as_bytes() => continue,
                    Ok(_) if *is_write => lost_writes += 1,
                    Ok(_) => lost_preload += 1,
                    Err(_) => {
                        unverified += 1;
                        client_errors += 1;
                    }
                }
                if shown < KEEP_ERRORS {
                    shown += 1;
                    eprintln!("migrate_load: read-back of {key} gave {r:?}, expected {value:?}");
                }
            }
            eprintln!(
                "migrate_load: read back {} keys in {:.0} ms: {lost_writes} writes and \
                 {lost_preload} preloaded keys lost, {unverified} unreadable",
                keys.len(),
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }

    println!(
        "move_ms={move_ms:.1} p99_before_ms={p99_before:.3} p99_during_ms={p99_during:.3} \
         p99_ratio={p99_ratio:.2} max_write_during_ms={:.3} max_during_ms={:.3} requests={requests} \
         acked_writes={acked} lost_writes={lost_writes} client_errors={client_errors} \
         move_exit={move_exit} p50_before_ms={:.3} p99_after_ms={:.3} during_requests={} \
         bad_reads={bad_reads} lost_preload={lost_preload} unverified={unverified} moved={} \
         ask={} tryagain={} \
         preload_ms={preload_ms:.0}",
        ms(max_write_during),
        ms(max_during),
        percentile_ms(&before, 0.5),
        percentile_ms(&after, 0.99),
        during.len(),
        counters.moved,
        counters.ask,
        counters.tryagain,
    );
    if lost_writes > 0 || lost_preload > 0 || bad_reads > 0 || client_errors > 0 || move_exit != 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
