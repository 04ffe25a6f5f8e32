//! Circuit-breaker state shared through Redis, so several processes act as one breaker.
//!
//! # What is shared, and how
//!
//! A [`RedisCircuitBreaker`] wraps a core [`CircuitBreaker`] (the *local* breaker: its
//! detector, config, events and metrics) and keeps it in step with one shared record in
//! Redis: the state (`closed`, `open`, `half_open`, `forced_open`), a version number that
//! grows with every transition, the server time until which an open circuit stays open, and
//! an *epoch* naming the record's lifetime.
//!
//! * **No remote call on the hot path.** While the state does not change, calls are decided
//!   by the local breaker alone (an atomic load); Redis is called only on transitions and
//!   for half-open probes.
//! * **Trips propagate at once, and within a bound.** When the local detector trips, a
//!   background task writes the trip to Redis at once (one script), and the script
//!   publishes the transition on a pub/sub channel named like the state key. Every
//!   instance is subscribed (through its backend's connection) and reads the shared state
//!   as soon as the message arrives: on loopback the others reject about a millisecond
//!   after the trip (the `redis` bench prints the measured latency). Messages can be lost
//!   (a subscription is renewed only after a reconnect), so every instance also reads the
//!   shared version every `sync_interval` (100 ms by default): when one instance trips,
//!   every instance rejects within **`sync_interval` + the backend's call timeout** (150 ms
//!   with the defaults) at worst. The tripping instance itself rejects on its very next
//!   call.
//! * **Transitions are compare-and-set in Lua**, never last-writer-wins: a trip
//!   applies only to a closed or half-open circuit, so a second instance's trip never
//!   restarts the open period; closing after successful probes applies only if the version
//!   is still the one the probes were granted in, so a late success never closes a circuit
//!   another instance has reopened.
//! * **Half-open probes are limited across all instances**: a probe needs a lease from a
//!   Lua-guarded sorted set of at most `half_open_max_calls` live leases. A lease is given
//!   back when the probe finishes, and expires by itself after `probe_lease` (10 s by
//!   default) if its process died. Probe outcomes are counted in Redis: `success_threshold`
//!   successes across the fleet close the circuit, one failure reopens it. The open period
//!   ends on the Redis server's clock, once for everyone. A probe request whose caller gave
//!   up (dropped future, outer timeout) or whose answer was lost gives back the lease the
//!   script may have granted; a permit dropped outside a Tokio runtime gives its lease back
//!   from a thread of its own. A probe request that fails admits no local probe instead:
//!   Redis could not say how many run elsewhere.
//! * **A follower opens for the time left.** An instance adopting an open circuit from
//!   another opens its local breaker for the shared time left (so `retry_after` is honest)
//!   and does not count it as a trip of its own (its backoff does not grow).
//! * **Start-up reads, never writes**: a new instance adopts the shared state (joining an
//!   open circuit, it starts open) and writes only when its own breaker changes.
//! * **Keys carry TTLs**: the state expires `state_ttl` (24 h by default) after its last
//!   change, probe leases with their lease, trip votes with their window.
//! * **Lost state is noticed, not mistaken for old state.** Each instance remembers the
//!   (epoch, version) it applied last. When Redis loses the record (a restart without
//!   persistence, `FLUSHALL`, expiry), the next write starts a new lifetime with a new
//!   epoch and versions from 1, which every instance adopts although its version is lower;
//!   an instance whose local breaker is open writes its trip again, so an open circuit is
//!   not forgotten because Redis forgot it. When Redis goes back in time *within* a
//!   lifetime (a failover to a replica that had not received the last writes), the first
//!   instance to see a version lower than one it knew gives the record a new epoch, so no
//!   instance mistakes a reused version number for the state it saw under that number.
//!   Either way the bound above holds from the moment the shared state is open again: no
//!   instance keeps admitting calls for an open period because its memory of versions is
//!   ahead of what Redis holds.
//! * **Transitions reach Redis in the order they happened**: the local breaker's
//!   [transition hook](CircuitBreaker::set_transition_hook) queues them under its lock. A
//!   close after successful probes is written as a compare-and-set against the shared
//!   state this instance knew *when it closed*, so a reopen adopted meanwhile is never
//!   overwritten.
//! * **A quorum guards against one bad node** (the usual objection to shared breakers: one
//!   instance with a broken network could open the circuit for the healthy ones). With
//!   [`trip_quorum(n, within)`](RedisCircuitBreakerBuilder::trip_quorum) the shared circuit opens
//!   only once `n` different instances tripped within `within`; an instance that trips alone stays
//!   open locally, and is closed again by the shared state when its open period ends. The default
//!   quorum is 1.
//!
//! # When Redis cannot answer
//!
//! The local breaker keeps deciding on its own ([`FailurePolicy::FailOpen`], the default, and
//! [`FailurePolicy::Local`] mean the same here: no call is failed because Redis is down),
//! its half-open probes limited per instance only (once the backend is known to be down:
//! a single failed probe request rejects its call). Transitions made meanwhile are written
//! when Redis answers again. [`FailurePolicy::FailClosed`] rejects every call while the
//! backend is unhealthy.
//!
//! # Failover
//!
//! On a Redis Cluster or behind Sentinel, the shared record lives on one primary and its
//! replicas. After a failover the promoted replica holds whatever it had received: usually
//! everything, so the shared state **survives** (a trip made before the failover still opens
//! newcomers' breakers). If the replica missed the last writes, the state is **rebuilt**: the
//! instances notice the record went back in time (or lost its lifetime) and give it a new
//! epoch, and an instance whose breaker is open writes its trip again. While a slot migrates
//! between cluster nodes, Redis refuses a script whose keys are only partly moved
//! (`TRYAGAIN`); the breaker treats that like an outage and writes its transition once the
//! slot has settled.
//!
//! # Keys
//!
//! For a breaker named `payments`, with the default prefix (the name inside the hash tag, so
//! all three keys share one Redis Cluster slot):
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `resilience:cb:{payments}` | hash | `state`, `version`, `open_until` (µs, server clock), `successes`, `epoch` | `state_ttl` |
//! | `resilience:cb:{payments}:probes` | sorted set | probe leases, scored by expiry | `probe_lease` |
//! | `resilience:cb:{payments}:votes` | sorted set | instances that tripped (quorum > 1 only) | the quorum window |
//!
//! # Example
//!
//! ```no_run
//! use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
//! use resilience_redis::{RedisBackend, RedisCircuitBreaker};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = RedisBackend::connect("redis://127.0.0.1:6379/").await?;
//! let local = CircuitBreaker::builder("payments").failure_threshold(5).build()?;
//! let breaker = RedisCircuitBreaker::builder(local, &backend).start().await?;
//!
//! let reply = breaker.call(|| async { Ok::<_, std::io::Error>("paid") }).await;
//! assert!(reply.is_ok());
//! assert_eq!(breaker.state(), CircuitState::Closed);
//! # Ok(())
//! # }
//! ```
//!
//! # What is not shared
//!
//! The failure *detection*: each instance's detector sees only its own calls, and trips the
//! shared circuit when it trips. `disable()` stays local. The open duration of the shared
//! circuit is the one of the instance that tripped it (with its backoff, if configured).

mod builder;
mod follow;
mod hook;
mod permit;
mod sync;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerMetrics, CircuitState};
use resilience::stage::{self, Admit, Stage};
use resilience::{Error, PatternKind, Rejection, RejectionReason};
use tokio::sync::mpsc;

pub use builder::RedisCircuitBreakerBuilder;
use permit::PendingLease;
pub use permit::SharedPermit;

use crate::backend_metrics::BackendMetrics;
use crate::{BackendError, FailurePolicy, RedisBackend};
use hook::Change;

/// A circuit breaker whose state is shared by every process using the same Redis, prefix
/// and name. See the [module docs](self).
///
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct RedisCircuitBreaker {
    inner: Arc<Inner>,
}

struct Scripts {
    read: Script,
    trip: Script,
    reset: Script,
    probe: Script,
    release: Script,
    renew: Script,
}

/// The newest shared state applied here: its record's lifetime and its version within it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Known {
    epoch: u64,
    version: u64,
}

struct Inner {
    local: CircuitBreaker,
    backend: RedisBackend,
    policy: FailurePolicy,
    state_key: String,
    probes_key: String,
    votes_key: String,
    scripts: Scripts,
    instance: u64,
    leases: AtomicU64,
    sync_interval: Duration,
    probe_lease: Duration,
    state_ttl: Duration,
    quorum: u32,
    quorum_window: Duration,
    /// The newest shared state applied to the local breaker. Held while applying, so two
    /// shared states are never applied out of order.
    known: Mutex<Known>,
    /// A copy of `known` for the transition hook, which runs under the local breaker's lock
    /// and so must not wait for `known` (held while applying, which takes that lock).
    seen: Arc<Mutex<Known>>,
    /// A local transition that could not be written yet (Redis was down).
    pending: Mutex<Option<Change>>,
    changes: mpsc::UnboundedSender<Change>,
    counters: Counters,
    pub(super) backend_metrics: BackendMetrics,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    conflicts: AtomicU64,
    applied: AtomicU64,
    probes_granted: AtomicU64,
    probes_denied: AtomicU64,
    backend_errors: AtomicU64,
    rejected_unavailable: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The shared state as Redis holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedState {
    /// `Closed`, `Open`, `HalfOpen` or `ForcedOpen`.
    pub state: CircuitState,
    /// Grows by one on every shared transition; 0 for a state never written (or lost).
    pub version: u64,
    /// Names the record's lifetime: set once when the record is first written, different
    /// after Redis lost it (restart without persistence, `FLUSHALL`, expiry, failover to a
    /// replica that had not seen it). 0 for a state never written (or lost).
    pub epoch: u64,
    /// For an open circuit, the time left until probes are admitted (server clock).
    pub open_remaining: Option<Duration>,
}

/// A snapshot of a [`RedisCircuitBreaker`]: the local breaker's metrics and the sharing.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RedisCircuitBreakerMetrics {
    /// The local breaker's metrics (its state mirrors the shared one).
    pub local: CircuitBreakerMetrics,
    /// What happens while Redis cannot answer.
    pub failure_policy: FailurePolicy,
    /// Whether the backend is answering now.
    pub backend_healthy: bool,
    /// The newest shared version this instance has applied.
    pub shared_version: u64,
    /// The lifetime of the shared record that version belongs to (see
    /// [`SharedState::epoch`]); it changes when Redis lost the record.
    pub shared_epoch: u64,
    /// Local transitions written to Redis.
    pub writes: u64,
    /// Writes that found the shared state already changed (the shared state was adopted).
    pub conflicts: u64,
    /// Shared transitions made by other instances and applied here.
    pub applied: u64,
    /// Half-open probe leases granted to this instance.
    pub probes_granted: u64,
    /// Calls rejected because every shared probe lease was taken (or the shared circuit
    /// was still open).
    pub probes_denied: u64,
    /// Failed or timed-out calls to Redis.
    pub backend_errors: u64,
    /// Calls rejected by [`FailurePolicy::FailClosed`] while Redis was down.
    pub rejected_unavailable: u64,
}

/// A script's answer: `{changed or granted, state, version, open_remaining_us, epoch}`.
type Reply = (i64, String, u64, u64, String);

/// A fresh epoch for a record's new lifetime, as the scripts store it.
fn new_epoch() -> String {
    format!("{:016x}", fastrand::u64(1..))
}

/// An epoch as the scripts compare it ('' for none).
fn epoch_arg(epoch: u64) -> String {
    if epoch == 0 {
        String::new()
    } else {
        format!("{epoch:016x}")
    }
}

fn parse_state(name: &str) -> Option<CircuitState> {
    Some(match name {
        "closed" => CircuitState::Closed,
        "open" => CircuitState::Open,
        "half_open" => CircuitState::HalfOpen,
        "forced_open" => CircuitState::ForcedOpen,
        _ => return None,
    })
}

fn shared(reply: &Reply) -> Result<SharedState, BackendError> {
    let state = parse_state(&reply.1)
        .ok_or_else(|| BackendError::unexpected(format!("unknown shared state {:?}", reply.1)))?;
    let epoch = if reply.4.is_empty() {
        0
    } else {
        u64::from_str_radix(&reply.4, 16)
            .map_err(|_| BackendError::unexpected(format!("unknown epoch {:?}", reply.4)))?
    };
    Ok(SharedState {
        state,
        version: reply.2,
        epoch,
        open_remaining: (state == CircuitState::Open).then(|| Duration::from_micros(reply.3)),
    })
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl RedisCircuitBreaker {
    /// Starts sharing `local`'s state through `backend`; finish with
    /// [`start`](RedisCircuitBreakerBuilder::start).
    pub fn builder(local: CircuitBreaker, backend: &RedisBackend) -> RedisCircuitBreakerBuilder {
        RedisCircuitBreakerBuilder::new(local, backend.clone())
    }

    /// The breaker's name (the local breaker's).
    pub fn name(&self) -> &str {
        self.inner.local.name()
    }

    /// The local breaker, mirroring the shared state: its events include the shared
    /// transitions applied here.
    pub fn local(&self) -> &CircuitBreaker {
        &self.inner.local
    }

    /// The state as this instance sees it, without calling Redis (at most the staleness
    /// bound behind the shared state).
    pub fn state(&self) -> CircuitState {
        self.inner.local.state()
    }

    /// Reads the shared state from Redis (one round trip, within the call timeout).
    pub async fn shared_state(&self) -> Result<SharedState, BackendError> {
        let inner = &*self.inner;
        let reply: Reply = inner
            .backend
            .run(&inner.scripts.read.key(&inner.state_key))
            .await?;
        shared(&reply)
    }

    /// The Redis key of the shared state (see the key table in the [module docs](self)).
    pub fn state_key(&self) -> &str {
        &self.inner.state_key
    }

    /// Runs `operation` if the breaker admits it, counting every `Err` as a failure.
    pub async fn call<T, E, F, Fut>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        stage::call(self, operation).await
    }

    /// Asks for admission; the caller reports the outcome on the returned permit (dropping it
    /// counts as ignored and gives a probe lease back).
    ///
    /// Closed and open circuits are decided locally. A half-open one asks Redis for one of
    /// the fleet's probe leases first.
    pub async fn acquire(&self) -> Result<SharedPermit, Rejection> {
        match self.decide_locally() {
            Some(answer) => answer,
            None => self.acquire_probe().await,
        }
    }

    /// The answer when it needs no round trip (closed, open, Redis unhealthy); `None` when a
    /// half-open circuit must ask Redis for a probe lease.
    fn decide_locally(&self) -> Option<Result<SharedPermit, Rejection>> {
        let inner = &*self.inner;
        let healthy = inner.backend.is_healthy();
        if !healthy && inner.policy == FailurePolicy::FailClosed {
            bump(&inner.counters.rejected_unavailable);
            return Some(Err(self.rejection(RejectionReason::CircuitOpen, None)));
        }
        if healthy && inner.local.state() == CircuitState::HalfOpen {
            return None;
        }
        let local = match inner.local.try_acquire_owned() {
            Ok(local) => local,
            Err(rejection) => return Some(Err(rejection)),
        };
        Some(Ok(SharedPermit::new(self.clone(), local, None)))
    }

    async fn acquire_probe(&self) -> Result<SharedPermit, Rejection> {
        let inner = &*self.inner;
        let sequence = inner.leases.fetch_add(1, Ordering::Relaxed);
        // Armed before the request: if this future is dropped while Redis is answering, or
        // the answer is lost, a lease the script may have granted is given back at once
        // instead of blocking the fleet's probes until it expires.
        let pending = PendingLease::new(
            self.clone(),
            format!("{:016x}-{sequence:x}", inner.instance),
        );
        let mut invocation = inner.scripts.probe.key(&inner.state_key);
        invocation
            .key(&inner.probes_key)
            .arg(pending.id())
            .arg(micros(inner.probe_lease))
            .arg(inner.local.config().half_open_max_calls)
            .arg(millis(inner.state_ttl))
            .arg(new_epoch());
        let answer = inner
            .backend
            .run::<Reply>(&invocation)
            .await
            .and_then(|reply| Ok((reply.0 == 1, shared(&reply)?)));
        let (granted, state) = match answer {
            Ok(answer) => {
                inner.answered();
                answer
            }
            Err(error) => {
                inner.failed(&error);
                // Redis could not say how many probes run elsewhere, so none runs here: a
                // local probe now could exceed the fleet's limit. (`pending` gives back a
                // lease the script may have granted.) Once the backend is marked down,
                // `acquire` follows the failure policy instead.
                if inner.policy == FailurePolicy::FailClosed {
                    bump(&inner.counters.rejected_unavailable);
                    return Err(self.rejection(RejectionReason::CircuitOpen, None));
                }
                bump(&inner.counters.probes_denied);
                return Err(self.rejection(RejectionReason::HalfOpenFull, None));
            }
        };
        inner.adopt(&state);
        if granted {
            bump(&inner.counters.probes_granted);
            let lease = pending.granted(state.epoch, state.version);
            return match inner.local.try_acquire_owned() {
                Ok(local) => Ok(SharedPermit::new(self.clone(), local, Some(lease))),
                Err(rejection) => {
                    // Give the lease straight back.
                    SharedPermit::release(self.clone(), Some(lease), sync::Outcome::Ignored);
                    Err(rejection)
                }
            };
        }
        // Not granted: the script recorded no lease, nothing to give back.
        pending.forget();
        match state.state {
            // The shared circuit is closed: this instance's open period is over (it may have
            // tripped alone, short of the quorum).
            CircuitState::Closed => {
                inner.apply(&state);
                let local = inner.local.try_acquire_owned()?;
                Ok(SharedPermit::new(self.clone(), local, None))
            }
            CircuitState::HalfOpen => {
                bump(&inner.counters.probes_denied);
                Err(self.rejection(RejectionReason::HalfOpenFull, None))
            }
            CircuitState::ForcedOpen => {
                bump(&inner.counters.probes_denied);
                Err(self.rejection(RejectionReason::CircuitForcedOpen, None))
            }
            _ => {
                bump(&inner.counters.probes_denied);
                Err(self.rejection(RejectionReason::CircuitOpen, state.open_remaining))
            }
        }
    }

    fn rejection(&self, reason: RejectionReason, retry_after: Option<Duration>) -> Rejection {
        Rejection::new(
            PatternKind::CircuitBreaker,
            Arc::from(self.name()),
            reason,
            retry_after,
        )
    }

    /// Opens the circuit for every instance (locally at once, in Redis right after).
    pub fn trip(&self) {
        self.inner.local.trip();
    }

    /// Holds the circuit open for every instance until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.inner.local.force_open();
    }

    /// Closes the circuit for every instance, whatever its shared state.
    pub fn reset(&self) {
        let inner = &*self.inner;
        // An operator's reset is unconditional, whatever state the local breaker was in, so
        // it is sent here rather than by the transition hook (which would send a half-open
        // breaker's close as a conditional one).
        let _ = inner.changes.send(Change::Reset { expected: None });
        hook::quietly(|| inner.local.reset());
    }

    /// A snapshot of the local metrics and the sharing counters.
    pub fn metrics(&self) -> RedisCircuitBreakerMetrics {
        let inner = &*self.inner;
        let c = &inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let known = *inner.known();
        RedisCircuitBreakerMetrics {
            local: inner.local.metrics(),
            failure_policy: inner.policy,
            backend_healthy: inner.backend.is_healthy(),
            shared_version: known.version,
            shared_epoch: known.epoch,
            writes: load(&c.writes),
            conflicts: load(&c.conflicts),
            applied: load(&c.applied),
            probes_granted: load(&c.probes_granted),
            probes_denied: load(&c.probes_denied),
            backend_errors: load(&c.backend_errors),
            rejected_unavailable: load(&c.rejected_unavailable),
        }
    }
}

impl Inner {
    /// Redis answered a call.
    fn answered(&self) {
        self.backend_metrics.answered();
    }

    fn failed(&self, error: &BackendError) {
        bump(&self.counters.backend_errors);
        self.backend_metrics.failed();
        tracing::debug!(target: "resilience::redis", breaker = %self.local.name(), %error, "shared breaker call failed");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Drops the hook's sender, which ends the sync task (the local breaker may outlive
        // this wrapper through a clone).
        self.local.set_transition_hook(|_| {});
    }
}

/// Closed and open circuits are decided locally, at once; a half-open one waits for Redis to
/// grant one of the fleet's probe leases.
impl Stage for RedisCircuitBreaker {
    type Permit = SharedPermit;

    fn admit(&self) -> Admit<SharedPermit> {
        match self.decide_locally() {
            Some(answer) => Admit::ready(answer),
            None => {
                let breaker = self.clone();
                Admit::waiting(async move { breaker.acquire_probe().await })
            }
        }
    }

    fn name(&self) -> &str {
        Self::name(self)
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::CircuitBreaker
    }

    fn call_limit(&self) -> Option<Duration> {
        Stage::call_limit(&self.inner.local)
    }
}

impl fmt::Debug for RedisCircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RedisCircuitBreaker")
            .field("name", &inner.local.name())
            .field("state_key", &inner.state_key)
            .field("failure_policy", &inner.policy)
            .field("sync_interval", &inner.sync_interval)
            .finish_non_exhaustive()
    }
}
