//! Server commands: INFO, COMMAND and the HELP of container commands.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::flags::NAMES;
use super::{COMMANDS, Spec, lookup};
use crate::cluster::Mode;
use crate::frame::Reply;
use crate::server::{Client, Shared};

/// `INFO [section ...]`; no section means the default set, `all`/`everything` all of them.
pub fn info(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    const SECTIONS: &[&str] = &[
        "server",
        "clients",
        "memory",
        "stats",
        "replication",
        "keyspace",
        "cluster",
    ];
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let mut out = String::new();
    for section in SECTIONS {
        if all || wanted.iter().any(|w| w == section) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            render_section(shared, section, &mut out);
        }
    }
    Reply::Verbatim(out)
}

fn render_section(shared: &Shared, section: &str, out: &mut String) {
    let cfg = &shared.config;
    let cluster = shared.cluster.read().expect("cluster lock");
    let (keys, expires, used, stats) = {
        let db = shared.db.lock().expect("db lock");
        (db.len(), db.keys_with_deadline(), db.used_bytes(), db.stats)
    };
    let mut w = |k: &str, v: &dyn std::fmt::Display| {
        // A key starting with '#' is a section title.
        let _ = if k.starts_with('#') {
            write!(out, "{k}\r\n")
        } else {
            write!(out, "{k}:{v}\r\n")
        };
    };
    match section {
        "server" => {
            w("# Server", &"");
            w("redis_version", &crate::REDIS_VERSION);
            w("tidecache_version", &env!("CARGO_PKG_VERSION"));
            w(
                "redis_mode",
                &if cluster.mode() == Mode::Cluster {
                    "cluster"
                } else {
                    "standalone"
                },
            );
            w("os", &std::env::consts::OS);
            w("arch_bits", &(usize::BITS));
            w("process_id", &std::process::id());
            w("run_id", &shared.run_id);
            w("tcp_port", &cfg.port);
            w("uptime_in_seconds", &shared.started.elapsed().as_secs());
            w(
                "uptime_in_days",
                &(shared.started.elapsed().as_secs() / 86400),
            );
        }
        "clients" => {
            w("# Clients", &"");
            w(
                "connected_clients",
                &shared.stats.connected_clients.load(Ordering::Relaxed),
            );
            w("maxclients", &cfg.maxclients);
        }
        "memory" => {
            w("# Memory", &"");
            w("used_memory", &used);
            w("used_memory_human", &human_bytes(used as u64));
            w("used_memory_dataset", &used);
            w("maxmemory", &shared.maxmemory());
            w("maxmemory_human", &human_bytes(shared.maxmemory()));
            w("maxmemory_policy", &cfg.maxmemory_policy);
        }
        "stats" => {
            w("# Stats", &"");
            w(
                "total_connections_received",
                &shared.stats.connections_received.load(Ordering::Relaxed),
            );
            w(
                "total_commands_processed",
                &shared.stats.commands_processed.load(Ordering::Relaxed),
            );
            w(
                "rejected_connections",
                &shared.stats.rejected_connections.load(Ordering::Relaxed),
            );
            w("expired_keys", &stats.expired);
            w("evicted_keys", &0);
            w("keyspace_hits", &stats.hits);
            w("keyspace_misses", &stats.misses);
            w("total_error_replies", &0);
            w(
                "protocol_errors",
                &shared.stats.protocol_errors.load(Ordering::Relaxed),
            );
        }
        "replication" => {
            w("# Replication", &"");
            let role = match cluster.role() {
                Some(tidecache_topology::document::Role::Replica) => "slave",
                _ => "master",
            };
            w("role", &role);
            w("connected_slaves", &0);
            w("master_repl_offset", &0);
        }
        "keyspace" => {
            w("# Keyspace", &"");
            if keys > 0 {
                w("db0", &format!("keys={keys},expires={expires},avg_ttl=0"));
            }
        }
        "cluster" => {
            w("# Cluster", &"");
            // Like redis-server: 0 when standalone, even though CLUSTER commands
            // answer as a one-shard cluster for cluster-aware clients.
            w(
                "cluster_enabled",
                &i32::from(cluster.mode() == Mode::Cluster),
            );
            w("tidecache_topology_epoch", &cluster.epoch());
        }
        _ => {}
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

fn all_specs() -> impl Iterator<Item = &'static Spec> {
    COMMANDS.iter()
}

/// The `COMMAND INFO` entry of one command, as Redis 7 shapes it.
fn info_entry(spec: &Spec) -> Reply {
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Integer(spec.arity.into()),
        Reply::Set(
            NAMES
                .iter()
                .filter(|(f, _)| spec.flags & f != 0)
                .map(|(_, n)| Reply::Simple(n))
                .collect(),
        ),
        Reply::Integer(spec.keys.0.into()),
        Reply::Integer(spec.keys.1.into()),
        Reply::Integer(spec.keys.2.into()),
        Reply::Set(spec.acl.iter().map(|c| Reply::Simple(c)).collect()),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(spec.subcommands.iter().map(info_entry).collect()),
    ])
}

fn docs_entry(spec: &Spec) -> Reply {
    let mut fields = vec![
        (Reply::text("summary"), Reply::text(spec.summary)),
        (Reply::text("since"), Reply::text(spec.since)),
        (Reply::text("group"), Reply::text(spec.group)),
    ];
    if !spec.subcommands.is_empty() {
        fields.push((
            Reply::text("subcommands"),
            Reply::Map(
                spec.subcommands
                    .iter()
                    .map(|s| (Reply::text(s.name), docs_entry(s)))
                    .collect(),
            ),
        ));
    }
    Reply::Map(fields)
}

/// Resolves `name` or `container|sub` to its table entry.
fn find(name: &[u8]) -> Option<&'static Spec> {
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => {
            lookup(COMMANDS, &name[..bar]).and_then(|top| lookup(top.subcommands, &name[bar + 1..]))
        }
        None => lookup(COMMANDS, name),
    }
}

pub fn command_count(_: &Shared, _: &mut Client, _: &[Bytes]) -> Reply {
    Reply::Integer(COMMANDS.len() as i64)
}

pub fn command_info(_: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    if args.len() == 2 {
        return Reply::Array(all_specs().map(info_entry).collect());
    }
    Reply::Array(
        args[2..]
            .iter()
            .map(|n| find(n).map_or(Reply::NullArray, info_entry))
            .collect(),
    )
}

pub fn command_docs(_: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let specs: Vec<&Spec> = if args.len() == 2 {
        all_specs().collect()
    } else {
        args[2..].iter().filter_map(|n| find(n)).collect()
    };
    Reply::Map(
        specs
            .into_iter()
            .map(|s| (Reply::text(s.name), docs_entry(s)))
            .collect(),
    )
}

pub fn command_list(_: &Shared, _: &mut Client, _: &[Bytes]) -> Reply {
    Reply::Array(all_specs().map(|s| Reply::text(s.name)).collect())
}

/// `COMMAND` alone lists every command's info; `X HELP` lists X's subcommands.
pub fn container_help(_: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let Some(top) = lookup(COMMANDS, &args[0]) else {
        return Reply::error("ERR unknown command");
    };
    if args.len() == 1 {
        // Only COMMAND has arity -1 semantics here: bare COMMAND.
        return Reply::Array(all_specs().map(info_entry).collect());
    }
    let mut lines = vec![Reply::Status(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        top.name.to_uppercase()
    ))];
    for sub in top.subcommands {
        lines.push(Reply::Status(sub.short_name().to_uppercase()));
        lines.push(Reply::Status(format!("    {}", sub.summary)));
    }
    Reply::Array(lines)
}

/// `TIME`: seconds and microseconds since the Unix epoch.
pub fn time(_: &Shared, _: &mut Client, _: &[Bytes]) -> Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::text(&now.as_secs().to_string()),
        Reply::text(&now.subsec_micros().to_string()),
    ])
}

/// The parameters CONFIG GET reports, with their current values.
fn config_params(shared: &Shared) -> Vec<(&'static str, String)> {
    let c = &shared.config;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    vec![
        ("port", c.port.to_string()),
        ("bind", c.bind.clone()),
        ("maxmemory", shared.maxmemory().to_string()),
        ("maxmemory-policy", c.maxmemory_policy.clone()),
        ("maxclients", c.maxclients.to_string()),
        ("protected-mode", yes_no(c.protected_mode)),
        ("cluster-enabled", yes_no(c.cluster_enabled)),
        ("proto-max-bulk-len", c.proto_max_bulk_len.to_string()),
        (
            "client-query-buffer-limit",
            c.client_query_buffer_limit.to_string(),
        ),
        // Fixed in Tidecache, reported so that tools reading them work.
        ("databases", "1".into()),
        ("appendonly", "no".into()),
        ("save", String::new()),
    ]
}

/// `CONFIG GET parameter [parameter ...]`, each a glob pattern.
pub fn config_get(shared: &Shared, _: &mut Client, args: &[Bytes]) -> Reply {
    let params = config_params(shared);
    let mut out: Vec<(Reply, Reply)> = Vec::new();
    for (name, value) in &params {
        if args[2..]
            .iter()
            .any(|p| crate::glob::matches(&p.to_ascii_lowercase(), name.as_bytes()))
        {
            out.push((Reply::text(name), Reply::text(value)));
        }
    }
    Reply::Map(out)
}

/// `CONFIG SET parameter value [parameter value ...]`: only `maxmemory`
/// changes at run time so far; the rest are start-up flags.
pub fn config_set(shared: &Shared, client: &mut Client, args: &[Bytes]) -> Reply {
    // Under the operator the node's size is the operator's decision: only
    // the admin user may change it. Standalone, the default user may, as in Redis.
    if shared.cluster.read().expect("cluster lock").mode() == Mode::Cluster
        && client.user != Some(crate::server::User::Admin)
    {
        return Reply::error(
            "NOPERM User default has no permissions to run the 'config|set' command",
        );
    }
    let pairs = &args[2..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Reply::error("ERR wrong number of arguments for 'config|set' command");
    }
    let mut maxmemory = None;
    for pair in pairs.chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        match name.as_str() {
            "maxmemory" => match crate::config::parse_size(&value) {
                Ok(n) => maxmemory = Some(n),
                Err(e) => {
                    return Reply::error(format!(
                        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - {e}"
                    ));
                }
            },
            "maxmemory-policy" if value == shared.config.maxmemory_policy => {}
            _ => {
                return Reply::error(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
            }
        }
    }
    if let Some(n) = maxmemory {
        shared.set_maxmemory(n);
    }
    Reply::OK
}

/// `CONFIG RESETSTAT`: nothing to reset yet beyond what INFO derives live.
pub fn config_resetstat(_: &Shared, _: &mut Client, _: &[Bytes]) -> Reply {
    Reply::OK
}
