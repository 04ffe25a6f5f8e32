//! [`RedisConnection`]: one connection type over every deployment (one server, a cluster, a
//! primary found through Sentinel), so every script and command of this crate runs through
//! the same code path whatever Redis looks like.

use std::fmt;
use std::io;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// A connection to Redis as the backend sees it: to one server (also a primary located
/// through Sentinel), or to a Redis Cluster.
///
/// It implements the `redis` crate's [`ConnectionLike`], so commands of your own run on it
/// with [`Cmd::query_async`] and scripts with `Script::invoke_async`, exactly as on a
/// [`ConnectionManager`]. On a cluster every command goes to the node serving its first
/// key's slot (`MOVED` and `ASK` redirections are followed by the `redis` crate), and
/// keyless commands are routed by the `redis` crate's rules (`SCRIPT LOAD` to every
/// primary, for example).
///
/// Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisConnection {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// One server; the manager reconnects by itself.
    Server(ConnectionManager),
    /// A cluster; the connection follows the topology (failovers, resharding) by itself.
    Cluster(ClusterConnection),
    /// Sentinel has not named a primary yet: every command fails as a connection error
    /// until the backend's health check finds one.
    Unlocated,
}

impl RedisConnection {
    pub(crate) fn server(manager: ConnectionManager) -> Self {
        Self {
            kind: Kind::Server(manager),
        }
    }

    pub(crate) fn cluster(connection: ClusterConnection) -> Self {
        Self {
            kind: Kind::Cluster(connection),
        }
    }

    pub(crate) fn unlocated() -> Self {
        Self {
            kind: Kind::Unlocated,
        }
    }

    /// Whether this is a connection to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// Subscribes to `channels` (RESP3: the messages arrive on the connection's push
    /// sender, and the `redis` crate subscribes again after a reconnect).
    pub(crate) async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match &mut self.kind {
            Kind::Server(manager) => manager.subscribe(channels).await,
            Kind::Cluster(connection) => connection.subscribe(channels).await,
            Kind::Unlocated => Err(unlocated()),
        }
    }
}

fn unlocated() -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::NotConnected,
        "no primary located through Sentinel yet",
    ))
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.kind {
            Kind::Server(manager) => manager.req_packed_command(cmd),
            Kind::Cluster(connection) => connection.req_packed_command(cmd),
            Kind::Unlocated => Box::pin(std::future::ready(Err(unlocated()))),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.kind {
            Kind::Server(manager) => manager.req_packed_commands(pipeline, offset, count),
            Kind::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
            Kind::Unlocated => Box::pin(std::future::ready(Err(unlocated()))),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.kind {
            Kind::Server(manager) => manager.get_db(),
            Kind::Cluster(connection) => connection.get_db(),
            Kind::Unlocated => 0,
        }
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Server(_) => "server",
            Kind::Cluster(_) => "cluster",
            Kind::Unlocated => "unlocated",
        };
        f.debug_struct("RedisConnection")
            .field("kind", &kind)
            .finish()
    }
}
