//! [`RedisBackend`]: one reconnecting connection, a timeout on every call, and health tracking.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::FromRedisValue;
use tokio::sync::Notify;

use crate::connection::RedisConnection;
use crate::deployment::{Deployment, Endpoint, Locator, Timeouts};
use crate::subscriptions::Subscriptions;
use crate::BackendError;

mod builder;
mod health;

pub use builder::RedisBackendBuilder;
use health::health_check;

/// The default per-call timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(50);
/// The default pause between health checks while Redis is down.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to Redis, shared by limiters and breakers: to one server
/// ([`builder`](Self::builder)), to a Redis Cluster ([`cluster`](Self::cluster)), or to the
/// primary that Redis Sentinel names ([`sentinel`](Self::sentinel)).
///
/// Every limiter and breaker of this crate talks to Redis through a backend, with the same
/// API whatever the deployment. It wraps the `redis` crate's connections, which multiplex
/// concurrent calls and reconnect in the background when they break (the
/// [`ConnectionManager`](redis::aio::ConnectionManager) for one server, the cluster
/// connection, which also follows `MOVED`/`ASK` redirections and failovers inside the
/// cluster), and adds what the users of Redis limiters keep asking for:
///
/// * **A short timeout on every call** (50 ms by default). A call that has not answered by
///   then is abandoned and the component decides by its failure policy: no request waits on
///   a dead server for a TCP timeout.
/// * **Health tracking.** The first timeout or connection failure marks the backend
///   unhealthy, and from then on components skip Redis and apply their failure policy at
///   once, without paying the timeout on every request. A background task pings Redis every
///   `health_check_interval` (100 ms by default) and marks it healthy again as soon as it
///   answers, so an outage switches to the policy at once and back by itself, with no
///   restart. An error *reply* from a healthy server (a bad script, a wrong type) fails that
///   one call but does not mark the backend down; `READONLY` (the server became a replica),
///   `MASTERDOWN`, `TRYAGAIN` and `CLUSTERDOWN` (a failover under way) do.
/// * **Failover.** A cluster connection finds the promoted replica by itself; a Sentinel
///   backend asks Sentinel for the primary again during each health check, and moves its
///   connection there when Sentinel names another server.
/// * **Pub/sub.** Connections speak RESP3 (Redis 6 or later), so pub/sub messages arrive
///   on the same connection; the shared circuit breaker uses this to hear of another
///   instance's trip at once. Subscriptions are renewed after every reconnect.
///
/// Clones share the connection and the health state. Build one backend per Redis
/// deployment and hand it to every limiter and breaker; two backends are two connections.
///
/// # Redis Cluster
///
/// Every script of this crate touches keys of a single hash slot (the key layout puts the
/// limiter's key or the breaker's name in a hash tag, see [`keys`](crate::keys)), so every
/// decision is still one round trip, to the node serving that slot, and different keys
/// spread over the cluster's primaries.
///
/// ```no_run
/// use resilience_redis::RedisBackend;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resilience_redis::BackendError> {
/// let backend = RedisBackend::builder("redis://127.0.0.1:6379/")
///     .call_timeout(Duration::from_millis(20))
///     .connect()
///     .await?;
/// assert!(backend.is_healthy());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

struct Inner {
    /// The connection in use; replaced when Sentinel names another primary. A std lock,
    /// held only to clone the connection out, never across an await.
    endpoint: RwLock<Endpoint>,
    locator: Locator,
    subscriptions: Arc<Subscriptions>,
    timeouts: Timeouts,
    health_check_interval: Duration,
    healthy: AtomicBool,
    /// Whether a health-check task is running (at most one at a time).
    probing: AtomicBool,
    /// Times the backend went from healthy to unhealthy.
    outages: AtomicU64,
}

impl RedisBackend {
    /// Starts building a backend for the server at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisBackendBuilder {
        RedisBackendBuilder::new(Deployment::Server(url.into()))
    }

    /// Starts building a backend for the Redis Cluster that `nodes` belong to
    /// (`redis://host:port` each; any reachable node will do, the others are discovered).
    ///
    /// ```no_run
    /// use resilience_redis::RedisBackend;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resilience_redis::BackendError> {
    /// let backend = RedisBackend::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .connect()
    ///     .await?;
    /// # let _ = backend;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cluster<I, S>(nodes: I) -> RedisBackendBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisBackendBuilder::new(Deployment::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ))
    }

    /// Starts building a backend for the primary of the Sentinel-monitored group `service`
    /// (the master name in Sentinel's configuration), asking the `sentinels`
    /// (`redis://host:port` each) where it is.
    ///
    /// After a failover the backend is unhealthy (components follow their failure policy)
    /// until a health check hears from Sentinel which server was promoted and that server
    /// answers; then it moves its connection there. The primary is reached with default
    /// settings (database 0, no password, no TLS).
    ///
    /// ```no_run
    /// use resilience_redis::RedisBackend;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resilience_redis::BackendError> {
    /// let backend = RedisBackend::sentinel(["redis://10.0.0.1:26379"], "mymaster")
    ///     .connect()
    ///     .await?;
    /// # let _ = backend;
    /// # Ok(())
    /// # }
    /// ```
    pub fn sentinel<I, S>(sentinels: I, service: impl Into<String>) -> RedisBackendBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisBackendBuilder::new(Deployment::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            service: service.into(),
        })
    }

    /// A backend for `url` with the default timeouts; see [`RedisBackendBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, BackendError> {
        Self::builder(url).connect().await
    }

    /// The longest any one call to Redis may take.
    pub fn call_timeout(&self) -> Duration {
        self.inner.timeouts.call
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.connection().is_cluster()
    }

    /// Whether Redis answered the last call (or health check). While this is false,
    /// components apply their failure policy without calling Redis.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Acquire)
    }

    /// How many times the backend went from healthy to unhealthy.
    pub fn outages(&self) -> u64 {
        self.inner.outages.load(Ordering::Relaxed)
    }

    /// Sends `PING`, within the call timeout, updating the health state.
    pub async fn ping(&self) -> Result<(), BackendError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(BackendError::unexpected(format!("PING answered {pong:?}")))
        }
    }

    /// The connection in use, for commands of your own. Calls made through it bypass the
    /// call timeout and the health tracking. After a Sentinel failover the backend moves to
    /// a new connection: ask again rather than keeping this one.
    pub fn connection(&self) -> RedisConnection {
        // Only the connection is cloned (reference counts): this runs on every call.
        self.inner.current().connection.clone()
    }

    /// Wakes `listener` whenever a message arrives on the pub/sub `channel`, and once
    /// after every (re)subscription. Subscribes now if Redis answers, else when the
    /// backend is healthy again.
    pub(crate) async fn listen(&self, channel: &str, listener: &Arc<Notify>) {
        self.inner.subscriptions.register(channel, listener);
        let mut connection = self.connection();
        let channels = [channel.to_owned()];
        let subscribe = connection.subscribe(&channels);
        // Not `finish`: a failed subscription is retried by the health check after an
        // outage, but it says nothing new about the backend's health.
        if !matches!(
            tokio::time::timeout(self.inner.timeouts.call, subscribe).await,
            Ok(Ok(()))
        ) {
            tracing::debug!(target: "resilience::redis", channel, "subscription deferred");
        }
    }

    /// Runs a script invocation (EVALSHA, loading the script on `NOSCRIPT`) within the call
    /// timeout.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let mut connection = self.connection();
        let call = invocation.invoke_async::<T>(&mut connection);
        self.finish(tokio::time::timeout(self.inner.timeouts.call, call).await)
    }

    /// Runs a script invocation over a new blocking connection, within the connect and call
    /// timeouts, without updating the health state: for the rare work that must be done
    /// outside any Tokio runtime (giving a probe lease back after shutdown). Blocks the
    /// calling thread.
    pub(crate) fn run_blocking<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let endpoint = self.inner.current().clone();
        endpoint.run_blocking(self.inner.timeouts, invocation)
    }

    /// Runs one command within the call timeout.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, BackendError> {
        let mut connection = self.connection();
        let call = command.query_async::<T>(&mut connection);
        self.finish(tokio::time::timeout(self.inner.timeouts.call, call).await)
    }

    fn finish<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, BackendError> {
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => BackendError::from_redis(&error),
            Err(_) => BackendError::timeout(self.inner.timeouts.call),
        };
        if error.is_outage() {
            self.mark_down(&error);
        }
        Err(error)
    }

    /// Marks the backend unhealthy and starts the health-check task if none runs.
    fn mark_down(&self, error: &BackendError) {
        let inner = &*self.inner;
        if inner.healthy.swap(false, Ordering::AcqRel) {
            inner.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "resilience::redis", %error, "redis unavailable; applying failure policies until it answers");
        }
        if inner
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Outside a runtime (a connection closed during shutdown) there is nothing to
            // check with; the next call from within one starts the checker.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(health_check(Arc::downgrade(&self.inner)))),
                Err(_) => inner.probing.store(false, Ordering::Release),
            }
        }
    }
}

impl Inner {
    fn current(&self) -> std::sync::RwLockReadGuard<'_, Endpoint> {
        self.endpoint
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("connection", &self.connection())
            .field("call_timeout", &self.inner.timeouts.call)
            .field("health_check_interval", &self.inner.health_check_interval)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}
