//! `CONFIG GET` and `CONFIG SET`, from one table of parameters: each row
//! names a parameter once, with how to read its current value and, for
//! those changeable at run time, how to parse a new one. The rest are
//! start-up flags (`crate::config`), reported so that tools reading them
//! work.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Ctx;
use super::encoding::{INTSET_ENTRIES, LISTPACK_ENTRIES, LISTPACK_VALUE};
use crate::cluster::Mode;
use crate::db::Db;
use crate::evict::{MAX_SAMPLES, Policy, Settings};
use crate::frame::Reply;
use crate::state::Shared;

/// Reads a parameter's current value.
type Get = fn(&Shared, &Db) -> String;

/// Parses a CONFIG SET value into the change; the error is the reason
/// CONFIG SET's reply gives.
type Set = fn(&mut Change, &str) -> Result<(), String>;

/// One CONFIG parameter.
struct Param {
    /// Lowercase, as CONFIG GET reports it.
    name: &'static str,
    get: Get,
    /// `None` for a parameter fixed at start.
    set: Option<Set>,
}

/// What one CONFIG SET changes, checked whole before any of it applies.
struct Change {
    maxmemory: Option<u64>,
    idle_timeout: Option<u64>,
    slowlog_threshold_us: Option<i64>,
    slowlog_max_len: Option<usize>,
    eviction: Settings,
}

const fn fixed(name: &'static str, get: Get) -> Param {
    Param {
        name,
        get,
        set: None,
    }
}

const fn settable(name: &'static str, get: Get, set: Set) -> Param {
    Param {
        name,
        get,
        set: Some(set),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// An integer within `min..=max`, with Redis's reasons for anything else.
fn int(value: &str, min: i64, max: i64) -> Result<i64, String> {
    let n = super::util::parse_i64(value.as_bytes())
        .ok_or("argument couldn't be parsed into an integer")?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "argument must be between {min} and {max} inclusive"
        ))
    }
}

/// Every parameter, in the order CONFIG GET lists them.
#[rustfmt::skip]
const PARAMS: &[Param] = &[
    fixed("port", |s, _| s.config.port.to_string()),
    fixed("bind", |s, _| s.config.bind.clone()),
    settable("maxmemory", |s, _| s.maxmemory().to_string(), |c, v| {
        c.maxmemory = Some(crate::config::parse_size(v)?);
        Ok(())
    }),
    settable("maxmemory-policy", |_, db| db.eviction().policy.name().to_owned(), |c, v| {
        c.eviction.policy = Policy::parse(v).ok_or_else(|| {
            format!("argument(s) must be one of the following: {}", Policy::NAMES.join(", "))
        })?;
        Ok(())
    }),
    settable("maxmemory-samples", |_, db| db.eviction().samples.to_string(), |c, v| {
        c.eviction.samples = int(v, 1, MAX_SAMPLES as i64)? as usize;
        Ok(())
    }),
    settable("lfu-log-factor", |_, db| db.eviction().lfu_log_factor.to_string(), |c, v| {
        c.eviction.lfu_log_factor = int(v, 0, i32::MAX.into())? as u32;
        Ok(())
    }),
    settable("lfu-decay-time", |_, db| db.eviction().lfu_decay_time.to_string(), |c, v| {
        c.eviction.lfu_decay_time = int(v, 0, i32::MAX.into())? as u32;
        Ok(())
    }),
    fixed("maxclients", |s, _| s.config.maxclients.to_string()),
    settable("timeout", |s, _| s.idle_timeout().to_string(), |c, v| {
        c.idle_timeout = Some(int(v, 0, i32::MAX.into())? as u64);
        Ok(())
    }),
    settable("slowlog-log-slower-than", |s, _| s.slowlog.threshold_us.load(Ordering::Relaxed).to_string(), |c, v| {
        c.slowlog_threshold_us = Some(int(v, i64::MIN, i64::MAX)?);
        Ok(())
    }),
    settable("slowlog-max-len", |s, _| s.slowlog.max_len.load(Ordering::Relaxed).to_string(), |c, v| {
        c.slowlog_max_len = Some(int(v, 0, i32::MAX.into())? as usize);
        Ok(())
    }),
    fixed("protected-mode", |s, _| yes_no(s.config.protected_mode)),
    fixed("cluster-enabled", |s, _| yes_no(s.config.cluster_enabled)),
    fixed("proto-max-bulk-len", |s, _| s.config.proto_max_bulk_len.to_string()),
    fixed("client-query-buffer-limit", |s, _| s.config.client_query_buffer_limit.to_string()),
    // Fixed in Tidecache, reported so that tools reading them work.
    fixed("databases", |_, _| "1".into()),
    fixed("appendonly", |_, _| "no".into()),
    fixed("save", |_, _| String::new()),
    // The compact-encoding thresholds OBJECT ENCODING (and so *SCAN) goes
    // by, fixed here, under their names and the ziplist aliases Redis still
    // answers to. They are the values of the redis.conf Redis ships; a
    // redis-server started without a config file keeps hashes compact up to
    // 512 entries instead.
    fixed("hash-max-listpack-entries", |_, _| LISTPACK_ENTRIES.to_string()),
    fixed("hash-max-ziplist-entries", |_, _| LISTPACK_ENTRIES.to_string()),
    fixed("hash-max-listpack-value", |_, _| LISTPACK_VALUE.to_string()),
    fixed("hash-max-ziplist-value", |_, _| LISTPACK_VALUE.to_string()),
    fixed("zset-max-listpack-entries", |_, _| LISTPACK_ENTRIES.to_string()),
    fixed("zset-max-ziplist-entries", |_, _| LISTPACK_ENTRIES.to_string()),
    fixed("zset-max-listpack-value", |_, _| LISTPACK_VALUE.to_string()),
    fixed("zset-max-ziplist-value", |_, _| LISTPACK_VALUE.to_string()),
    fixed("set-max-intset-entries", |_, _| INTSET_ENTRIES.to_string()),
    fixed("set-max-listpack-entries", |_, _| LISTPACK_ENTRIES.to_string()),
    fixed("set-max-listpack-value", |_, _| LISTPACK_VALUE.to_string()),
    fixed("list-max-listpack-size", |_, _| "-2".into()),
    fixed("list-max-ziplist-size", |_, _| "-2".into()),
    fixed("list-compress-depth", |_, _| "0".into()),
];

/// `CONFIG GET parameter [parameter ...]`, each a glob pattern.
pub fn config_get(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let patterns: Vec<Vec<u8>> = args[2..].iter().map(|p| p.to_ascii_lowercase()).collect();
    let out = PARAMS
        .iter()
        .filter(|p| {
            patterns
                .iter()
                .any(|pat| crate::glob::matches(pat, p.name.as_bytes()))
        })
        .map(|p| (Reply::text(p.name), Reply::text(&(p.get)(cx.shared, cx.db))))
        .collect();
    Reply::Map(out)
}

/// `CONFIG SET parameter value [parameter value ...]`: all or nothing, as
/// in Redis: every name is checked, then every value, before any applies.
pub fn config_set(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let shared = cx.shared;
    let client = &mut *cx.client;
    // Under the operator the node's size is the operator's decision: only
    // the admin user may change it. Standalone, the default user may, as in Redis.
    if shared.cluster.read().expect("cluster lock").mode() == Mode::Cluster
        && client.user != Some(crate::client::User::Admin)
    {
        return Reply::error(
            "NOPERM User default has no permissions to run the 'config|set' command",
        );
    }
    let pairs = &args[2..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Reply::error("ERR wrong number of arguments for 'config|set' command");
    }
    let failed = |name: &str, why: &str| {
        Reply::error(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    let mut setters = Vec::new();
    for pair in pairs.chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let Some(set) = PARAMS.iter().find(|p| p.name == name).and_then(|p| p.set) else {
            return Reply::error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        };
        if setters.iter().any(|(n, _, _)| *n == name) {
            return failed(&name, "duplicate parameter");
        }
        setters.push((name, set, &pair[1]));
    }
    let mut change = Change {
        maxmemory: None,
        idle_timeout: None,
        slowlog_threshold_us: None,
        slowlog_max_len: None,
        eviction: cx.db.eviction(),
    };
    for (name, set, value) in &setters {
        if let Err(why) = set(&mut change, &String::from_utf8_lossy(value)) {
            return failed(name, &why);
        }
    }
    cx.db.set_eviction(change.eviction);
    if let Some(t) = change.slowlog_threshold_us {
        shared.slowlog.threshold_us.store(t, Ordering::Relaxed);
    }
    if let Some(n) = change.slowlog_max_len {
        shared.slowlog.set_max_len(n);
    }
    if let Some(n) = change.maxmemory {
        shared.set_maxmemory(n);
    }
    if let Some(secs) = change.idle_timeout {
        shared.set_idle_timeout(secs);
    }
    // A lower limit, or a policy that now allows eviction, takes effect at
    // once (as far as one command's eviction time allows; writes go on).
    let _ = crate::db::make_room(cx.db, shared.maxmemory(), true);
    Reply::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_parameter_is_named_once_in_lowercase() {
        let mut names: Vec<_> = PARAMS.iter().map(|p| p.name).collect();
        assert!(names.iter().all(|n| *n == n.to_ascii_lowercase()));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PARAMS.len());
    }

    #[test]
    fn integers_are_checked_with_redis_reasons() {
        assert_eq!(int("5", 1, 64), Ok(5));
        assert_eq!(
            int("x", 1, 64),
            Err("argument couldn't be parsed into an integer".to_owned())
        );
        assert_eq!(
            int("65", 1, 64),
            Err("argument must be between 1 and 64 inclusive".to_owned())
        );
    }
}
