//! [`AdaptiveThrottle`]: the shell that counts requests and accepts in the window, draws
//! against the probability of the pure core and hands out permits.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::instruments::Instruments;
use super::state::{headroom, probability, throttles};
use super::window::{Credit, Ring, BUCKETS};
use super::{ThrottleBuilder, ThrottleConfig, ThrottleEvent, ThrottleMetrics};
use crate::classify::Outcome;
use crate::clock::Clock;
use crate::events::{Emitter, EventBus};
use crate::random::SplitMix;
use crate::stage::{self, Admit, Stage, StagePermit};
use crate::{ConfigError, PatternKind, Rejection, RejectionReason};

/// Client-side adaptive throttling: drops a share of requests locally when the backend has
/// been refusing much of what it was sent, so an overloaded backend is not also flooded with
/// requests it will refuse.
///
/// Cheap to clone; clones share the window, the generator, the counters and the listeners.
/// See the [module docs](super) for how it decides.
#[derive(Clone)]
pub struct AdaptiveThrottle {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    config: ThrottleConfig,
    /// Time zero of the buckets (see [`Clock`] for the source it reads).
    clock: Clock,
    bucket_nanos: u64,
    requests: Ring,
    accepts: Ring,
    /// Requests known to pass at probability 0 in the current bucket.
    credit: Credit,
    generator: SplitMix,
    total_requests: AtomicU64,
    throttled: AtomicU64,
    failures: AtomicU64,
    emitter: Emitter,
    instruments: Instruments,
}

impl AdaptiveThrottle {
    /// Starts building a throttle named `name`, with the defaults of [`ThrottleConfig`].
    pub fn builder(name: impl Into<String>) -> ThrottleBuilder {
        ThrottleBuilder::new(name.into())
    }

    /// A throttle from a plain config, validated the same way as the builder's.
    pub fn from_config(
        name: impl Into<String>,
        config: ThrottleConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new_validated(name: &str, config: ThrottleConfig) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        let window = u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX);
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                instruments: Instruments::new(&name),
                name,
                clock: Clock::new(),
                bucket_nanos: (window / BUCKETS).max(1),
                requests: Ring::new(),
                accepts: Ring::new(),
                credit: Credit::new(),
                generator: SplitMix::new(config.seed),
                config,
                total_requests: AtomicU64::new(0),
                throttled: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// The throttle's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration.
    pub fn config(&self) -> ThrottleConfig {
        self.inner.config
    }

    /// The share of requests throttled now, from the window as it is.
    pub fn rejection_probability(&self) -> f64 {
        let inner = &*self.inner;
        let bucket = inner.current_bucket();
        probability(
            inner.requests.total(bucket),
            inner.accepts.total(bucket),
            &inner.config,
        )
    }

    /// Decides one request now: a [`Permit`] to send it, or a rejection
    /// ([`RejectionReason::Throttled`], no `retry_after`: the next request may well pass).
    /// Either way the request is counted in the window.
    ///
    /// Report the backend's answer through the permit: only a
    /// [`failure`](Permit::failure) counts against the backend.
    pub fn try_acquire(&self) -> Result<Permit, Rejection> {
        let inner = &*self.inner;
        let bucket = inner.current_bucket();
        if inner.credit.take(bucket) {
            // Known to pass at probability 0: no need to sum the window.
            return Ok(inner.admit(&self.inner, bucket));
        }
        let requests = inner.requests.total(bucket);
        let accepts = inner.accepts.total(bucket);
        let p = probability(requests, accepts, &inner.config);
        if throttles(p, || inner.generator.next_unit()) {
            inner.requests.add(bucket, 1);
            inner.total_requests.fetch_add(1, Ordering::Relaxed);
            inner.throttled.fetch_add(1, Ordering::Relaxed);
            inner.instruments.throttled();
            tracing::debug!(target: "resilience::throttle", throttle = %inner.name, probability = p, "request throttled");
            inner
                .emitter
                .emit(|| ThrottleEvent::Rejected { probability: p });
            return Err(Rejection::new(
                PatternKind::Throttle,
                Arc::clone(&inner.name),
                RejectionReason::Throttled,
                None,
            ));
        }
        if p == 0.0 {
            // Concurrent callers may have counted requests since the sums were read: under
            // contention the credit can be generous by the requests racing this one.
            let room = headroom(requests, accepts, &inner.config);
            inner.credit.grant(bucket, room);
        }
        Ok(inner.admit(&self.inner, bucket))
    }

    stage::entry_points! {
        /// Runs `operation` unless throttled, counting every `Err` as not accepted by the
        /// backend.
        call;
        /// Like [`call`](Self::call), judging the outcome with `classifier`: what it calls a
        /// failure is a request the backend did not accept.
        call_with;
        /// Runs an operation that already returns this crate's [`Error`](crate::Error) (an
        /// inner pattern of a pipeline): an inner timeout is a failure, an inner rejection is
        /// ignored, and errors pass through unchanged.
        execute;
    }

    /// A snapshot of the window and the counters.
    pub fn metrics(&self) -> ThrottleMetrics {
        let inner = &*self.inner;
        let bucket = inner.current_bucket();
        let window_requests = inner.requests.total(bucket);
        let window_accepts = inner.accepts.total(bucket);
        ThrottleMetrics {
            name: inner.name.to_string(),
            window: inner.config.window,
            window_requests,
            window_accepts,
            rejection_probability: probability(window_requests, window_accepts, &inner.config),
            total_requests: inner.total_requests.load(Ordering::Relaxed),
            total_throttled: inner.throttled.load(Ordering::Relaxed),
            total_failures: inner.failures.load(Ordering::Relaxed),
        }
    }

    /// This throttle's own listeners; events also reach
    /// [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl Inner {
    /// Counts an admitted request in `bucket` and makes its permit.
    #[inline]
    fn admit(&self, this: &Arc<Self>, bucket: u64) -> Permit {
        self.requests.add(bucket, 1);
        self.total_requests.fetch_add(1, Ordering::Relaxed);
        self.instruments.admitted();
        Permit {
            inner: Arc::clone(this),
            bucket,
            done: false,
        }
    }

    /// The bucket holding now.
    fn current_bucket(&self) -> u64 {
        self.clock.nanos() / self.bucket_nanos
    }
}

impl fmt::Debug for AdaptiveThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Decides at once; a throttled request is refused with
/// [`RejectionReason::Throttled`].
impl Stage for AdaptiveThrottle {
    type Permit = Permit;

    fn admit(&self) -> Admit<Permit> {
        Admit::ready(self.try_acquire())
    }

    fn name(&self) -> &str {
        &self.inner.name
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::Throttle
    }
}

crate::registry::registered!(AdaptiveThrottle: ThrottleConfig => ThrottleMetrics);

/// A request the [`AdaptiveThrottle`] let through; tell it how the backend answered.
///
/// [`failure`](Self::failure) (the backend refused or failed the request) is the only answer
/// that counts against the backend. A [`success`](Self::success), an
/// [`ignore`](Self::ignore)d outcome (the request's own fault, such as a 404) and a permit
/// dropped without an answer (a cancelled call) all count as accepted: none of them says the
/// backend is overloaded.
#[must_use = "dropping the permit counts the request as accepted by the backend"]
pub struct Permit {
    inner: Arc<Inner>,
    /// The bucket the request was counted in; its accept goes to the same one.
    bucket: u64,
    done: bool,
}

impl Permit {
    crate::classify::outcome_shortcuts!();

    /// Reports `outcome`: a success is a request the backend accepted; a failure one it did
    /// not (refused, failed, timed out); an ignored outcome counts as accepted.
    pub fn record(mut self, outcome: Outcome) {
        self.done = true;
        match outcome {
            Outcome::Failure => {
                self.inner.failures.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Success | Outcome::Ignored => self.inner.accepts.add(self.bucket, 1),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.inner.accepts.add(self.bucket, 1);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("throttle", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl StagePermit for Permit {
    /// Whether the backend accepted the call is what the throttle learns from.
    fn wants_outcome(&self) -> bool {
        true
    }

    fn record(self, outcome: Outcome) {
        Self::record(self, outcome);
    }
}
