//! [`RedisBackend`]: one reconnecting connection, a timeout on every call, and health tracking.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, FromRedisValue};

use crate::BackendError;

/// The default per-call timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(50);
/// The default pause between health checks while Redis is down.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to one Redis server, shared by limiters and breakers.
///
/// Every limiter and breaker of this crate talks to Redis through a backend. It wraps the
/// `redis` crate's [`ConnectionManager`], which multiplexes concurrent calls over one
/// connection and reconnects in the background when it breaks, and adds what the users of
/// Redis limiters keep asking for:
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
///   one call but does not mark the backend down.
///
/// Clones share the connection and the health state. Build one backend per Redis server
/// and hand it to every limiter and breaker; two backends are two connections.
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
    manager: ConnectionManager,
    /// For the blocking connections of `run_blocking`.
    client: Client,
    connect_timeout: Duration,
    call_timeout: Duration,
    health_check_interval: Duration,
    healthy: AtomicBool,
    /// Whether a health-check task is running (at most one at a time).
    probing: AtomicBool,
    /// Times the backend went from healthy to unhealthy.
    outages: AtomicU64,
}

/// Builds a [`RedisBackend`]; nothing connects until [`connect`](Self::connect).
#[must_use]
#[derive(Debug, Clone)]
pub struct RedisBackendBuilder {
    url: String,
    call_timeout: Duration,
    health_check_interval: Duration,
    connect_timeout: Duration,
}

impl RedisBackend {
    /// Starts building a backend for the server at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisBackendBuilder {
        RedisBackendBuilder {
            url: url.into(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// A backend for `url` with the default timeouts; see [`RedisBackendBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, BackendError> {
        Self::builder(url).connect().await
    }

    /// The longest any one call to Redis may take.
    pub fn call_timeout(&self) -> Duration {
        self.inner.call_timeout
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

    /// The underlying connection manager, for commands of your own. Calls made through it
    /// bypass the call timeout and the health tracking.
    pub fn connection(&self) -> ConnectionManager {
        self.inner.manager.clone()
    }

    /// Runs a script invocation (EVALSHA, loading the script on `NOSCRIPT`) within the call
    /// timeout.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let mut connection = self.inner.manager.clone();
        let call = invocation.invoke_async::<T>(&mut connection);
        self.finish(tokio::time::timeout(self.inner.call_timeout, call).await)
    }

    /// Runs a script invocation over a new blocking connection, within the connect and call
    /// timeouts, without updating the health state: for the rare work that must be done
    /// outside any Tokio runtime (giving a probe lease back after shutdown). Blocks the
    /// calling thread.
    pub(crate) fn run_blocking<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let inner = &*self.inner;
        let error = |error: redis::RedisError| BackendError::from_redis(&error);
        let mut connection = inner
            .client
            .get_connection_with_timeout(inner.connect_timeout)
            .map_err(error)?;
        connection
            .set_read_timeout(Some(inner.call_timeout))
            .map_err(error)?;
        connection
            .set_write_timeout(Some(inner.call_timeout))
            .map_err(error)?;
        invocation.invoke(&mut connection).map_err(error)
    }

    /// Runs one command within the call timeout.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, BackendError> {
        let mut connection = self.inner.manager.clone();
        let call = command.query_async::<T>(&mut connection);
        self.finish(tokio::time::timeout(self.inner.call_timeout, call).await)
    }

    fn finish<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, BackendError> {
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => BackendError::from_redis(&error),
            Err(_) => BackendError::timeout(self.inner.call_timeout),
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
            tokio::spawn(health_check(Arc::downgrade(&self.inner)));
        }
    }
}

/// Pings every `health_check_interval` until Redis answers, then marks it healthy. Holds only
/// a weak reference, so it ends when the last handle is dropped.
async fn health_check(weak: Weak<Inner>) {
    loop {
        let Some(interval) = weak.upgrade().map(|inner| inner.health_check_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let mut connection = inner.manager.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        if let Ok(Ok(_)) = tokio::time::timeout(inner.call_timeout, ping).await {
            // In this order: an error between the two stores starts a new checker rather
            // than leaving the backend down with no checker running.
            inner.probing.store(false, Ordering::Release);
            inner.healthy.store(true, Ordering::Release);
            tracing::info!(target: "resilience::redis", "redis answers again; back to shared state");
            return;
        }
    }
}

impl RedisBackendBuilder {
    /// The longest any one call may take before the failure policy applies (50 ms by
    /// default). Zero fails at `connect`.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How often an unhealthy backend pings Redis to find out it is back (100 ms by
    /// default); also roughly how long after Redis returns the components switch back.
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = interval;
        self
    }

    /// How long one attempt to open the TCP connection may take (1 s by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Builds the backend and pings the server once.
    ///
    /// Fails only for an invalid URL or a zero timeout: a server that does not answer yet
    /// gives a backend that starts unhealthy (components apply their failure policy) and
    /// switches over once the server answers, so an application can start during a Redis
    /// outage. Must be called within a Tokio runtime.
    pub async fn connect(self) -> Result<RedisBackend, BackendError> {
        for (field, value) in [
            ("call_timeout", self.call_timeout),
            ("health_check_interval", self.health_check_interval),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(BackendError::unexpected(format!(
                    "{field} must be positive"
                )));
            }
        }
        let client = Client::open(self.url.as_str()).map_err(|e| BackendError::from_redis(&e))?;
        // Reconnect attempts back off from 10 ms up to 200 ms: a restarted server is picked
        // up within about that much, while a dead one costs a connect attempt every 200 ms.
        let config = ConnectionManagerConfig::new()
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200))
            .set_number_of_retries(8)
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.connect_timeout.max(self.call_timeout)));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| BackendError::from_redis(&e))?;
        let backend = RedisBackend {
            inner: Arc::new(Inner {
                manager,
                client,
                connect_timeout: self.connect_timeout,
                call_timeout: self.call_timeout,
                health_check_interval: self.health_check_interval,
                healthy: AtomicBool::new(true),
                probing: AtomicBool::new(false),
                outages: AtomicU64::new(0),
            }),
        };
        // The first call also opens the connection, so it gets the connect timeout.
        let mut connection = backend.inner.manager.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        let first = tokio::time::timeout(self.connect_timeout, ping).await;
        let _ = backend.finish(first);
        Ok(backend)
    }
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("call_timeout", &self.inner.call_timeout)
            .field("health_check_interval", &self.inner.health_check_interval)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}
