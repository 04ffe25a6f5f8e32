//! [`RedisBackendBuilder`]: the settings of a backend, checked and connected in one place
//! whatever the deployment.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{
    Inner, RedisBackend, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEALTH_CHECK_INTERVAL,
};
use crate::deployment::{Deployment, Timeouts};
use crate::subscriptions::{PushSink, Subscriptions};
use crate::BackendError;

/// Builds a [`RedisBackend`]; nothing connects until [`connect`](Self::connect).
#[must_use]
#[derive(Debug, Clone)]
pub struct RedisBackendBuilder {
    deployment: Deployment,
    call_timeout: Duration,
    health_check_interval: Duration,
    connect_timeout: Duration,
}

impl RedisBackendBuilder {
    pub(super) fn new(deployment: Deployment) -> Self {
        Self {
            deployment,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

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

    /// Builds the backend and pings Redis once.
    ///
    /// Fails only for an invalid address, an empty list of cluster nodes or sentinels, or a
    /// zero timeout: a Redis that does not answer yet (or sentinels that cannot name a
    /// primary yet) gives a backend that starts unhealthy (components apply their failure
    /// policy) and switches over once Redis answers, so an application can start during a
    /// Redis outage. Must be called within a Tokio runtime.
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
        if let Deployment::Cluster(nodes)
        | Deployment::Sentinel {
            sentinels: nodes, ..
        } = &self.deployment
        {
            if nodes.is_empty() {
                return Err(BackendError::unexpected(
                    "at least one cluster node or sentinel address is needed",
                ));
            }
        }
        let timeouts = Timeouts {
            connect: self.connect_timeout,
            call: self.call_timeout,
        };
        let subscriptions = Arc::new(Subscriptions::default());
        let push = PushSink(Arc::clone(&subscriptions));
        let (endpoint, locator) = self.deployment.open(timeouts, &push).await?;
        let backend = RedisBackend {
            inner: Arc::new(Inner {
                endpoint: RwLock::new(endpoint),
                locator,
                subscriptions,
                timeouts,
                health_check_interval: self.health_check_interval,
                healthy: AtomicBool::new(true),
                probing: AtomicBool::new(false),
                outages: AtomicU64::new(0),
            }),
        };
        let weak = Arc::downgrade(&backend.inner);
        backend.inner.subscriptions.on_lost(move || {
            if let Some(inner) = weak.upgrade() {
                RedisBackend { inner }.mark_down(&BackendError::disconnected());
            }
        });
        // The first call also opens the connection, so it gets the connect timeout.
        let mut connection = backend.connection();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        let first = tokio::time::timeout(self.connect_timeout, ping).await;
        let _ = backend.finish(first);
        Ok(backend)
    }
}
