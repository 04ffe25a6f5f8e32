//! A private Sentinel-monitored Redis for one test: a primary, a replica and one
//! `redis-sentinel`, each on a free loopback port.
//!
//! The sentinel calls the primary down after two seconds without an answer and, being the
//! only sentinel (quorum 1), fails over to the replica at once: a test that kills the
//! primary sees the replica promoted within a few seconds. Everything is killed on drop.
//! Like [`RedisServer`], run these tests in real time.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use crate::redis_server::Mode;
use crate::RedisServer;

/// How long a failover (or the sentinel's discovery of the replica) may take before we give
/// up; a loopback failover takes two to four seconds.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The name the sentinel monitors the primary under.
pub const SERVICE: &str = "resilience";

/// A primary, its replica and a sentinel watching them, killed when dropped.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use resilience_testkit::RedisSentinel;
///
/// let mut group = RedisSentinel::start().await?;
/// let before = group.primary_port().await?;
/// group.kill_primary().await?;
/// let after = group.wait_for_failover(before).await?;
/// assert_ne!(before, after);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    servers: Vec<RedisServer>,
    sentinel: RedisServer,
}

impl RedisSentinel {
    /// Starts the primary, a replica in sync with it, and a sentinel, and waits until the
    /// sentinel knows the replica (it could not fail over to it otherwise).
    ///
    /// # Errors
    ///
    /// `NotFound` if `redis-server` or `redis-sentinel` is not on `PATH`; `TimedOut` if the
    /// group does not settle within a minute.
    pub async fn start() -> io::Result<Self> {
        let primary = RedisServer::start().await?;
        let replica = RedisServer::start_replica_of(&primary).await?;
        let sentinel = RedisServer::start_as(Mode::Sentinel {
            service: SERVICE.to_owned(),
            primary: primary.port(),
        })
        .await?;
        let group = Self {
            servers: vec![primary, replica],
            sentinel,
        };
        group
            .settle("discovered the replica", || async {
                group
                    .sentinel_info()
                    .await
                    .is_some_and(|line| line.contains("status=ok") && line.contains("slaves=1"))
            })
            .await?;
        Ok(group)
    }

    /// `redis://127.0.0.1:port` of the sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        vec![format!("redis://127.0.0.1:{}", self.sentinel.port())]
    }

    /// The name the primary is monitored under ([`SERVICE`]).
    pub fn service(&self) -> &str {
        SERVICE
    }

    /// The port of the primary as the sentinel names it now.
    ///
    /// # Errors
    ///
    /// If the sentinel does not answer or names no primary.
    pub async fn primary_port(&self) -> io::Result<u16> {
        let line = self
            .sentinel_info()
            .await
            .ok_or_else(|| io::Error::other("the sentinel names no primary"))?;
        line.split(',')
            .find_map(|field| field.strip_prefix("address="))
            .and_then(|address| address.rsplit(':').next()?.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no address in {line:?}")))
    }

    /// Kills (SIGKILL) the current primary; returns its port.
    ///
    /// # Errors
    ///
    /// If the sentinel names no primary, or the process cannot be killed.
    pub async fn kill_primary(&mut self) -> io::Result<u16> {
        let port = self.primary_port().await?;
        let server = self
            .servers
            .iter_mut()
            .find(|server| server.port() == port)
            .ok_or_else(|| io::Error::other(format!("no server on port {port}")))?;
        server.stop().await?;
        Ok(port)
    }

    /// Waits until the sentinel names a primary other than `old` and that server answers
    /// as a primary; returns its port.
    ///
    /// # Errors
    ///
    /// `TimedOut` if that does not happen within a minute.
    pub async fn wait_for_failover(&self, old: u16) -> io::Result<u16> {
        self.settle("failed over", || async {
            let Ok(port) = self.primary_port().await else {
                return false;
            };
            let Some(server) = self.servers.iter().find(|s| s.port() == port) else {
                return false;
            };
            port != old
                && server
                    .text(&["INFO", "replication"])
                    .await
                    .is_ok_and(|info| info.lines().any(|l| l.trim() == "role:master"))
        })
        .await?;
        self.primary_port().await
    }

    /// The `master0:` line of the sentinel's `INFO sentinel`.
    async fn sentinel_info(&self) -> Option<String> {
        let info = self.sentinel.text(&["INFO", "sentinel"]).await.ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("master0:"))
            .map(str::to_owned)
    }

    async fn settle<F, Fut>(&self, what: &str, done: F) -> io::Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !done().await {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the sentinel group was not {what} within {SETTLE_TIMEOUT:?}"),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }
}
