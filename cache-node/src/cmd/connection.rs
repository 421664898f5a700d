//! Connection commands: PING, ECHO, HELLO, AUTH, QUIT, SELECT, CLIENT.

use bytes::Bytes;

use super::Ctx;
use super::util::{SYNTAX, eq};
use crate::cluster::Mode;
use crate::frame::{Protocol, Reply};

pub fn ping(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    if cx.client.proto == Protocol::Resp2 && cx.client.subs.any() {
        // A subscribed RESP2 connection carries only arrays.
        return Reply::Array(vec![
            Reply::text("pong"),
            Reply::Bulk(args.get(1).cloned().unwrap_or_default()),
        ]);
    }
    match args.len() {
        1 => Reply::Simple("PONG"),
        2 => Reply::Bulk(args[1].clone()),
        _ => Reply::error("ERR wrong number of arguments for 'ping' command"),
    }
}

pub fn echo(_: &mut Ctx, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

pub fn auth(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let shared = cx.shared;
    let client = &mut *cx.client;
    let (user, password) = match args.len() {
        2 => (None, &args[1]),
        3 => (Some(&args[1][..]), &args[2]),
        _ => return Reply::error(SYNTAX),
    };
    if user.is_none() && shared.config.requirepass.is_none() {
        return Reply::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    }
    match shared.check_password(user, password) {
        Some(u) => {
            client.user = Some(u);
            Reply::OK
        }
        None => Reply::error(WRONGPASS),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
pub fn hello(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let shared = cx.shared;
    let client = &mut *cx.client;
    let mut proto = client.proto;
    if let Some(ver) = args.get(1) {
        proto = match &ver[..] {
            b"2" => Protocol::Resp2,
            b"3" => Protocol::Resp3,
            _ if super::util::parse_i64(ver).is_some() => {
                return Reply::error("NOPROTO sorry, this protocol version is not supported.");
            }
            _ => return Reply::error("ERR Protocol version is not an integer or out of range"),
        };
    }
    let mut auth = None;
    let mut name = None;
    let mut i = 2;
    while i < args.len() {
        if eq(&args[i], "AUTH") && i + 2 < args.len() {
            auth = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if eq(&args[i], "SETNAME") && i + 1 < args.len() {
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Reply::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            ));
        }
    }
    if let Some((user, password)) = auth {
        match shared.check_password(Some(user), password) {
            Some(u) => client.user = Some(u),
            None => return Reply::error(WRONGPASS),
        }
    }
    if client.user.is_none() {
        return Reply::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = name {
        if let Err(e) = check_client_name(&name) {
            return e;
        }
        client.name = (!name.is_empty()).then_some(name);
    }
    client.proto = proto;
    let cluster = shared.cluster.read().expect("cluster lock");
    let role = match cluster.role() {
        Some(tidecache_topology::document::Role::Replica) => "replica",
        _ => "master",
    };
    Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (
            Reply::text("version"),
            Reply::text(crate::ident::REDIS_VERSION),
        ),
        (
            Reply::text("proto"),
            Reply::Integer(if proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (Reply::text("id"), Reply::Integer(client.id as i64)),
        (
            Reply::text("mode"),
            Reply::text(if cluster.mode() == Mode::Cluster {
                "cluster"
            } else {
                "standalone"
            }),
        ),
        (Reply::text("role"), Reply::text(role)),
        (Reply::text("modules"), Reply::Array(vec![])),
    ])
}

pub fn quit(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let client = &mut *cx.client;
    client.closing = true;
    Reply::OK
}

pub fn select(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let shared = cx.shared;
    match super::util::parse_i64(&args[1]) {
        None => Reply::error(super::util::NOT_INTEGER),
        Some(0) => Reply::OK,
        Some(_) if shared.cluster.read().expect("cluster lock").mode() == Mode::Cluster => {
            Reply::error("ERR SELECT is not allowed in cluster mode")
        }
        Some(_) => Reply::error("ERR DB index is out of range"),
    }
}

pub fn client_id(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let client = &mut *cx.client;
    Reply::Integer(client.id as i64)
}

fn check_client_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

pub fn client_setname(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let client = &mut *cx.client;
    if let Err(e) = check_client_name(&args[2]) {
        return e;
    }
    client.name = (!args[2].is_empty()).then(|| args[2].clone());
    Reply::OK
}

pub fn client_getname(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let client = &mut *cx.client;
    client.name.clone().map_or(Reply::Null, Reply::Bulk)
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`, sent by client libraries on connect.
pub fn client_setinfo(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let client = &mut *cx.client;
    let value = args[3].clone();
    if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Reply::error(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(&args[2])
        ));
    }
    if eq(&args[2], "LIB-NAME") {
        client.lib_name = Some(value);
    } else if eq(&args[2], "LIB-VER") {
        client.lib_ver = Some(value);
    } else {
        return Reply::error(format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(&args[2])
        ));
    }
    Reply::OK
}

/// Bytes a client's buffers hold, for `CLIENT LIST`'s memory fields.
fn client_line(h: &crate::client::Handle) -> String {
    let v = h.view.lock().expect("client view lock").clone();
    let text = |b: &Option<Bytes>| {
        b.as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let omem = h.outbox_bytes();
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} multi={} \
         qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll={} omem={omem} tot-mem={} \
         events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
        h.id,
        h.addr,
        h.laddr,
        text(&v.name),
        h.created.elapsed().as_secs(),
        v.last_active.elapsed().as_secs(),
        v.flags,
        v.sub,
        v.psub,
        v.ssub,
        v.multi.map_or(-1, |n| n as i64),
        h.outbox_len(),
        omem + 16384,
        v.last_cmd,
        v.user,
        v.resp,
        text(&v.lib_name),
        text(&v.lib_ver),
    )
}

/// The client registry, ordered by id.
fn handles(cx: &Ctx) -> Vec<std::sync::Arc<crate::client::Handle>> {
    let mut all: Vec<_> = cx
        .shared
        .clients
        .lock()
        .expect("clients lock")
        .values()
        .cloned()
        .collect();
    all.sort_by_key(|h| h.id);
    all
}

/// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]`
pub fn client_list(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<String> = None;
    let mut i = 2;
    while i < args.len() {
        if eq(&args[i], "TYPE") && i + 1 < args.len() {
            let k = String::from_utf8_lossy(&args[i + 1]).to_lowercase();
            if !["normal", "master", "replica", "slave", "pubsub"].contains(&k.as_str()) {
                return Reply::error(format!("ERR Unknown client type '{k}'"));
            }
            kind = Some(k);
            i += 2;
        } else if eq(&args[i], "ID") && i + 1 < args.len() {
            let mut list = Vec::new();
            for a in &args[i + 1..] {
                match super::util::parse_i64(a) {
                    Some(n) if n > 0 => list.push(n as u64),
                    _ => return Reply::error("ERR Invalid client ID"),
                }
            }
            ids = Some(list);
            i = args.len();
        } else {
            return Reply::error(SYNTAX);
        }
    }
    cx.client.publish_view("client|list");
    let mut out = String::new();
    for h in handles(cx) {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&h.id)) {
            continue;
        }
        let pubsub = h.view.lock().expect("client view lock").flags.contains('P');
        match kind.as_deref() {
            Some("pubsub") if !pubsub => continue,
            Some("normal") if pubsub => continue,
            Some("master" | "replica" | "slave") => continue,
            _ => {}
        }
        out.push_str(&client_line(&h));
        out.push('\n');
    }
    Reply::Verbatim(out)
}

/// `CLIENT INFO`: this connection's `CLIENT LIST` line.
pub fn client_info(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    cx.client.publish_view("client|info");
    let mut line = client_line(&cx.client.handle);
    line.push('\n');
    Reply::Verbatim(line)
}

/// `CLIENT KILL ip:port`, or `CLIENT KILL <filter value> ...` with the
/// filters ID, TYPE, USER, ADDR, LADDR, SKIPME, MAXAGE.
pub fn client_kill(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let old_style = args.len() == 3;
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut user = None;
    let mut kind = None;
    let mut maxage = None;
    let mut skipme = !old_style;
    if old_style {
        addr = Some(String::from_utf8_lossy(&args[2]).into_owned());
    } else {
        if !args.len().is_multiple_of(2) {
            return Reply::error(SYNTAX);
        }
        for pair in args[2..].chunks(2) {
            let value = String::from_utf8_lossy(&pair[1]).into_owned();
            if eq(&pair[0], "ID") {
                match super::util::parse_i64(&pair[1]) {
                    Some(n) if n > 0 => id = Some(n as u64),
                    _ => return Reply::error("ERR client-id should be greater than 0"),
                }
            } else if eq(&pair[0], "ADDR") {
                addr = Some(value);
            } else if eq(&pair[0], "LADDR") {
                laddr = Some(value);
            } else if eq(&pair[0], "USER") {
                user = Some(value);
            } else if eq(&pair[0], "TYPE") {
                let k = value.to_lowercase();
                if !["normal", "master", "replica", "slave", "pubsub"].contains(&k.as_str()) {
                    return Reply::error(format!("ERR Unknown client type '{value}'"));
                }
                kind = Some(k);
            } else if eq(&pair[0], "SKIPME") {
                skipme = match value.to_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Reply::error(SYNTAX),
                };
            } else if eq(&pair[0], "MAXAGE") {
                match super::util::parse_i64(&pair[1]) {
                    Some(n) if n >= 0 => maxage = Some(n as u64),
                    _ => return Reply::error(super::util::NOT_INTEGER),
                }
            } else {
                return Reply::error(SYNTAX);
            }
        }
    }
    cx.client.publish_view("client|kill");
    let mut killed = 0;
    for h in handles(cx) {
        let view = h.view.lock().expect("client view lock").clone();
        let pubsub = view.flags.contains('P');
        let hit = id.is_none_or(|id| id == h.id)
            && addr.as_ref().is_none_or(|a| *a == h.addr.to_string())
            && laddr.as_ref().is_none_or(|a| *a == h.laddr.to_string())
            && user.as_ref().is_none_or(|u| u == view.user)
            && maxage.is_none_or(|age| h.created.elapsed().as_secs() >= age)
            && match kind.as_deref() {
                None => true,
                Some("pubsub") => pubsub,
                Some("normal") => !pubsub,
                Some(_) => false,
            };
        if !hit || (skipme && h.id == cx.client.id) {
            continue;
        }
        if h.id == cx.client.id {
            // Our own reply goes out first.
            cx.client.closing = true;
        } else {
            h.kill();
        }
        killed += 1;
    }
    match (old_style, killed) {
        (true, 0) => Reply::error("ERR No such client"),
        (true, _) => Reply::OK,
        (false, n) => Reply::Integer(n),
    }
}

/// `CLIENT PAUSE timeout-ms [WRITE|ALL]`
pub fn client_pause(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let ms = match super::util::parse_i64(&args[2]) {
        Some(ms) if ms < 0 => return Reply::error("ERR timeout is negative"),
        Some(ms) => ms as u64,
        None => return Reply::error("ERR timeout is not an integer or out of range"),
    };
    let all = match args.get(3) {
        None => true,
        Some(a) if eq(a, "ALL") => true,
        Some(a) if eq(a, "WRITE") => false,
        Some(_) => return Reply::error(SYNTAX),
    };
    if args.len() > 4 {
        return Reply::error(SYNTAX);
    }
    let Some(until) = tokio::time::Instant::now().checked_add(std::time::Duration::from_millis(ms))
    else {
        return Reply::error("ERR timeout is out of range");
    };
    cx.shared.set_pause(until, all);
    Reply::OK
}

pub fn client_unpause(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    cx.shared.unpause();
    Reply::OK
}

/// `CLIENT REPLY ON|OFF|SKIP`
pub fn client_reply(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    use crate::client::ReplyMode;
    cx.client.reply = if eq(&args[2], "ON") {
        ReplyMode::On
    } else if eq(&args[2], "OFF") {
        ReplyMode::Off
    } else if eq(&args[2], "SKIP") {
        ReplyMode::SkipNext
    } else {
        return Reply::error(SYNTAX);
    };
    Reply::OK
}

fn on_off(arg: &Bytes) -> Option<bool> {
    if eq(arg, "ON") {
        Some(true)
    } else if eq(arg, "OFF") {
        Some(false)
    } else {
        None
    }
}

/// `CLIENT NO-EVICT ON|OFF`: this client's writes do not trigger eviction.
pub fn client_no_evict(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match on_off(&args[2]) {
        Some(on) => {
            cx.client.no_evict = on;
            Reply::OK
        }
        None => Reply::error(SYNTAX),
    }
}

/// `CLIENT NO-TOUCH ON|OFF`: this client's reads do not change access times.
pub fn client_no_touch(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match on_off(&args[2]) {
        Some(on) => {
            cx.client.no_touch = on;
            Reply::OK
        }
        None => Reply::error(SYNTAX),
    }
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`
pub fn client_unblock(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    use crate::client::Unblock;
    let Some(id) = super::util::parse_i64(&args[2]) else {
        return Reply::error(super::util::NOT_INTEGER);
    };
    let how = match args.get(3) {
        None => Unblock::Timeout,
        Some(a) if eq(a, "TIMEOUT") => Unblock::Timeout,
        Some(a) if eq(a, "ERROR") => Unblock::Error,
        Some(_) => {
            return Reply::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        }
    };
    let target = cx
        .shared
        .clients
        .lock()
        .expect("clients lock")
        .get(&(id as u64))
        .cloned();
    Reply::Integer(i64::from(target.is_some_and(|h| h.request_unblock(how))))
}

/// `CLIENT GETREDIR`: client-side caching redirection; tracking is off.
pub fn client_getredir(_: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::Integer(-1)
}

/// `RESET`: the connection back to its state right after connecting.
pub fn reset(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    cx.client.multi = None;
    super::multi::unwatch_all(cx);
    {
        let mut ps = cx.shared.pubsub.lock().expect("pubsub lock");
        let subs = std::mem::take(&mut cx.client.subs);
        for (kind, names) in [
            (crate::pubsub::Kind::Channel, subs.channels),
            (crate::pubsub::Kind::Pattern, subs.patterns),
            (crate::pubsub::Kind::Shard, subs.shard),
        ] {
            for name in names {
                ps.unsubscribe(kind, &name, cx.client.id);
            }
        }
    }
    let c = &mut *cx.client;
    c.reply = crate::client::ReplyMode::On;
    c.proto = Protocol::Resp2;
    c.name = None;
    c.no_evict = false;
    c.no_touch = false;
    c.user = cx
        .shared
        .config
        .requirepass
        .is_none()
        .then_some(crate::client::User::Default);
    Reply::Simple("RESET")
}
