//! Commands: one static table, one dispatcher.
//!
//! Every command is declared once, as data ([`Spec`]): name, arity, flags,
//! key positions, ACL categories and documentation. [`dispatch`] runs the
//! generic checks from that table in a fixed order — lookup, arity, auth,
//! admin permission, slot ownership (`MOVED`/`CROSSSLOT`), memory (`OOM`) —
//! so that handlers never repeat them. `COMMAND`, `COMMAND INFO` and
//! `COMMAND DOCS` are answered from the same table.

mod admin;
mod cluster;
mod connection;
mod hashes;
mod keys;
mod lists;
mod server;
mod sets;
mod strings;
mod table;
mod zsets;

use bytes::Bytes;

use crate::frame::Reply;
use crate::server::{Client, Shared, User};
pub use table::{COMMANDS, Spec, lookup};

/// What a handler receives: the node's shared state and the calling client.
pub type Handler = fn(&Shared, &mut Client, &[Bytes]) -> Reply;

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
    ];
}

/// The keys a command touches, from its table entry's key positions
/// (first, last — negative counts from the end —, step).
pub fn key_args<'a>(spec: &Spec, args: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> + 'a {
    let (first, last, step) = spec.keys;
    let n = args.len() as i32;
    let range = if first <= 0 || step <= 0 || first >= n {
        0..0
    } else {
        let last = if last < 0 { n + last } else { last.min(n - 1) };
        first as usize..(last.max(first - 1) + 1) as usize
    };
    args[range].iter().step_by(step.max(1) as usize)
}

/// Runs one request and returns its reply.
pub fn dispatch(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    let Some(top) = lookup(COMMANDS, &args[0]) else {
        return unknown_command(args);
    };
    let spec = if top.subcommands.is_empty() {
        top
    } else {
        match args.get(1) {
            // Bare `COMMAND` lists every command; other containers need a subcommand.
            None if top.name == "command" => top,
            None => return wrong_arity(top.name),
            Some(sub) => match lookup(top.subcommands, sub) {
                Some(spec) => spec,
                None => {
                    return Reply::error(format!(
                        "ERR unknown subcommand '{}'. Try {} HELP.",
                        String::from_utf8_lossy(sub),
                        top.name.to_uppercase()
                    ));
                }
            },
        }
    };
    let argc = args.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity) {
        return wrong_arity(spec.name);
    }
    if client.user.is_none() && spec.flags & flags::NO_AUTH == 0 {
        return Reply::error("NOAUTH Authentication required.");
    }
    if spec.flags & flags::ADMIN != 0 && client.user != Some(User::Admin) {
        return Reply::error(format!(
            "NOPERM User {} has no permissions to run the '{}' command",
            client.user.map_or("default", User::name),
            spec.name
        ));
    }
    if spec.keys.0 > 0 {
        let redirect = shared
            .cluster
            .read()
            .expect("cluster lock")
            .route(key_args(spec, args).map(|k| tidecache_topology::key_slot(k)));
        if let Some(redirect) = redirect {
            return Reply::error(redirect.message());
        }
    }
    if spec.flags & flags::DENYOOM != 0 && shared.over_maxmemory() {
        return Reply::error("OOM command not allowed when used memory > 'maxmemory'.");
    }
    shared.count_call(spec);
    (spec.run)(shared, client, args)
}

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

fn wrong_arity(name: &str) -> Reply {
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

    #[test]
    fn every_command_is_declared_once_in_lowercase() {
        let mut names = std::collections::HashSet::new();
        for spec in COMMANDS {
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
}
