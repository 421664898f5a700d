//! Command-line flags, named as Redis names its directives where they
//! overlap, each also settable from a `TIDECACHE_*` environment variable.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "cache-node",
    version,
    about = "Tidecache data node: a Redis-compatible in-memory cache"
)]
pub struct Config {
    /// TCP port for clients.
    #[arg(long, env = "TIDECACHE_PORT", default_value_t = 6379)]
    pub port: u16,

    /// Address to listen on for clients.
    #[arg(long, env = "TIDECACHE_BIND", default_value = "0.0.0.0")]
    pub bind: String,

    /// Password of the `default` user. Without one, only loopback clients are
    /// accepted (protected mode).
    #[arg(long, env = "TIDECACHE_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,

    /// File holding the `default` user's password (e.g. a mounted Secret).
    #[arg(
        long,
        env = "TIDECACHE_REQUIREPASS_FILE",
        conflicts_with = "requirepass"
    )]
    pub requirepass_file: Option<PathBuf>,

    /// Password of the `tidecache-admin` user, the only one allowed to run
    /// `TIDECACHE` admin commands. Without one, admin commands are disabled.
    #[arg(long, env = "TIDECACHE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// File holding the admin password.
    #[arg(
        long,
        env = "TIDECACHE_ADMIN_PASSWORD_FILE",
        conflicts_with = "admin_password"
    )]
    pub admin_password_file: Option<PathBuf>,

    /// Refuse non-loopback clients while no password is set (Redis's protected mode).
    #[arg(long, env = "TIDECACHE_PROTECTED_MODE", default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub protected_mode: bool,

    /// Memory limit, e.g. `100mb`, `2gb` (0 = no limit). Used memory is what
    /// the allocator has handed out, everything included, as in Redis.
    #[arg(long, env = "TIDECACHE_MAXMEMORY", default_value = "0", value_parser = parse_size)]
    pub maxmemory: u64,

    /// What to do at the memory limit: `noeviction` refuses writes that may
    /// grow memory with `OOM`; `allkeys-*` evict any key, `volatile-*` only
    /// keys with a TTL, by least recent use (`lru`), least frequent use
    /// (`lfu`), at random, or soonest deadline (`volatile-ttl`);
    /// `volatile-first` evicts keys with a TTL, soonest deadline first, then
    /// the least recently used of the others. The start-up value: CONFIG SET
    /// changes it.
    #[arg(long, env = "TIDECACHE_MAXMEMORY_POLICY", default_value = "noeviction", value_parser = crate::evict::Policy::NAMES, ignore_case = true)]
    pub maxmemory_policy: String,

    /// Keys sampled per eviction (1 to 64): more is closer to true LRU/LFU,
    /// and slower.
    #[arg(long, env = "TIDECACHE_MAXMEMORY_SAMPLES", default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub maxmemory_samples: u8,

    /// How slowly the LFU counter grows: it takes about this many times more
    /// accesses for each step (Redis's `lfu-log-factor`).
    #[arg(long, env = "TIDECACHE_LFU_LOG_FACTOR", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=i32::MAX as i64))]
    pub lfu_log_factor: u32,

    /// Minutes after which an unused key's LFU counter drops one step (0 =
    /// never; Redis's `lfu-decay-time`).
    #[arg(long, env = "TIDECACHE_LFU_DECAY_TIME", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=i32::MAX as i64))]
    pub lfu_decay_time: u32,

    /// Run under the operator: serve nothing until a topology is installed.
    #[arg(long, env = "TIDECACHE_CLUSTER_ENABLED", default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub cluster_enabled: bool,

    /// Address other nodes and clients use to reach this node (in MOVED and
    /// CLUSTER replies). Defaults to the bind address, or 127.0.0.1.
    #[arg(long, env = "TIDECACHE_CLUSTER_ANNOUNCE_IP")]
    pub cluster_announce_ip: Option<String>,

    /// Port announced to clients; defaults to `--port`.
    #[arg(long, env = "TIDECACHE_CLUSTER_ANNOUNCE_PORT")]
    pub cluster_announce_port: Option<u16>,

    /// A stable name (the pod name under the operator) from which the node id
    /// is derived. Without it the node picks a random id.
    #[arg(long, env = "TIDECACHE_NODE_NAME")]
    pub node_name: Option<String>,

    /// Port of the HTTP endpoints (`/livez`, `/readyz`, `/metrics`); 0 turns them off.
    #[arg(long, env = "TIDECACHE_HTTP_PORT", default_value_t = 0)]
    pub http_port: u16,

    /// Address for the HTTP endpoints; defaults to `--bind`.
    #[arg(long, env = "TIDECACHE_HTTP_BIND")]
    pub http_bind: Option<String>,

    /// Largest bulk string a client may send.
    #[arg(long, env = "TIDECACHE_PROTO_MAX_BULK_LEN", default_value = "512mb", value_parser = parse_size)]
    pub proto_max_bulk_len: u64,

    /// Most unparsed input buffered for one client before it is disconnected.
    #[arg(long, env = "TIDECACHE_CLIENT_QUERY_BUFFER_LIMIT", default_value = "1gb", value_parser = parse_size)]
    pub client_query_buffer_limit: u64,

    /// Most simultaneous client connections.
    #[arg(long, env = "TIDECACHE_MAXCLIENTS", default_value_t = 10000)]
    pub maxclients: usize,

    /// Close a client after this many seconds without input (Redis's
    /// `timeout`); 0 never does. Subscribers and clients blocked in a command
    /// are never closed for it. The start-up value: CONFIG SET changes it.
    #[arg(long, env = "TIDECACHE_TIMEOUT", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i32::MAX as i64))]
    pub timeout: u32,

    /// Threads that serve connections (Redis's `io-threads`): each reads,
    /// parses and writes for its connections in parallel; commands still
    /// run one at a time under the keyspace lock. 0 means one per core.
    /// On a 2-core machine shared with the load generator, 1 thread beat 2
    /// on pipelined SETs (docs/performance.md): measure for your pods.
    #[arg(long, env = "TIDECACHE_IO_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub io_threads: u16,

    /// Seconds to let clients finish on SIGTERM before closing their connections.
    #[arg(long, env = "TIDECACHE_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// TLS port for clients (Redis's `tls-port`), beside `--port`; without
    /// it, no TLS. `0` picks a free port, as `--port 0` does. With TLS on,
    /// `--port 0` turns the plain port off (TLS only), as in Redis.
    #[arg(long, env = "TIDECACHE_TLS_PORT")]
    pub tls_port: Option<u16>,

    /// The server's certificate chain (PEM), leaf first.
    #[arg(long, env = "TIDECACHE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// The server's private key (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "TIDECACHE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Directory of the RDB file (Redis's `dir`): `SAVE` and `BGSAVE` write
    /// it there, and a standalone node loads it at start-up.
    #[arg(long, env = "TIDECACHE_DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Name of the RDB file in `--dir` (Redis's `dbfilename`).
    #[arg(long, env = "TIDECACHE_DBFILENAME", default_value = "dump.rdb", value_parser = parse_file_name)]
    pub dbfilename: String,

    /// Where snapshots go: `s3://bucket[/prefix]` (S3 or an S3-compatible
    /// server, see `--snapshot-endpoint`), or a local directory. Defaults
    /// to `<dir>/snapshots`.
    #[arg(long, env = "TIDECACHE_SNAPSHOT_STORE")]
    pub snapshot_store: Option<String>,

    /// An S3-compatible endpoint, e.g. `http://garage:3900` (AWS's without).
    #[arg(long, env = "TIDECACHE_SNAPSHOT_ENDPOINT")]
    pub snapshot_endpoint: Option<String>,

    /// The S3 region requests are signed for.
    #[arg(long, env = "TIDECACHE_SNAPSHOT_REGION", default_value = "us-east-1")]
    pub snapshot_region: String,

    /// Path-style S3 requests (`endpoint/bucket/key`), which S3-compatible
    /// servers want; `no` uses virtual-hosted style, as AWS prefers.
    #[arg(long, env = "TIDECACHE_SNAPSHOT_PATH_STYLE", default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub snapshot_path_style: bool,

    /// The S3 access key id (from a Secret, through the environment).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub snapshot_access_key_id: Option<String>,

    /// The S3 secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub snapshot_secret_access_key: Option<String>,

    /// Compress snapshot objects with zstd at this level (1-19); 0 writes
    /// plain RDB, which redis-server loads as it is.
    #[arg(long, env = "TIDECACHE_SNAPSHOT_ZSTD_LEVEL", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub snapshot_zstd_level: i32,

    /// A file holding the AES-256-GCM key snapshot objects are encrypted
    /// with (32 bytes, 64 hex digits or base64; e.g. a mounted Secret).
    /// Restores need it to read encrypted objects.
    #[arg(long, env = "TIDECACHE_SNAPSHOT_ENCRYPTION_KEY_FILE")]
    pub snapshot_encryption_key_file: Option<PathBuf>,

    /// CA certificates (PEM bundle) that client certificates must chain to.
    #[arg(long, env = "TIDECACHE_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,

    /// Client certificates: `yes` requires one signed by the CA, `optional`
    /// verifies those that clients present, `no` asks for none. Defaults to
    /// `yes` with `--tls-ca-cert-file`, `no` without, as in Redis.
    #[arg(long, env = "TIDECACHE_TLS_AUTH_CLIENTS", value_parser = parse_auth_clients)]
    pub tls_auth_clients: Option<AuthClients>,

    /// Bytes of the replication stream kept for replicas that reconnect
    /// after a short break (Redis's `repl-backlog-size`): a replica that
    /// fell further behind does a full sync.
    #[arg(long, env = "TIDECACHE_REPL_BACKLOG_SIZE", default_value = "16mb", value_parser = parse_size)]
    pub repl_backlog_size: u64,

    /// The most bytes a full sync may hold for its replica on the primary
    /// (Redis's `client-output-buffer-limit replica` hard limit). Writes to
    /// slots the sync's copy has not reached yet copy those slots into this
    /// buffer first; a replica too slow to take them would otherwise grow
    /// it up to a second copy of the keyspace. Past the limit the sync is
    /// abandoned and the replica starts over. 0 for no limit.
    #[arg(long, env = "TIDECACHE_REPL_SYNC_BUFFER_LIMIT", default_value = "256mb", value_parser = parse_size)]
    pub repl_sync_buffer_limit: u64,

    /// Milliseconds a primary with replicas keeps taking writes after it
    /// last heard from any of them or from the operator. Past it the
    /// primary refuses writes: it may have been partitioned away while a
    /// replica was promoted, and two primaries must never take writes for
    /// the same slots. A promoted replica waits as long before its first
    /// write. 0 turns the lease off.
    #[arg(long, env = "TIDECACHE_WRITE_LEASE_MS", default_value_t = 3000)]
    pub write_lease_ms: u64,

    /// The CPU the node may use, in millicores (its pod's CPU limit; the
    /// operator sets it). Reported in `INFO cpu` as
    /// `tidecache_cpu_limit_millicores`, where the autoscaler reads it. 0:
    /// unknown.
    #[arg(long, env = "TIDECACHE_CPU_LIMIT_MILLICORES", default_value_t = 0)]
    pub cpu_limit_millicores: u64,

    /// Log format: `text` or `json`.
    #[arg(long, env = "TIDECACHE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// A file name without a directory part, as Redis requires of `dbfilename`.
fn parse_file_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('/') || s == "." || s == ".." {
        return Err("dbfilename can't be a path, just a filename".into());
    }
    Ok(s.to_owned())
}

impl Config {
    /// The eviction settings the node starts with.
    pub fn eviction(&self) -> crate::evict::Settings {
        use crate::evict::{MAX_SAMPLES, Policy, Settings};
        Settings {
            policy: Policy::parse(&self.maxmemory_policy).unwrap_or_default(),
            samples: usize::from(self.maxmemory_samples).clamp(1, MAX_SAMPLES),
            lfu_log_factor: self.lfu_log_factor,
            lfu_decay_time: self.lfu_decay_time,
        }
    }

    /// Reads password files and checks combinations that clap cannot.
    pub fn resolve(mut self) -> anyhow::Result<Self> {
        if let Some(path) = self.requirepass_file.take() {
            self.requirepass = Some(read_secret(&path)?);
        }
        if let Some(path) = self.admin_password_file.take() {
            self.admin_password = Some(read_secret(&path)?);
        }
        if self.cluster_enabled && (self.requirepass.is_none() || self.admin_password.is_none()) {
            anyhow::bail!(
                "--cluster-enabled yes needs --requirepass(-file) and --admin-password(-file): auth is always on under the operator"
            );
        }
        self.check_tls()?;
        Ok(self)
    }

    /// TLS flags only make sense together; catching a forgotten one here
    /// beats a node that quietly serves plain text only.
    fn check_tls(&self) -> anyhow::Result<()> {
        match self.tls_port {
            Some(_) => anyhow::ensure!(
                self.tls_cert_file.is_some() && self.tls_key_file.is_some(),
                "--tls-port needs --tls-cert-file and --tls-key-file"
            ),
            None => anyhow::ensure!(
                self.tls_cert_file.is_none()
                    && self.tls_key_file.is_none()
                    && self.tls_ca_cert_file.is_none()
                    && self.tls_auth_clients.is_none(),
                "--tls-cert-file, --tls-key-file, --tls-ca-cert-file and --tls-auth-clients need --tls-port"
            ),
        }
        if matches!(
            self.tls_auth_clients,
            Some(AuthClients::Yes | AuthClients::Optional)
        ) {
            anyhow::ensure!(
                self.tls_ca_cert_file.is_some(),
                "--tls-auth-clients yes or optional needs --tls-ca-cert-file to verify client certificates with"
            );
        }
        Ok(())
    }

    /// `--tls-auth-clients` in force: Redis's default is `yes`, which needs
    /// a CA, so without one it is `no`.
    pub fn auth_clients(&self) -> AuthClients {
        self.tls_auth_clients
            .unwrap_or(match self.tls_ca_cert_file {
                Some(_) => AuthClients::Yes,
                None => AuthClients::No,
            })
    }

    pub fn announce_ip(&self) -> String {
        self.cluster_announce_ip
            .clone()
            .unwrap_or_else(|| match self.bind.as_str() {
                "0.0.0.0" | "::" | "*" => "127.0.0.1".into(),
                other => other.into(),
            })
    }
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let secret = raw.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
    Ok(secret)
}

/// Redis's boolean directive values.
pub fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, got {s:?}")),
    }
}

/// Whether TLS clients must present a certificate (Redis's `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthClients {
    /// No certificate is asked for.
    No,
    /// A certificate signed by the CA is required.
    Yes,
    /// Clients without one are served; one that is presented must verify.
    Optional,
}

pub fn parse_auth_clients(s: &str) -> Result<AuthClients, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(AuthClients::Yes),
        "no" => Ok(AuthClients::No),
        "optional" => Ok(AuthClients::Optional),
        _ => Err(format!("expected yes, no or optional, got {s:?}")),
    }
}

/// Memory sizes as Redis reads them: `1k` = 1000, `1kb` = 1024, and so on
/// for m/mb and g/gb; a bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid memory size {s:?}"))?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "invalid memory size {s:?}: unit must be k, kb, m, mb, g or gb"
            ));
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("memory size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_redis() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("100mb"), Ok(100 * 1024 * 1024));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("2k"), Ok(2000));
        assert!(parse_size("12xb").is_err());
        assert!(parse_size("mb").is_err());
        assert!(parse_size("99999999999999gb").is_err());
    }

    #[test]
    fn flags_use_redis_names() {
        let c = Config::try_parse_from([
            "cache-node",
            "--port",
            "7000",
            "--maxmemory",
            "1mb",
            "--cluster-enabled",
            "no",
        ])
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.maxmemory, 1 << 20);
        assert!(Config::try_parse_from(["cache-node", "--maxmemory-policy", "bogus"]).is_err());
        assert_eq!(c.maxmemory_policy, "noeviction");
        assert_eq!(c.maxmemory_samples, 5);
        assert_eq!(c.io_threads, 0, "one per core");
        let c = Config::try_parse_from(["cache-node", "--io-threads", "1"]).unwrap();
        assert_eq!(c.io_threads, 1);
        assert!(Config::try_parse_from(["cache-node", "--io-threads", "300"]).is_err());
        for name in crate::evict::Policy::NAMES {
            let c = Config::try_parse_from(["cache-node", "--maxmemory-policy", name]).unwrap();
            assert_eq!(c.eviction().policy.name(), name);
        }
        let c = Config::try_parse_from([
            "cache-node",
            "--maxmemory-samples",
            "64",
            "--lfu-log-factor",
            "0",
            "--lfu-decay-time",
            "7",
        ])
        .unwrap();
        let s = c.eviction();
        assert_eq!((s.samples, s.lfu_log_factor, s.lfu_decay_time), (64, 0, 7));
        // Any case, as in redis.conf.
        let c =
            Config::try_parse_from(["cache-node", "--maxmemory-policy", "AllKeys-LFU"]).unwrap();
        let s = c.eviction();
        assert_eq!(s.policy, crate::evict::Policy::AllKeysLfu);
        for bad in ["0", "65", "-1", "five"] {
            assert!(
                Config::try_parse_from(["cache-node", "--maxmemory-samples", bad]).is_err(),
                "{bad}"
            );
        }
        // `timeout`: seconds, 0 (the default) to 2^31 - 1, as Redis takes it.
        assert_eq!(c.timeout, 0);
        let c = Config::try_parse_from(["cache-node", "--timeout", "2147483647"]).unwrap();
        assert_eq!(c.timeout, i32::MAX as u32);
        for bad in ["-1", "2147483648", "1.5", "1s"] {
            assert!(
                Config::try_parse_from(["cache-node", "--timeout", bad]).is_err(),
                "{bad}"
            );
        }
        let c = Config::try_parse_from(["cache-node", "--cluster-enabled", "yes"]).unwrap();
        assert!(
            c.resolve().is_err(),
            "cluster mode without passwords is refused"
        );
    }

    fn resolved(argv: &[&str]) -> anyhow::Result<Config> {
        Config::try_parse_from(std::iter::once("cache-node").chain(argv.iter().copied()))?.resolve()
    }

    #[test]
    fn tls_flags_go_together() {
        let pair = ["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"];
        let c = resolved(&[&["--tls-port", "6380"][..], &pair].concat()).unwrap();
        assert_eq!(c.tls_port, Some(6380));
        assert_eq!(
            c.auth_clients(),
            AuthClients::No,
            "no CA: nothing to verify with"
        );

        let err = resolved(&["--tls-port", "6380", "--tls-cert-file", "c.pem"]).unwrap_err();
        assert!(err.to_string().contains("--tls-key-file"), "{err}");
        let err = resolved(&pair).unwrap_err();
        assert!(err.to_string().contains("need --tls-port"), "{err}");

        let with_ca = [
            &["--tls-port", "0", "--tls-ca-cert-file", "ca.pem"][..],
            &pair,
        ]
        .concat();
        assert_eq!(resolved(&with_ca).unwrap().auth_clients(), AuthClients::Yes);
        for (value, expected) in [
            ("optional", AuthClients::Optional),
            ("NO", AuthClients::No),
            ("yes", AuthClients::Yes),
        ] {
            let argv = [&with_ca[..], &["--tls-auth-clients", value]].concat();
            assert_eq!(resolved(&argv).unwrap().auth_clients(), expected);
        }
        let argv = [&with_ca[..], &["--tls-auth-clients", "maybe"]].concat();
        assert!(resolved(&argv).is_err());
        let argv = [
            &["--tls-port", "0", "--tls-auth-clients", "optional"][..],
            &pair,
        ]
        .concat();
        let err = resolved(&argv).unwrap_err();
        assert!(err.to_string().contains("--tls-ca-cert-file"), "{err}");
    }
}
