//! [`RedisCircuitBreakerBuilder`]: sharing a core breaker's state through Redis.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use resilience::circuit_breaker::CircuitBreaker;
use resilience::{ConfigError, ConfigProblem};
use tokio::sync::{mpsc, Notify};

use super::{hook, sync, Counters, Inner, Known, RedisCircuitBreaker, Scripts};

/// A breaker script: the shared opening (server time, the record, its epoch) followed by the
/// script's own part, each a reviewable `.lua` file.
macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("../scripts/breaker_common.lua"),
            include_str!(concat!("../scripts/", $file))
        ))
    };
}
use crate::backend_metrics::BackendMetrics;
use crate::keys::{self, DEFAULT_PREFIX};
use crate::{FailurePolicy, RedisBackend};

/// Builds a [`RedisCircuitBreaker`] around a core breaker; nothing is checked until
/// [`start`](Self::start).
///
/// ```no_run
/// use resilience::circuit_breaker::CircuitBreaker;
/// use resilience_redis::{RedisBackend, RedisCircuitBreaker};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = RedisBackend::connect("redis://127.0.0.1:6379/").await?;
/// let local = CircuitBreaker::builder("payments").build()?;
/// let breaker = RedisCircuitBreaker::builder(local, &backend)
///     .sync_interval(Duration::from_millis(50))
///     .trip_quorum(2, Duration::from_secs(10))
///     .start()
///     .await?;
/// # let _ = breaker;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct RedisCircuitBreakerBuilder {
    local: CircuitBreaker,
    backend: RedisBackend,
    prefix: String,
    policy: FailurePolicy,
    sync_interval: Duration,
    probe_lease: Duration,
    state_ttl: Duration,
    quorum: u32,
    quorum_window: Duration,
}

impl RedisCircuitBreakerBuilder {
    pub(super) fn new(local: CircuitBreaker, backend: RedisBackend) -> Self {
        Self {
            local,
            backend,
            prefix: DEFAULT_PREFIX.to_owned(),
            policy: FailurePolicy::default(),
            sync_interval: Duration::from_millis(100),
            probe_lease: Duration::from_secs(10),
            state_ttl: Duration::from_secs(24 * 60 * 60),
            quorum: 1,
            quorum_window: Duration::from_secs(60),
        }
    }

    /// What to do while Redis cannot answer ([`FailurePolicy::FailOpen`] by default: the
    /// local breaker decides alone).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The first part of every Redis key (`resilience` by default); no braces or whitespace.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How often the shared version is read (100 ms by default). Transitions normally
    /// arrive sooner, by pub/sub; this poll is the bound when a message is lost (a
    /// subscription broken by a reconnect, a failover): with the backend's call timeout,
    /// the bound on how stale this instance's view can be.
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// How long a probe lease lives if its holder never gives it back (10 s by default).
    /// Make it longer than the slowest probe call.
    pub fn probe_lease(mut self, lease: Duration) -> Self {
        self.probe_lease = lease;
        self
    }

    /// How long the shared state lives after its last change (24 h by default, c-breaker's
    /// `default_ttl`).
    pub fn state_ttl(mut self, ttl: Duration) -> Self {
        self.state_ttl = ttl;
        self
    }

    /// Opens the shared circuit only once `instances` different instances tripped within
    /// `within` (1 by default: any trip opens it).
    pub fn trip_quorum(mut self, instances: u32, within: Duration) -> Self {
        self.quorum = instances;
        self.quorum_window = within;
        self
    }

    /// Validates the settings, reads the shared state (adopting it: joining an open
    /// circuit starts open; nothing is written), and starts the sync task. Must be called
    /// within a Tokio runtime. A Redis that does not answer is not an error: the breaker
    /// starts on its local state and catches up when Redis answers.
    pub async fn start(self) -> Result<RedisCircuitBreaker, ConfigError> {
        keys::check_prefix(&self.prefix)?;
        for (field, value) in [
            ("sync_interval", self.sync_interval),
            ("probe_lease", self.probe_lease),
            ("state_ttl", self.state_ttl),
            ("quorum_window", self.quorum_window),
        ] {
            if value < Duration::from_millis(1) {
                return Err(ConfigError::new(
                    field,
                    ConfigProblem::TooSmall { min: 0.001 },
                ));
            }
        }
        if self.quorum == 0 {
            return Err(ConfigError::new(
                "quorum",
                ConfigProblem::TooSmall { min: 1.0 },
            ));
        }
        let [probes_key, votes_key, state_key] = keys::breaker(&self.prefix, self.local.name());
        let (sender, receiver) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Known::default()));
        self.local
            .set_transition_hook(hook::hook(sender.clone(), Arc::clone(&seen)));
        let backend_metrics = BackendMetrics::new(&Arc::from(self.local.name()), self.policy);
        let inner = Arc::new(Inner {
            probes_key,
            votes_key,
            state_key,
            local: self.local,
            backend: self.backend,
            policy: self.policy,
            scripts: Scripts {
                read: script!("breaker_read.lua"),
                trip: script!("breaker_trip.lua"),
                reset: script!("breaker_reset.lua"),
                probe: script!("breaker_probe.lua"),
                release: script!("breaker_release.lua"),
                renew: script!("breaker_renew.lua"),
            },
            instance: fastrand::u64(..),
            leases: AtomicU64::new(0),
            sync_interval: self.sync_interval,
            probe_lease: self.probe_lease,
            state_ttl: self.state_ttl,
            quorum: self.quorum,
            quorum_window: self.quorum_window,
            known: Mutex::new(Known::default()),
            seen,
            pending: Mutex::new(None),
            changes: sender,
            counters: Counters::default(),
            backend_metrics,
        });
        let breaker = RedisCircuitBreaker { inner };
        // Subscribed before the first read, so no transition falls between the two.
        let nudges = Arc::new(Notify::new());
        breaker
            .inner
            .backend
            .listen(&breaker.inner.state_key, &nudges)
            .await;
        // Read first; never write on start-up.
        match breaker.shared_state().await {
            Ok(state) => {
                breaker.inner.answered();
                breaker.inner.start_from(&state);
            }
            Err(error) => breaker.inner.failed(&error),
        }
        tokio::spawn(sync::run(
            Arc::downgrade(&breaker.inner),
            receiver,
            nudges,
            self.sync_interval,
        ));
        Ok(breaker)
    }
}

impl fmt::Debug for RedisCircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCircuitBreakerBuilder")
            .field("name", &self.local.name())
            .field("prefix", &self.prefix)
            .field("failure_policy", &self.policy)
            .field("sync_interval", &self.sync_interval)
            .field("probe_lease", &self.probe_lease)
            .field("state_ttl", &self.state_ttl)
            .field("quorum", &self.quorum)
            .finish_non_exhaustive()
    }
}
