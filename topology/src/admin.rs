//! The admin client: how the operator talks to nodes.
//!
//! Nodes accept topology changes only from the admin user, authenticated on
//! the connection; client applications never hold that password.

use std::time::Duration;

use redis::{AsyncCommands as _, ConnectionAddr, IntoConnectionInfo as _, RedisConnectionInfo};

use crate::document::Topology;
pub use crate::protocol::MigrationStatus;
use crate::protocol::{ImportState, Request, info};

/// The ACL user that may run `TIDECACHE` admin commands on a node.
pub const ADMIN_USER: &str = "tidecache-admin";

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot reach node {addr}: {source}")]
    Connect {
        addr: String,
        source: redis::RedisError,
    },
    #[error("node {addr} refused the command: {source}")]
    Command {
        addr: String,
        source: redis::RedisError,
    },
    #[error("node {addr} returned an invalid reply: {detail}")]
    BadReply { addr: String, detail: String },
}

impl AdminError {
    /// A node that already holds a newer epoch answers `STALE`; the caller
    /// then knows its own view is behind and must not retry blindly.
    pub fn is_stale(&self) -> bool {
        matches!(self, AdminError::Command { source, .. } if source.code() == Some("STALE"))
    }

    /// Whether the node answered (an error reply) rather than the
    /// connection failing: after a failed connection the caller cannot know
    /// whether its command ran.
    pub fn is_reply(&self) -> bool {
        matches!(self, AdminError::Command { source, .. } if source.code().is_some())
    }
}

/// An order about a primary's write lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOrder {
    Renew,
    Waive,
}

/// A node's replication state, from INFO replication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replication {
    pub primary: bool,
    /// The history the keyspace is at (a primary's own, a replica's
    /// primary's), and the offset in it.
    pub replid: String,
    pub offset: u64,
    /// A replica: its link to the primary is up.
    pub link_up: bool,
    /// A replica: a full sync is replacing its keyspace.
    pub syncing: bool,
    /// A primary's lease clock when it answered (`tidecache_lease_clock_ms`;
    /// `None` from a node too old to report it): what a renewal sent after
    /// this answer renews the lease to.
    pub lease_clock_ms: Option<u64>,
}

impl Replication {
    pub fn parse(info: &str) -> Self {
        let field = |name: &str| info_field(info, name).unwrap_or_default().to_owned();
        let primary = field(info::ROLE) == info::PRIMARY;
        Replication {
            primary,
            replid: field(info::MASTER_REPLID),
            offset: field(info::MASTER_REPL_OFFSET).parse().unwrap_or(0),
            link_up: field(info::MASTER_LINK_STATUS) == info::LINK_UP,
            syncing: field(info::MASTER_SYNC_IN_PROGRESS) == "1",
            lease_clock_ms: field(info::TIDECACHE_LEASE_CLOCK_MS).parse().ok(),
        }
    }

    /// A replica whose keyspace is a whole copy of its primary's history.
    pub fn is_synced_replica(&self) -> bool {
        !self.primary
            && !self.syncing
            && !self.replid.is_empty()
            && !self.replid.bytes().all(|b| b == b'0')
    }
}

/// One slot as `TIDECACHE SLOTSTATS LOAD` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotStat {
    pub slot: u16,
    pub keys: u64,
    /// Estimated bytes (records, deadline index, the slot's table).
    pub bytes: u64,
    /// Commands on the slot over the node's last 10 to 20 seconds.
    pub calls: u64,
    /// Their handlers' time over the same span, in microseconds.
    pub cpu_usec: u64,
}

/// What a node uses, from INFO memory, stats and cpu: the autoscaler's
/// signals. Counters are totals since the node started; the operator
/// takes their rates between two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// The memory `maxmemory` limits: the allocator's count less the
    /// replication buffers (`used_memory - mem_not_counted_for_evict`).
    pub used_memory: u64,
    pub maxmemory: u64,
    pub commands: u64,
    pub evicted_keys: u64,
    pub oom_rejected: u64,
    /// CPU seconds, kernel and user together.
    pub cpu_seconds: f64,
    /// The CPU it may use (0: unknown).
    pub cpu_limit_millicores: u64,
}

impl Usage {
    pub fn parse(text: &str) -> Self {
        let field = |name: &str| info_field(text, name);
        let number = |name: &str| -> u64 { field(name).and_then(|v| v.parse().ok()).unwrap_or(0) };
        let seconds = |name: &str| {
            field(name)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Usage {
            used_memory: number(info::USED_MEMORY)
                .saturating_sub(number(info::MEM_NOT_COUNTED_FOR_EVICT)),
            maxmemory: number(info::MAXMEMORY),
            commands: number(info::TOTAL_COMMANDS_PROCESSED),
            evicted_keys: number(info::EVICTED_KEYS),
            oom_rejected: number(info::TIDECACHE_OOM_REJECTED),
            cpu_seconds: seconds(info::USED_CPU_SYS) + seconds(info::USED_CPU_USER),
            cpu_limit_millicores: number(info::TIDECACHE_CPU_LIMIT_MILLICORES),
        }
    }
}

/// The value of field `name` in INFO text.
fn info_field<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// An authenticated admin connection to one node.
pub struct AdminClient {
    addr: String,
    conn: redis::aio::MultiplexedConnection,
}

impl AdminClient {
    /// Connects and authenticates as [`ADMIN_USER`], giving up after `timeout`
    /// for the connection and for each reply.
    pub async fn connect(
        host: &str,
        port: u16,
        password: &str,
        timeout: Duration,
    ) -> Result<Self, AdminError> {
        let addr = format!("{host}:{port}");
        let info = ConnectionAddr::Tcp(host.to_owned(), port)
            .into_connection_info()
            .map_err(|source| AdminError::Connect {
                addr: addr.clone(),
                source,
            })?
            .set_redis_settings(
                RedisConnectionInfo::default()
                    .set_username(ADMIN_USER)
                    .set_password(password)
                    .set_skip_set_lib_name(),
            );
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let client = redis::Client::open(info).map_err(|source| AdminError::Connect {
            addr: addr.clone(),
            source,
        })?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|source| AdminError::Connect {
                addr: addr.clone(),
                source,
            })?;
        Ok(Self { addr, conn })
    }

    /// Installs `topology` on the node. Idempotent for the same document.
    pub async fn install_topology(&mut self, topology: &Topology) -> Result<(), AdminError> {
        let document = topology.to_json();
        self.send(&Request::TopologySet {
            document: document.as_bytes(),
        })
        .await
    }

    /// The document the node runs with, if any.
    pub async fn topology(&mut self) -> Result<Option<Topology>, AdminError> {
        let json: Option<Vec<u8>> = self.send(&Request::TopologyGet).await?;
        json.map(|j| {
            Topology::from_json(&j).map_err(|e| AdminError::BadReply {
                addr: self.addr.clone(),
                detail: e.to_string(),
            })
        })
        .transpose()
    }

    /// The epoch of the node's document (0 when it has none).
    pub async fn epoch(&mut self) -> Result<u64, AdminError> {
        self.send(&Request::TopologyEpoch).await
    }

    /// What every slot the node holds or recently served weighs: keys and
    /// estimated bytes, and the commands and handler time of its last 10 to
    /// 20 seconds (`TIDECACHE SLOTSTATS LOAD`), what the rebalance planner
    /// balances. A node that predates the load column is asked for the
    /// bytes alone (`TIDECACHE SLOTSTATS`), its traffic reported as none.
    pub async fn slot_stats(&mut self) -> Result<Vec<SlotStat>, AdminError> {
        let (flat, width): (Vec<u64>, usize) = match self
            .send(&Request::SlotStats { load: true })
            .await
        {
            Ok(flat) => (flat, crate::protocol::SLOT_STATS_LOAD_WIDTH),
            Err(e) if e.is_reply() => (self.send(&Request::SlotStats { load: false }).await?, 3),
            Err(e) => return Err(e),
        };
        Ok(flat
            .chunks_exact(width)
            .filter_map(|c| {
                Some(SlotStat {
                    slot: u16::try_from(c[0]).ok()?,
                    keys: c[1],
                    bytes: c[2],
                    calls: c.get(3).copied().unwrap_or(0),
                    cpu_usec: c.get(4).copied().unwrap_or(0),
                })
            })
            .collect())
    }

    /// Starts migration `id` of `ranges` to the primary at `target` under
    /// `epoch`. A migration with this id already running is not an error
    /// (a restarted operator asks again).
    pub async fn migrate_start(
        &mut self,
        id: &str,
        target: (&str, u16),
        epoch: u64,
        ranges: &[crate::SlotRange],
    ) -> Result<(), AdminError> {
        let started = self
            .send::<()>(&Request::MigrateStart {
                id,
                host: target.0,
                port: target.1,
                epoch,
                ranges: ranges.to_vec(),
            })
            .await;
        match started {
            Err(AdminError::Command { source, .. })
                if source.code() == Some("BUSY")
                    && source.detail().is_some_and(|d| {
                        d.contains(&format!("migration {id} is already running"))
                    }) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// The state and error of migration `id` on this source; `None` when
    /// the node does not know it (it restarted).
    pub async fn migrate_status(
        &mut self,
        id: &str,
    ) -> Result<Option<MigrationStatus>, AdminError> {
        let status = self
            .send::<std::collections::HashMap<String, String>>(&Request::MigrateStatus {
                id: Some(id),
            })
            .await;
        match status {
            Ok(fields) => MigrationStatus::from_fields(|k| fields.get(k).map(String::as_str))
                .map(Some)
                .map_err(|e| self.bad_reply(e)),
            Err(AdminError::Command { source, .. })
                if source
                    .detail()
                    .is_some_and(|d| d.contains("no such migration")) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// How import `id` stands on this target.
    pub async fn import_status(&mut self, id: &str) -> Result<ImportState, AdminError> {
        let state: String = self.send(&Request::ImportStatus { id }).await?;
        state.parse().map_err(|e| self.bad_reply(e))
    }

    /// What the node says of its replication (INFO replication).
    pub async fn replication(&mut self) -> Result<Replication, AdminError> {
        let text: String = self.call(redis::cmd("INFO").arg("replication")).await?;
        Ok(Replication::parse(&text))
    }

    /// Its replication and its usage, from one INFO call.
    pub async fn replication_and_usage(&mut self) -> Result<(Replication, Usage), AdminError> {
        let text: String = self
            .call(
                redis::cmd("INFO")
                    .arg("replication")
                    .arg("memory")
                    .arg("stats")
                    .arg("cpu"),
            )
            .await?;
        Ok((Replication::parse(&text), Usage::parse(&text)))
    }

    /// `TIDECACHE LEASE RENEW <epoch> <clock>`: keeps a primary's write
    /// lease up to `clock`, the node's lease clock read before (from
    /// [`Replication::lease_clock_ms`]), so a renewal held up in the network
    /// renews nothing past that reading. A node too old to take the clock
    /// (it refuses the argument count) is renewed without it.
    pub async fn renew_lease(&mut self, epoch: u64, clock: Option<u64>) -> Result<(), AdminError> {
        let Some(clock) = clock else {
            return self.lease(LeaseOrder::Renew, epoch).await;
        };
        let stamped = self
            .send(&Request::LeaseRenew {
                epoch,
                clock: Some(clock),
            })
            .await;
        match stamped {
            Err(AdminError::Command { source, .. })
                if source
                    .detail()
                    .is_some_and(|d| d.contains("wrong number of arguments")) =>
            {
                self.lease(LeaseOrder::Renew, epoch).await
            }
            other => other,
        }
    }

    /// `TIDECACHE LEASE RENEW|WAIVE <epoch>`: keeps a primary's write
    /// lease, or lets a promoted one write at once.
    pub async fn lease(&mut self, action: LeaseOrder, epoch: u64) -> Result<(), AdminError> {
        let request = match action {
            LeaseOrder::Renew => Request::LeaseRenew { epoch, clock: None },
            LeaseOrder::Waive => Request::LeaseWaive { epoch },
        };
        self.send(&request).await
    }

    /// `TIDECACHE LEASE FENCE <epoch>`: holds the primary's writes for a
    /// switchover; the replication id and offset its replica must reach.
    pub async fn fence(&mut self, epoch: u64) -> Result<(String, u64), AdminError> {
        self.send(&Request::LeaseFence { epoch }).await
    }

    /// Drops what import `id` received (a migration that will be retried).
    pub async fn import_abort(&mut self, id: &str) -> Result<(), AdminError> {
        self.send(&Request::ImportAbort { id }).await
    }

    /// Starts snapshot `id` of the node's slots into `object`.
    pub async fn snapshot_start(&mut self, id: &str, object: &str) -> Result<(), AdminError> {
        self.send(&Request::SnapshotStart { id, object }).await
    }

    /// The node's last snapshot, `None` if it took none since it started.
    pub async fn snapshot_status(&mut self) -> Result<Option<JobStatus>, AdminError> {
        let fields: Option<std::collections::HashMap<String, String>> =
            self.send(&Request::SnapshotStatus).await?;
        Ok(fields.map(JobStatus::from_fields))
    }

    /// Empties the node and loads `objects`, keeping its slots' keys.
    pub async fn restore_start(
        &mut self,
        id: &str,
        snapshot: Option<&str>,
        objects: &[String],
    ) -> Result<(), AdminError> {
        self.send(&Request::RestoreStart {
            id,
            snapshot,
            objects: objects.iter().map(String::as_str).collect(),
        })
        .await
    }

    /// The node's last restore.
    pub async fn restore_status(&mut self) -> Result<Option<JobStatus>, AdminError> {
        let fields: Option<std::collections::HashMap<String, String>> =
            self.send(&Request::RestoreStatus).await?;
        Ok(fields.map(JobStatus::from_fields))
    }

    /// Sends a request the typed methods do not cover (the migration
    /// stream a source node sends its target, a replica's pulls).
    pub async fn send<T: redis::FromRedisValue>(
        &mut self,
        request: &Request<'_>,
    ) -> Result<T, AdminError> {
        self.call(&request.cmd()).await
    }

    /// Runs any command on the admin connection.
    pub async fn call<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> Result<T, AdminError> {
        cmd.query_async(&mut self.conn)
            .await
            .map_err(|source| AdminError::Command {
                addr: self.addr.clone(),
                source,
            })
    }

    fn bad_reply(&self, e: impl std::fmt::Display) -> AdminError {
        AdminError::BadReply {
            addr: self.addr.clone(),
            detail: e.to_string(),
        }
    }

    /// Liveness of the node's command loop.
    pub async fn ping(&mut self) -> Result<(), AdminError> {
        self.conn
            .ping::<()>()
            .await
            .map_err(|source| AdminError::Command {
                addr: self.addr.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_is_read_from_info() {
        let primary = Replication::parse(
            "# Replication\r\nrole:master\r\nmaster_replid:abc\r\nmaster_repl_offset:42\r\n\
             tidecache_lease_clock_ms:1234\r\n",
        );
        assert!(primary.primary && !primary.syncing);
        assert_eq!((primary.replid.as_str(), primary.offset), ("abc", 42));
        assert_eq!(primary.lease_clock_ms, Some(1234));
        // An older node reports no clock: renewals go without one.
        let old = Replication::parse("role:master\r\nmaster_replid:abc\r\n");
        assert_eq!(old.lease_clock_ms, None);
        let replica = Replication::parse(
            "role:slave\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\n\
             master_replid:abc\r\nmaster_repl_offset:7\r\n",
        );
        assert!(replica.is_synced_replica() && replica.link_up);
    }

    #[test]
    fn usage_is_read_from_info() {
        let u = Usage::parse(
            "# Memory\r\nused_memory:1148576\r\nmem_not_counted_for_evict:100000\r\n\
             maxmemory:4194304\r\n\r\n# Stats\r\n\
             total_commands_processed:900\r\nevicted_keys:3\r\ntidecache_oom_rejected:2\r\n\r\n\
             # CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.750000\r\n\
             tidecache_cpu_limit_millicores:500\r\n",
        );
        assert_eq!((u.used_memory, u.maxmemory), (1 << 20, 4 << 20));
        assert_eq!((u.commands, u.evicted_keys, u.oom_rejected), (900, 3, 2));
        assert_eq!(u.cpu_seconds, 2.0);
        assert_eq!(u.cpu_limit_millicores, 500);
        // A node without the cpu section reports no CPU.
        assert_eq!(Usage::parse("used_memory:5\r\n").cpu_seconds, 0.0);
    }
}

/// A node's snapshot or restore, as `TIDECACHE SNAPSHOT|RESTORE STATUS`
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobStatus {
    pub id: String,
    /// `running`, `done` or `failed`.
    pub phase: String,
    pub keys: u64,
    pub rdb_bytes: u64,
    pub stored_bytes: u64,
    /// Hex.
    pub crc64: String,
    pub slots: String,
    pub error: String,
}

impl JobStatus {
    fn from_fields(f: std::collections::HashMap<String, String>) -> JobStatus {
        let text = |k: &str| f.get(k).cloned().unwrap_or_default();
        let number = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        JobStatus {
            id: text("id"),
            phase: text("phase"),
            keys: number("keys"),
            rdb_bytes: number("rdb_bytes"),
            stored_bytes: number("stored_bytes"),
            crc64: text("crc64"),
            slots: text("slots"),
            error: text("error"),
        }
    }
}
