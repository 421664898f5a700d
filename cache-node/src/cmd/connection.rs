//! Connection commands: PING, ECHO, HELLO, AUTH, QUIT, SELECT, CLIENT.

use bytes::Bytes;

use super::util::{SYNTAX, eq};
use crate::cluster::Mode;
use crate::frame::{Protocol, Reply};
use crate::server::{Client, Shared};

pub fn ping(_: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    match args.len() {
        1 => Reply::Simple("PONG"),
        2 => Reply::Bulk(args[1].clone()),
        _ => Reply::error("ERR wrong number of arguments for 'ping' command"),
    }
}

pub fn echo(_: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

pub fn auth(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
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
pub fn hello(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
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
        (Reply::text("version"), Reply::text(crate::REDIS_VERSION)),
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

pub fn quit(_: &Shared, client: &mut Client, _: &[Bytes]) -> Reply {
    client.closing = true;
    Reply::OK
}

pub fn select(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    match super::util::parse_i64(&args[1]) {
        None => Reply::error(super::util::NOT_INTEGER),
        Some(0) => Reply::OK,
        Some(_) if shared.cluster.read().expect("cluster lock").mode() == Mode::Cluster => {
            Reply::error("ERR SELECT is not allowed in cluster mode")
        }
        Some(_) => Reply::error("ERR DB index is out of range"),
    }
}

pub fn client_id(_: &Shared, client: &mut Client, _: &[Bytes]) -> Reply {
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

pub fn client_setname(_: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    if let Err(e) = check_client_name(&args[2]) {
        return e;
    }
    client.name = (!args[2].is_empty()).then(|| args[2].clone());
    Reply::OK
}

pub fn client_getname(_: &Shared, client: &mut Client, _: &[Bytes]) -> Reply {
    client.name.clone().map_or(Reply::Null, Reply::Bulk)
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`, sent by client libraries on connect.
pub fn client_setinfo(_: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
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
