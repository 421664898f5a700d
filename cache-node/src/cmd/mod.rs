//! Commands: one static table, one dispatcher.
//!
//! Every command is declared once, as data ([`Spec`]): name, arity, flags,
//! key positions, ACL categories and documentation. [`dispatch`] runs the
//! generic checks from that table in a fixed order — lookup, arity, auth,
//! admin permission, slot ownership (`MOVED`/`CROSSSLOT`), memory (`OOM`) —
//! so that handlers never repeat them. `COMMAND`, `COMMAND INFO` and
//! `COMMAND DOCS` are answered from the same table.

mod admin;
mod args;
mod bits;
mod blocking;
mod cluster;
mod config;
mod connection;
mod encoding;
mod hashes;
mod hll;
mod keys;
mod lists;
mod migrate;
mod multi;
mod pubsub;
mod repl;
mod scan;
mod server;
mod sets;
mod slowlog;
mod sort;
mod strings;
mod table;
mod zsets;

use bytes::Bytes;

use crate::client::{Client, User};
use crate::db::Db;
use crate::frame::Reply;
use crate::state::{Calls, Shared};
pub use table::{COMMANDS, KeySpec, Spec, lookup};
use tidecache_topology::protocol::{ParseError, Request};

/// What a handler works with: the node's shared state, the calling client
/// and the keyspace, locked once by the caller for a whole batch of
/// requests (so a pipeline, or a transaction, runs under one lock).
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub client: &'a mut Client,
    pub db: &'a mut Db,
}

impl Spec {
    /// What the node's state counts this command's calls by: the address
    /// of its row.
    pub fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether the row's arity takes `argc` arguments (the name included).
    pub fn takes(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity > 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// The ACL categories `COMMAND INFO` reports: the row's own, with
    /// `@fast` or `@slow` put in from the `FAST` flag where Redis lists it
    /// (its categories come in a fixed order, speed before these). A row
    /// may name its speed itself where it differs from its flags; a
    /// top-level container reports none (Redis's `CLIENT`, `CONFIG`), while
    /// a subcommand that is itself a container (`tidecache|import`) is a
    /// command of its own and reports its speed like any other.
    pub fn acl_categories(&self) -> Vec<&'static str> {
        const AFTER_SPEED: [&str; 5] = [
            "@blocking",
            "@dangerous",
            "@connection",
            "@transaction",
            "@scripting",
        ];
        let mut cats = self.acl.to_vec();
        let stated = cats.iter().any(|c| matches!(*c, "@fast" | "@slow"));
        let top_container = !self.subcommands.is_empty() && !self.name.contains('|');
        if top_container || stated {
            return cats;
        }
        let speed = if self.flags & flags::FAST != 0 {
            "@fast"
        } else {
            "@slow"
        };
        let at = cats
            .iter()
            .position(|c| AFTER_SPEED.contains(c))
            .unwrap_or(cats.len());
        cats.insert(at, speed);
        cats
    }
}

/// A zero call count for every row of the table, subcommands (and their
/// own rows) included.
pub fn calls() -> Calls {
    Calls::new(
        COMMANDS
            .iter()
            .flat_map(Spec::rows)
            .map(|s| (s.id(), s.name)),
    )
}

/// A command's implementation.
pub type Handler = fn(&mut Ctx, &[Bytes]) -> Reply;

/// Command flags, as `COMMAND INFO` names them.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const FAST: u32 = 1 << 4;
    pub const NO_AUTH: u32 = 1 << 5;
    pub const LOADING: u32 = 1 << 6;
    pub const STALE: u32 = 1 << 7;
    pub const NOSCRIPT: u32 = 1 << 8;
    pub const BLOCKING: u32 = 1 << 9;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
    ];
}

/// The keys a command touches, from its table entry's key positions
/// ([`table::KeySpec`]).
///
/// The dispatcher calls this before the handler (for the slot check), so it
/// must cope with any arguments: when a keynum row's count is not a positive
/// integer or runs past the arguments it yields no keys at all, as Redis's
/// key extraction does, and the handler then replies with the error.
pub fn key_args<'a>(spec: &Spec, args: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> + 'a {
    let none: (&'a [Bytes], usize, &'a [Bytes]) = (&[], 1, &[]);
    // Keys taken every `step` from the first slice, then all of the second.
    let (stepped, step, counted) = match spec.key_spec() {
        table::KeySpec::None => none,
        table::KeySpec::Range { first, last, step } => {
            let n = args.len() as i32;
            if step <= 0 || first >= n {
                none
            } else {
                let last = if last < 0 { n + last } else { last.min(n - 1) };
                let range = first as usize..(last.max(first - 1) + 1) as usize;
                (&args[range], step as usize, &[][..])
            }
        }
        table::KeySpec::SortStore { key } if key < args.len() => {
            // The last STORE wins, as in SORT itself; the arguments of
            // LIMIT, GET and BY are skipped (a key named "store" is one).
            let mut store = None;
            let mut i = key + 1;
            while i < args.len() {
                if util::eq(&args[i], "LIMIT") {
                    i += 2;
                } else if util::eq(&args[i], "GET") || util::eq(&args[i], "BY") {
                    i += 1;
                } else if util::eq(&args[i], "STORE") && i + 1 < args.len() {
                    store = Some(i + 1);
                }
                i += 1;
            }
            let stored: &'a [Bytes] = match store {
                Some(at) => &args[at..=at],
                None => &[],
            };
            (&args[key..=key], 1, stored)
        }
        table::KeySpec::SortStore { .. } => none,
        table::KeySpec::KeyNum { first, numkeys } => {
            let after = args.len().saturating_sub(numkeys + 1);
            let count = args
                .get(numkeys)
                .and_then(|a| util::parse_i64(a))
                .and_then(|c| usize::try_from(c).ok())
                .filter(|&c| c >= 1 && c <= after);
            match count {
                Some(c) if first <= numkeys => (
                    &args[first..numkeys],
                    1,
                    &args[numkeys + 1..numkeys + 1 + c],
                ),
                _ => none,
            }
        }
    };
    stepped.iter().step_by(step).chain(counted)
}

/// Commands that run at once inside `MULTI` instead of being queued: they
/// are the transaction's own controls.
const TX_CONTROL: &[&str] = &["exec", "discard", "multi", "watch", "quit", "reset"];

/// What a RESP2 client may still send once subscribed: its connection is a
/// stream of messages, where any other reply would be mistaken for one.
const SUBSCRIBED_OK: &[&str] = &[
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "ping",
    "quit",
    "reset",
];

/// Runs one request; returns its reply and the command's name (for
/// `CLIENT LIST`'s `cmd`). Inside `MULTI` a command is checked and queued.
pub fn dispatch(cx: &mut Ctx, args: &[Bytes]) -> (Reply, &'static str) {
    let spec = match lookup_request(args) {
        Ok(spec) => spec,
        Err(e) => return (flag_transaction(cx, e), ""),
    };
    let name = spec.acl_name();
    if !spec.takes(args.len()) && !admin_action_takes(spec, args) {
        return (flag_transaction(cx, wrong_arity(name)), name);
    }
    if cx.client.user.is_none() && spec.flags & flags::NO_AUTH == 0 {
        return (
            flag_transaction(cx, Reply::error("NOAUTH Authentication required.")),
            name,
        );
    }
    if cx.client.multi.is_some() && !TX_CONTROL.contains(&spec.name) {
        return (queue(cx, spec, args), name);
    }
    (execute(cx, spec, args), name)
}

/// Finds the table entry of a request, descending into containers.
pub(crate) fn lookup_request(args: &[Bytes]) -> Result<&'static Spec, Reply> {
    let Some(top) = lookup(COMMANDS, &args[0]) else {
        return Err(unknown_command(args));
    };
    if top.subcommands.is_empty() {
        return Ok(top);
    }
    match args.get(1) {
        // Bare `COMMAND` lists every command; other containers need a subcommand.
        None if top.name == "command" => Ok(top),
        None => Err(wrong_arity(top.name)),
        Some(sub) => {
            let sub = lookup(top.subcommands, sub).ok_or_else(|| {
                Reply::error(format!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    String::from_utf8_lossy(sub),
                    top.name.to_uppercase()
                ))
            })?;
            // A subcommand that is itself a container (`tidecache|import`):
            // the row its next word names; without one, or with a word it
            // does not know, the container's own row (its arity check, then
            // its syntax error).
            Ok(args
                .get(2)
                .and_then(|action| lookup(sub.subcommands, action))
                .unwrap_or(sub))
        }
    }
}

/// Whether an admin action (`tidecache|import|apply`) goes to its handler
/// although its row's count does not take the request. Its row states the
/// exact count for `COMMAND`, but the admin protocol answers a wrong one
/// itself: past its group's own count (`tidecache|import`'s, checked here
/// as Redis checks it), the handler's [`admin_request`] replies with the
/// group's `ERR syntax error: expected …`, after the checks the group makes
/// first (a replica refuses `REPL` before any syntax), as the node always
/// has.
fn admin_action_takes(spec: &Spec, args: &[Bytes]) -> bool {
    spec.name.matches('|').count() == 2
        && lookup(COMMANDS, &args[0])
            .and_then(|top| lookup(top.subcommands, &args[1]))
            .is_some_and(|group| group.takes(args.len()))
}

/// The admin request an action's handler was routed, its arguments
/// borrowed (payloads stay the connection's buffers); its error is the
/// protocol's reply.
pub(crate) fn admin_request(args: &[Bytes]) -> Result<Request<'_, Bytes>, Reply> {
    Request::parse(args).map_err(|e| Reply::error(e.to_string()))
}

/// What an action's handler answers arguments that parse as another
/// request: the table and the protocol disagree.
pub(crate) fn misrouted(request: &Request<'_, Bytes>) -> Reply {
    Reply::error(ParseError::Syntax(request.group()).to_string())
}

/// A command refused while queueing makes `EXEC` refuse the whole
/// transaction, as in Redis.
fn flag_transaction(cx: &mut Ctx, error: Reply) -> Reply {
    if let Some(multi) = &mut cx.client.multi {
        multi.failed = true;
    }
    error
}

/// Queues a command of a transaction after the checks that do not depend
/// on when it runs. In cluster mode every key of a transaction must live in
/// one slot that this node serves.
fn queue(cx: &mut Ctx, spec: &'static Spec, args: &[Bytes]) -> Reply {
    if let Err(e) = permitted(cx, spec) {
        return flag_transaction(cx, e);
    }
    let queued_slot = cx.client.multi.as_ref().and_then(|m| m.slot);
    let mut slots = key_args(spec, args)
        .map(|k| tidecache_topology::key_slot(k))
        .peekable();
    let first = slots.peek().copied();
    let redirect = cx
        .shared
        .cluster
        .read()
        .expect("cluster lock")
        .route(queued_slot.into_iter().chain(slots));
    if let Some(redirect) = redirect {
        return flag_transaction(cx, Reply::error(redirect.message()));
    }
    let multi = cx.client.multi.as_mut().expect("queueing inside MULTI");
    multi.slot = multi.slot.or(first);
    multi.queued.push(args.to_vec());
    Reply::Simple("QUEUED")
}

/// Admin commands need the admin user.
fn permitted(cx: &Ctx, spec: &Spec) -> Result<(), Reply> {
    if spec.flags & flags::ADMIN != 0 && cx.client.user != Some(User::Admin) {
        return Err(Reply::error(format!(
            "NOPERM User {} has no permissions to run the '{}' command",
            cx.client.user.map_or("default", User::name),
            spec.acl_name()
        )));
    }
    Ok(())
}

/// The checks that depend on the moment a command runs — permission,
/// pub/sub context, slot ownership, memory, `CLIENT PAUSE` — then the
/// command itself. `EXEC` runs its queued commands through here.
pub fn execute(cx: &mut Ctx, spec: &'static Spec, args: &[Bytes]) -> Reply {
    if let Err(e) = permitted(cx, spec) {
        return e;
    }
    // Redis checks the subscribed context when a command arrives, not when
    // EXEC runs it: a transaction that subscribes runs to its end.
    if cx.client.proto == crate::frame::Protocol::Resp2
        && !cx.client.in_exec
        && cx.client.subs.any()
        && !SUBSCRIBED_OK.contains(&spec.name)
    {
        return Reply::error(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.acl_name()
        ));
    }
    let shared = cx.shared;
    let mut keys = key_args(spec, args).peekable();
    let writes = spec.flags & flags::WRITE != 0;
    // The slot the command's traffic counts for (in cluster mode all its
    // keys are in one, or it is redirected).
    let mut slot = None;
    if shared.cluster_mode {
        slot = keys.peek().map(|k| tidecache_topology::key_slot(k));
        let writes = writes || MAY_WRITE.contains(&spec.name);
        let cluster = shared.cluster.read().expect("cluster lock");
        let redirect = if keys.peek().is_some() {
            let slots = keys.map(|k| tidecache_topology::key_slot(k));
            if writes {
                cluster.route_write(slots)
            } else if cx.client.readonly {
                cluster.route_replica_read(slots)
            } else {
                cluster.route(slots)
            }
        } else if FLUSHES.contains(&spec.name) && cluster.any_frozen() {
            // A flush would empty slots being handed over after their last
            // changes were sent: it waits for the handoff like a write.
            Some(crate::cluster::Redirect::Frozen)
        } else if spec.name == "exec"
            && let Some(multi) = cx.client.multi.as_ref()
        {
            // The transaction's commands run inside EXEC, where nothing can
            // wait: the whole EXEC waits for a handoff of its slot, or of
            // any slot if it flushes. (Other redirects reach each queued
            // command, as before.)
            let flushes = multi.queued.iter().any(|q| {
                FLUSHES
                    .iter()
                    .any(|f| q[0].eq_ignore_ascii_case(f.as_bytes()))
            });
            if flushes && cluster.any_frozen() {
                Some(crate::cluster::Redirect::Frozen)
            } else {
                multi.slot.and_then(|slot| {
                    cluster
                        .route_write(std::iter::once(slot))
                        .filter(|r| *r == crate::cluster::Redirect::Frozen)
                })
            }
        } else {
            None
        };
        drop(cluster);
        match redirect {
            Some(crate::cluster::Redirect::Frozen) if !cx.client.in_exec => {
                cx.client.wait = Some(crate::client::Wait::Frozen);
                return Reply::Null;
            }
            Some(redirect) => return Reply::error(redirect.message()),
            None => {}
        }
    }
    if let Err(e) = replication_gate(cx, spec, writes) {
        return e;
    }
    if let Err(oom) = admit(cx, spec) {
        return oom;
    }
    if !cx.client.in_exec
        && let Some(pause) = shared.pause()
        && (pause.all || spec.flags & flags::WRITE != 0 || MAY_WRITE.contains(&spec.name))
    {
        cx.client.wait = Some(crate::client::Wait::Pause);
        return Reply::Null;
    }
    shared.count_call(spec.id());
    // Taken before the handler: EXEC's queued commands move the tick on.
    let start = cx.client.tick;
    let reply = (spec.run)(cx, args);
    let end = std::time::Instant::now();
    let took = end.duration_since(start);
    let micros = took.as_micros() as u64;
    cx.client.tick = end;
    if let Some(slot) = slot {
        let now = cx.db.now_ms();
        cx.db.traffic.record(now, slot, took.as_nanos() as u64);
    }
    if shared.slowlog.is_slow(micros) && cx.client.wait.is_none() {
        shared.slowlog.record(
            args,
            micros,
            cx.client.addr.to_string(),
            cx.client.name.clone().unwrap_or_default(),
        );
    }
    reply
}

/// The memory check of a command about to run (from [`execute`]):
/// records whether its key lookups count as accesses (`CLIENT NO-TOUCH`),
/// and for a command that may grow memory (`denyoom`) over `maxmemory`,
/// evicts what the policy allows or refuses the command.
fn admit(cx: &mut Ctx, spec: &Spec) -> Result<(), Reply> {
    cx.db.set_touching(!cx.client.no_touch);
    let max = cx.shared.maxmemory();
    if spec.flags & flags::DENYOOM == 0 || max == 0 || cx.db.used_memory() <= max {
        return Ok(());
    }
    // While clients are paused the dataset stands still (a failover waits
    // for it to): no eviction, and the write waits for the end of the pause
    // like any other, to be admitted then (Redis does the same).
    if cx.shared.pause().is_some() {
        return Ok(());
    }
    // A client that set NO-EVICT asked not to be what triggers eviction.
    match crate::db::make_room(cx.db, max, !cx.client.no_evict) {
        crate::db::Room::Fits | crate::db::Room::Evicting => Ok(()),
        crate::db::Room::Full => {
            cx.shared
                .stats
                .oom_rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(Reply::error(crate::db::OOM))
        }
    }
}

/// What replication forbids here: writes on a replica, anything but
/// `LOADING`-flagged commands while a full sync replaces the keyspace,
/// writes on a primary outside its write lease. Admin requests pass.
fn replication_gate(cx: &Ctx, spec: &Spec, writes: bool) -> Result<(), Reply> {
    let shared = cx.shared;
    if cx.client.user == Some(User::Admin) {
        return Ok(());
    }
    if spec.flags & flags::LOADING == 0
        && let Some(refusal) = shared.gate.lock().expect("gate lock").as_ref()
    {
        return Err(Reply::error(refusal.clone()));
    }
    match shared.role.get() {
        crate::replication::Role::Primary => {
            if writes && shared.cluster_mode {
                let now = cx.client.tick.saturating_duration_since(shared.started);
                shared
                    .lease
                    .check(now.as_millis() as u64)
                    .map_err(|f| Reply::error(f.message()))?;
            }
            Ok(())
        }
        crate::replication::Role::Loading if spec.flags & flags::LOADING == 0 => Err(Reply::error(
            "LOADING Tidecache is loading the dataset in memory",
        )),
        _ if writes => Err(Reply::error(
            "READONLY You can't write against a read only replica.",
        )),
        _ => Ok(()),
    }
}

/// Commands that write every slot without naming a key.
const FLUSHES: &[&str] = &["flushall", "flushdb"];

/// Commands without the write flag that a write pause holds back anyway:
/// what they run may write (Redis's `may-replicate`).
const MAY_WRITE: &[&str] = &["exec", "publish", "spublish", "pfcount"];

fn unknown_command(args: &[Bytes]) -> Reply {
    let mut msg = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&args[0])
    );
    for a in args.iter().skip(1).take(20) {
        msg.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
    }
    Reply::Error(msg)
}

pub(crate) fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Helpers shared by handlers: argument parsing with Redis's error texts.
pub(crate) mod util {
    use bytes::Bytes;

    use crate::frame::Reply;

    pub const SYNTAX: &str = "ERR syntax error";
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

    /// Most members a negative count may ask SRANDMEMBER, ZRANDMEMBER or
    /// HRANDFIELD for. Repeats are allowed, so the collection's size does
    /// not bound the reply, and every member is a reply element built in
    /// memory before anything is written: a larger count gets "value is out
    /// of range" rather than one command allocating gigabytes.
    pub const MAX_RANDOM_REPEATS: u64 = 1_000_000;

    /// Parses a strict decimal i64 (no spaces, no `+`), as Redis's `string2ll`.
    pub fn parse_i64(arg: &[u8]) -> Option<i64> {
        if arg.is_empty() || arg.len() > 20 || arg[0] == b'+' {
            return None;
        }
        if arg.len() > 1 && (arg[0] == b'0' || (arg[0] == b'-' && arg[1] == b'0')) {
            return None;
        }
        std::str::from_utf8(arg).ok()?.parse().ok()
    }

    pub fn int_arg(arg: &[u8]) -> Result<i64, Reply> {
        parse_i64(arg).ok_or_else(|| Reply::error(NOT_INTEGER))
    }

    pub fn eq(arg: &Bytes, word: &str) -> bool {
        arg.eq_ignore_ascii_case(word.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::util::parse_i64;
    use super::*;

    /// `@fast`/`@slow` follow the `FAST` flag; the only rows that say
    /// otherwise are CLIENT subcommands Redis lists as slow while our
    /// table flags them fast (kept so `COMMAND INFO` does not change).
    #[test]
    fn speed_categories_follow_the_fast_flag() {
        let mut stated = Vec::new();
        for spec in COMMANDS.iter().flat_map(Spec::rows) {
            let cats = spec.acl_categories();
            let speeds: Vec<_> = cats
                .iter()
                .filter(|c| matches!(**c, "@fast" | "@slow"))
                .collect();
            if !spec.subcommands.is_empty() && !spec.name.contains('|') {
                assert!(speeds.is_empty(), "{}", spec.name);
                continue;
            }
            assert_eq!(speeds.len(), 1, "{}: {cats:?}", spec.name);
            let fast = spec.flags & flags::FAST != 0;
            if (*speeds[0] == "@fast") != fast {
                stated.push(spec.name);
            }
        }
        assert_eq!(
            stated,
            [
                "client|id",
                "client|setname",
                "client|getname",
                "client|setinfo",
                "client|info",
                "client|reply",
                "client|no-touch",
                "client|getredir",
                "client|help",
            ]
        );
    }

    /// The admin groups that are containers themselves list the speed they
    /// listed as plain rows, and so does every action under them.
    #[test]
    fn nested_containers_report_their_speed() {
        let tidecache = lookup(COMMANDS, b"tidecache").unwrap();
        assert!(!tidecache.acl_categories().contains(&"@slow"));
        for group in ["topology", "migrate", "import", "repl", "lease"] {
            let row = lookup(tidecache.subcommands, group.as_bytes()).unwrap();
            assert!(!row.subcommands.is_empty(), "{group}");
            for spec in row.rows() {
                assert_eq!(
                    spec.acl_categories(),
                    ["@admin", "@slow", "@dangerous"],
                    "{}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-7"), Some(-7));
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"1.0",
            b"9223372036854775808",
            b"abc",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn key_positions_follow_the_table() {
        let args: Vec<Bytes> = ["MSET", "a", "1", "b", "2"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        let mset = lookup(COMMANDS, b"mset").unwrap();
        assert_eq!(
            key_args(mset, &args).collect::<Vec<_>>(),
            vec![&args[1], &args[3]]
        );
        let del = lookup(COMMANDS, b"DEL").unwrap();
        assert_eq!(key_args(del, &args).count(), 4);
        let get = lookup(COMMANDS, b"get").unwrap();
        assert_eq!(
            key_args(get, &args[..2]).collect::<Vec<_>>(),
            vec![&args[1]]
        );
        let ping = lookup(COMMANDS, b"ping").unwrap();
        assert_eq!(key_args(ping, &args).count(), 0);
    }

    fn argv(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn keys_of(command: &str, words: &str) -> Vec<String> {
        let args = argv(words);
        let spec = lookup(COMMANDS, command.as_bytes()).unwrap();
        key_args(spec, &args)
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn keynum_rows_count_their_keys() {
        assert_eq!(keys_of("zunion", "ZUNION 2 a b WEIGHTS 1 2"), ["a", "b"]);
        assert_eq!(keys_of("zinter", "ZINTER 1 a b"), ["a"]);
        assert_eq!(
            keys_of("zunionstore", "ZUNIONSTORE d 2 a b AGGREGATE MAX"),
            ["d", "a", "b"]
        );
        assert_eq!(keys_of("zdiffstore", "ZDIFFSTORE d 1 a"), ["d", "a"]);
        assert_eq!(
            keys_of("lmpop", "LMPOP 3 a b c LEFT COUNT 2"),
            ["a", "b", "c"]
        );
        assert_eq!(keys_of("zmpop", "ZMPOP 1 a MIN"), ["a"]);
        assert_eq!(
            keys_of("sintercard", "SINTERCARD 2 a b LIMIT 1"),
            ["a", "b"]
        );
        assert_eq!(keys_of("zintercard", "ZINTERCARD 2 a b"), ["a", "b"]);
        // A count at index 2, after a timeout (BLMPOP's shape).
        let blmpop = Spec {
            name: "blmpop",
            keys: table::numkeys(2),
            ..*lookup(COMMANDS, b"lmpop").unwrap()
        };
        let args = argv("BLMPOP 0 2 a b LEFT");
        assert_eq!(
            key_args(&blmpop, &args).collect::<Vec<_>>(),
            [&args[3], &args[4]]
        );
    }

    #[test]
    fn bad_counts_yield_no_keys_and_never_panic() {
        for words in [
            "ZUNIONSTORE d 0 a",
            "ZUNIONSTORE d -1 a",
            "ZUNIONSTORE d 3 a b",
            "ZUNIONSTORE d x a",
            "ZUNIONSTORE d 99999999999999999999 a",
            "ZUNIONSTORE d",
            "ZUNIONSTORE",
            "ZUNIONSTORE d 1",
        ] {
            assert!(keys_of("zunionstore", words).is_empty(), "{words}");
        }
        for words in [
            "ZUNION 0 a",
            "ZUNION 2 a",
            "ZUNION",
            "ZUNION +1 a",
            "ZUNION 01 a",
        ] {
            assert!(keys_of("zunion", words).is_empty(), "{words}");
        }
        // Every row, with every short argument list: no panic.
        for spec in COMMANDS.iter().flat_map(Spec::rows) {
            for n in 0..6 {
                let args: Vec<Bytes> = (0..n).map(|i| Bytes::from(i.to_string())).collect();
                let _ = key_args(spec, &args).count();
            }
        }
    }

    #[test]
    fn keynum_rows_report_like_redis_in_command_info() {
        let zunionstore = lookup(COMMANDS, b"zunionstore").unwrap();
        assert_eq!(zunionstore.legacy_keys(), (1, 1, 1));
        assert!(zunionstore.movable_keys());
        let zunion = lookup(COMMANDS, b"zunion").unwrap();
        assert_eq!(zunion.legacy_keys(), (0, 0, 0));
        assert!(zunion.movable_keys());
        let mset = lookup(COMMANDS, b"mset").unwrap();
        assert_eq!(mset.legacy_keys(), (1, -1, 2));
        assert!(!mset.movable_keys());
        for spec in COMMANDS.iter().flat_map(Spec::rows) {
            if let table::KeySpec::KeyNum { first, numkeys } = spec.key_spec() {
                assert!(first >= 1 && first <= numkeys, "{}", spec.name);
            }
        }
    }

    #[test]
    fn every_command_is_declared_once_in_lowercase() {
        let mut names = std::collections::HashSet::new();
        for spec in COMMANDS.iter().flat_map(Spec::rows) {
            assert_eq!(spec.name, spec.name.to_lowercase());
            assert!(names.insert(spec.name), "{} twice", spec.name);
            assert!(spec.arity != 0);
            for sub in spec.subcommands {
                assert!(
                    sub.name.starts_with(&format!("{}|", spec.name)),
                    "{}",
                    sub.name
                );
            }
        }
    }

    /// Every admin request the protocol knows reaches its own row, whose
    /// arity takes it and whose name its words spell.
    #[test]
    fn every_admin_request_has_its_row() {
        use tidecache_topology::protocol::Request;
        let requests = Request::examples(b"{}", b"");
        for request in requests {
            let args: Vec<Bytes> = request.args().into_iter().map(Bytes::from).collect();
            let spec = lookup_request(&args).unwrap();
            let words: Vec<String> = args
                .iter()
                .take(spec.name.split('|').count())
                .map(|w| String::from_utf8_lossy(w).to_lowercase())
                .collect();
            assert_eq!(spec.name, words.join("|"));
            assert!(spec.subcommands.is_empty(), "{}", spec.name);
            let argc = args.len() as i32;
            assert!(
                argc == spec.arity || (spec.arity < 0 && argc >= -spec.arity),
                "{}",
                spec.name
            );
            assert_eq!(Request::parse(&args).unwrap().as_bytes(), request);
        }
        // Every action row is one of them.
        let tidecache = lookup(COMMANDS, b"tidecache").unwrap();
        let actions = tidecache.rows().filter(|s| s.name.split('|').count() == 3);
        assert_eq!(actions.count(), 21);
    }
}
