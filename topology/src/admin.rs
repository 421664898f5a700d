//! The admin client: how the operator talks to nodes.
//!
//! Nodes accept topology changes only from the admin user, authenticated on
//! the connection; client applications never hold that password.

use std::time::Duration;

use redis::{AsyncCommands as _, ConnectionAddr, IntoConnectionInfo as _, RedisConnectionInfo};

use crate::document::Topology;

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
    #[error("node {addr} returned an invalid topology: {detail}")]
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
        redis::cmd("TIDECACHE")
            .arg("TOPOLOGY")
            .arg("SET")
            .arg(topology.to_json())
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(|source| AdminError::Command {
                addr: self.addr.clone(),
                source,
            })
    }

    /// The document the node runs with, if any.
    pub async fn topology(&mut self) -> Result<Option<Topology>, AdminError> {
        let json: Option<Vec<u8>> = redis::cmd("TIDECACHE")
            .arg("TOPOLOGY")
            .arg("GET")
            .query_async(&mut self.conn)
            .await
            .map_err(|source| AdminError::Command {
                addr: self.addr.clone(),
                source,
            })?;
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
        redis::cmd("TIDECACHE")
            .arg("TOPOLOGY")
            .arg("EPOCH")
            .query_async(&mut self.conn)
            .await
            .map_err(|source| AdminError::Command {
                addr: self.addr.clone(),
                source,
            })
    }

    /// Runs an admin command the typed methods do not cover (the
    /// migration stream a source node sends its target).
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
