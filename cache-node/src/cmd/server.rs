//! Server commands: INFO, COMMAND, CONFIG RESETSTAT and the HELP of
//! container commands (CONFIG GET and SET: [`super::config`]).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Ctx;
use super::flags::NAMES;
use super::{COMMANDS, KeySpec, Spec, lookup};
use crate::cluster::Mode;
use crate::db::Db;
use crate::frame::Reply;
use crate::state::Shared;
use tidecache_topology::protocol::info;

/// CONFIG GET and SET read one table of parameters.
pub use super::config::{config_get, config_set};

/// `INFO [section ...]`; no section means the default set, `all`/`everything` all of them.
pub fn info(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let shared = cx.shared;
    const SECTIONS: &[&str] = &[
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
        "keyspace",
        "cluster",
        "migration",
        "commandstats",
    ];
    // Sections only `all` or their own name ask for, as in Redis.
    const NOT_DEFAULT: &[&str] = &["commandstats"];
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_lowercase())
        .collect();
    let all = wanted.iter().any(|w| w == "all" || w == "everything");
    let default = all || wanted.is_empty() || wanted.iter().any(|w| w == "default");
    let mut out = String::new();
    for section in SECTIONS {
        let listed = if NOT_DEFAULT.contains(section) {
            all
        } else {
            default
        };
        if listed || wanted.iter().any(|w| w == section) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            render_section(shared, cx.db, section, &mut out);
        }
    }
    Reply::Verbatim(out)
}

fn render_section(shared: &Shared, db: &mut Db, section: &str, out: &mut String) {
    let cfg = &shared.config;
    let cluster = shared.cluster.read().expect("cluster lock");
    let (keys, expires, stats) = (db.len(), db.keys_with_deadline(), db.stats);
    // A fresh allocator reading, only for the section that shows it.
    let memory = (section == "memory").then(|| db.memory_report());
    let policy = db.eviction().policy.name();
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
            w("redis_version", &crate::ident::REDIS_VERSION);
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
            w(
                "blocked_clients",
                &shared.stats.blocked_clients.load(Ordering::Relaxed),
            );
            w("watching_keys", &db.watched_keys());
        }
        "memory" => {
            use crate::memory::human;
            let m = memory.unwrap_or_default();
            w("# Memory", &"");
            w("used_memory", &m.used);
            w("used_memory_human", &human(m.used));
            w("used_memory_rss", &m.rss);
            w("used_memory_rss_human", &human(m.rss));
            w("used_memory_peak", &m.peak);
            w("used_memory_peak_human", &human(m.peak));
            w("used_memory_dataset", &m.dataset);
            w("allocator_allocated", &m.allocator.allocated);
            w("allocator_resident", &m.allocator.resident);
            // What maxmemory leaves out: the replication stream's buffers.
            w(info::MEM_NOT_COUNTED_FOR_EVICT, &db.not_counted_for_evict());
            w("maxmemory", &shared.maxmemory());
            w("maxmemory_human", &human(shared.maxmemory()));
            w("maxmemory_policy", &policy);
            w(
                "mem_fragmentation_ratio",
                &format!("{:.2}", m.fragmentation_ratio()),
            );
            w("mem_allocator", &m.allocator_name);
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
            w("evicted_keys", &stats.evicted);
            w(
                info::TIDECACHE_OOM_REJECTED,
                &shared.stats.oom_rejected.load(Ordering::Relaxed),
            );
            w("keyspace_hits", &stats.hits);
            w("keyspace_misses", &stats.misses);
            {
                let ps = shared.pubsub.lock().expect("pubsub lock");
                w(
                    "pubsub_channels",
                    &ps.names(crate::pubsub::Kind::Channel, None).len(),
                );
                w("pubsub_patterns", &ps.pattern_count());
                w(
                    "pubsubshard_channels",
                    &ps.names(crate::pubsub::Kind::Shard, None).len(),
                );
            }
            w("total_error_replies", &0);
            w(
                "protocol_errors",
                &shared.stats.protocol_errors.load(Ordering::Relaxed),
            );
        }
        "replication" => {
            w("# Replication", &"");
            super::repl::info(shared, out);
        }
        "persistence" => {
            w("# Persistence", &"");
            persistence_info(shared, &mut w);
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
        "cpu" => {
            let used = crate::cpu::used();
            w("# CPU", &"");
            w(
                info::USED_CPU_SYS,
                &format!("{:.6}", used.system.as_secs_f64()),
            );
            w(
                info::USED_CPU_USER,
                &format!("{:.6}", used.user.as_secs_f64()),
            );
            w("used_cpu_sys_children", &"0.000000");
            w("used_cpu_user_children", &"0.000000");
            w(
                info::TIDECACHE_CPU_LIMIT_MILLICORES,
                &cfg.cpu_limit_millicores,
            );
        }
        "migration" => super::migrate::info(shared, out),
        "commandstats" => {
            // One line per row called: an admin action under its full name
            // (`cmdstat_tidecache|topology|set`), as Redis names a
            // subcommand's (`cmdstat_client|id`); the metric
            // `tidecache_command_calls{command}` uses the same names.
            w("# Commandstats", &"");
            for (name, calls) in shared.call_counts() {
                w(&format!("cmdstat_{name}"), &format_args!("calls={calls}"));
            }
        }
        _ => {}
    }
}

fn all_specs() -> impl Iterator<Item = &'static Spec> {
    COMMANDS.iter()
}

/// The `COMMAND INFO` entry of one command, as Redis 7 shapes it.
fn info_entry(spec: &Spec) -> Reply {
    let (first, last, step) = spec.legacy_keys();
    let mut flags: Vec<Reply> = NAMES
        .iter()
        .filter(|(f, _)| spec.flags & f != 0)
        .map(|(_, n)| Reply::Simple(n))
        .collect();
    // Not a table flag: Redis derives it from the key specs, and so do we.
    if spec.movable_keys() {
        flags.push(Reply::Simple("movablekeys"));
    }
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Integer(spec.arity.into()),
        Reply::Set(flags),
        Reply::Integer(first.into()),
        Reply::Integer(last.into()),
        Reply::Integer(step.into()),
        Reply::Set(
            spec.acl_categories()
                .into_iter()
                .map(Reply::Simple)
                .collect(),
        ),
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

/// Resolves `name`, `container|sub` or `container|sub|action` to its
/// table entry.
fn find(name: &[u8]) -> Option<&'static Spec> {
    let mut words = name.split(|&b| b == b'|');
    let top = lookup(COMMANDS, words.next()?)?;
    words.try_fold(top, |spec, word| lookup(spec.subcommands, word))
}

pub fn command_count(_: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::Integer(COMMANDS.len() as i64)
}

pub fn command_info(_: &mut Ctx, args: &[Bytes]) -> Reply {
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

pub fn command_docs(_: &mut Ctx, args: &[Bytes]) -> Reply {
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

/// `COMMAND GETKEYS command [arg ...]`: the keys a command would touch,
/// found exactly as the dispatcher finds them for the slot check.
/// Cluster clients ask this for `movablekeys` commands.
pub fn command_getkeys(_: &mut Ctx, args: &[Bytes]) -> Reply {
    let target = &args[2..];
    let Some(top) = lookup(COMMANDS, &target[0]) else {
        return Reply::error("ERR Invalid command specified");
    };
    let spec = match target.get(1) {
        Some(sub) if !top.subcommands.is_empty() => match lookup(top.subcommands, sub) {
            Some(spec) => spec,
            None => return Reply::error("ERR Invalid command specified"),
        },
        _ => top,
    };
    if spec.key_spec() == KeySpec::None {
        return Reply::error("ERR The command has no key arguments");
    }
    let argc = target.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
        return Reply::error("ERR Invalid number of arguments specified for command");
    }
    let keys: Vec<Reply> = super::key_args(spec, target)
        .map(|k| Reply::Bulk(k.clone()))
        .collect();
    if keys.is_empty() {
        return Reply::error("ERR Invalid arguments specified for command");
    }
    Reply::Array(keys)
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]`:
/// every command's full name, subcommands (`config|get`, and the rows of
/// a nested container: `tidecache|import|begin`) included, as Redis lists
/// them (COMMAND COUNT, by contrast, counts only top-level commands).
pub fn command_list(_: &mut Ctx, args: &[Bytes]) -> Reply {
    use super::util::{SYNTAX, eq};
    let keep: Box<dyn Fn(&Spec) -> bool> = match &args[2..] {
        [] => Box::new(|_| true),
        [by, kind, arg] if eq(by, "filterby") => {
            if eq(kind, "module") {
                // There are no modules: no command belongs to any.
                Box::new(|_| false)
            } else if eq(kind, "aclcat") {
                // Categories are named without their '@', case-insensitively;
                // an unknown one matches nothing.
                let category = arg.to_ascii_lowercase();
                Box::new(move |s| {
                    s.acl_categories()
                        .iter()
                        .any(|c| c.as_bytes().strip_prefix(b"@") == Some(&category[..]))
                })
            } else if eq(kind, "pattern") {
                // Names are lowercase, so a lowercased pattern matches them
                // case-insensitively, as Redis matches.
                let pattern = arg.to_ascii_lowercase();
                Box::new(move |s| crate::glob::matches(&pattern, s.name.as_bytes()))
            } else {
                return Reply::error(SYNTAX);
            }
        }
        _ => return Reply::error(SYNTAX),
    };
    let names = all_specs()
        .flat_map(Spec::rows)
        .filter(|s| keep(s))
        .map(|s| Reply::text(s.name))
        .collect();
    Reply::Array(names)
}

/// `COMMAND` alone lists every command's info; `X HELP` lists X's subcommands.
pub fn container_help(_: &mut Ctx, args: &[Bytes]) -> Reply {
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
pub fn time(_: &mut Ctx, _: &[Bytes]) -> Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::text(&now.as_secs().to_string()),
        Reply::text(&now.subsec_micros().to_string()),
    ])
}

/// `CONFIG RESETSTAT`: zeroes the counters INFO's stats section reports and
/// the per-command call counts (Redis's commandstats), as Redis does; gauges
/// (connected and blocked clients, memory) stay. The Prometheus counters
/// read the same numbers, and scrapers take the drop as a counter reset.
pub fn config_resetstat(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let stats = &cx.shared.stats;
    for counter in [
        &stats.connections_received,
        &stats.rejected_connections,
        &stats.commands_processed,
        &stats.protocol_errors,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    cx.db.stats = crate::db::Stats::default();
    cx.db.traffic.reset();
    cx.shared.reset_call_counts();
    // Redis counts a call once it has run, so after a reset its
    // commandstats show this RESETSTAT; the dispatcher counted it before it
    // ran, and the reset just took that back.
    if let Some(spec) = find(b"config|resetstat") {
        cx.shared.count_call(spec.id());
    }
    Reply::OK
}

/// `SAVE`: the RDB file written while the server waits (redis-server's
/// behaviour; `BGSAVE` is the one to use on a live node).
pub fn save(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    if let Err(e) = standalone_or_admin(cx, args) {
        return e;
    }
    match cx.shared.saves.save(cx.db) {
        Ok(_) => Reply::OK,
        Err(e) if e.to_string().contains("in progress") => {
            Reply::error("ERR Background save already in progress")
        }
        Err(e) => Reply::error(format!("ERR saving the RDB file: {e}")),
    }
}

/// `BGSAVE [SCHEDULE]`: the RDB file written from a thread of its own,
/// through a fork-less capture, while clients are served.
pub fn bgsave(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    use crate::snapshot::save::Busy;
    if let Err(e) = standalone_or_admin(cx, args) {
        return e;
    }
    let schedule = match args.get(1) {
        None => false,
        Some(a) if args.len() == 2 && super::util::eq(a, "SCHEDULE") => true,
        Some(_) => return Reply::error(super::util::SYNTAX),
    };
    match cx.shared.saves.begin_background(schedule) {
        Err(Busy::Running) => Reply::error("ERR Background save already in progress"),
        Err(Busy::Scheduled) => Reply::Simple("Background saving scheduled"),
        Ok(()) => {
            let saves = cx.shared.saves.clone();
            let locker = cx.shared.locker();
            let spawned = std::thread::Builder::new()
                .name("tidecache-bgsave".into())
                // At the clients' priority: the serializing runs on their
                // runtime in bounded steps anyway (see `snapshot`); this
                // thread writes, and a niced writer under load only makes
                // the snapshot, and the memory it holds, last longer.
                .spawn(move || saves.run_background(&locker, crate::state::unix_secs));
            match spawned {
                Ok(_) => Reply::Simple("Background saving started"),
                Err(e) => {
                    cx.shared
                        .saves
                        .state
                        .lock()
                        .expect("save state lock")
                        .running_since = None;
                    Reply::error(format!("ERR cannot start the background save: {e}"))
                }
            }
        }
    }
}

/// `SAVE` and `BGSAVE` are everyone's on a standalone node, as on
/// redis-server; under the operator, where snapshots go to object storage
/// and a blocking `SAVE` would stall a shard, only the admin user's.
fn standalone_or_admin(cx: &Ctx, args: &[Bytes]) -> Result<(), Reply> {
    if cx.shared.cluster_mode && cx.client.user != Some(crate::client::User::Admin) {
        return Err(Reply::error(format!(
            "NOPERM User {} has no permissions to run the '{}' command",
            cx.client.user.map_or("default", crate::client::User::name),
            String::from_utf8_lossy(&args[0]).to_lowercase()
        )));
    }
    Ok(())
}

/// `LASTSAVE`: Unix time of the last successful save.
pub fn lastsave(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    Reply::Integer(cx.shared.saves.state().last_save as i64)
}

/// INFO's persistence section, with redis-server's field names.
fn persistence_info(shared: &Shared, w: &mut dyn FnMut(&str, &dyn std::fmt::Display)) {
    let s = shared.saves.state();
    w("loading", &0);
    w("async_loading", &0);
    w(
        "rdb_bgsave_in_progress",
        &i32::from(s.running_since.is_some()),
    );
    w("rdb_last_save_time", &s.last_save);
    w(
        "rdb_last_bgsave_status",
        &if s.last_bgsave_ok { "ok" } else { "err" },
    );
    w("rdb_last_bgsave_time_sec", &s.last_bgsave_secs);
    w(
        "rdb_current_bgsave_time_sec",
        &s.running_since.map_or(-1, |t| t.elapsed().as_secs() as i64),
    );
    w("rdb_saves", &s.saves);
    if let Some(last) = &s.last {
        w("rdb_last_save_keys", &last.keys);
        w("rdb_last_save_bytes", &last.bytes);
        w("rdb_last_save_ms", &last.took.as_millis());
    }
    w("aof_enabled", &0);
    // The snapshot store's last snapshot and restore (`TIDECACHE SNAPSHOT`/`RESTORE`).
    for (prefix, job) in [
        ("snapshot", &shared.jobs.snapshot),
        ("restore", &shared.jobs.restore),
    ] {
        let job = job.lock().expect("job lock").clone();
        let Some(job) = job else {
            w(&format!("tidecache_{prefix}_phase"), &"none");
            continue;
        };
        for (k, v) in job.fields() {
            if k != "objects" && k != "slots" {
                w(&format!("tidecache_{prefix}_{k}"), &v);
            }
        }
    }
}
