//! [`Chaos`]: the async shell that applies the injections decided by the pure core.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::state::{decide, Injections};
use super::{ChaosBuilder, ChaosConfig, ChaosEvent, ChaosMetrics};
use crate::events::{Emitter, EventBus};
use crate::random::SplitMix;
use crate::tally::ResettableTally;
use crate::{ConfigError, Error};

/// The behaviour hook, boxed once at build time.
pub(super) type Behavior = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The functions that make faults, outcomes and behaviours.
pub(super) struct Hooks<T, E> {
    pub(super) fault: Option<Arc<dyn Fn() -> E + Send + Sync>>,
    pub(super) outcome: Option<Arc<dyn Fn() -> T + Send + Sync>>,
    pub(super) behavior: Option<Behavior>,
}

impl<T, E> Default for Hooks<T, E> {
    fn default() -> Self {
        Self {
            fault: None,
            outcome: None,
            behavior: None,
        }
    }
}

/// Injects faults, outcomes, latency and behaviours into a share of calls, to test how a
/// system copes with a misbehaving dependency.
///
/// `T` and `E` are the operation's response and error types (what injected outcomes and
/// faults are). Cheap to clone; clones share the switch, the generator, the counters and the
/// listeners. See the [module docs](super).
pub struct Chaos<T, E> {
    inner: Arc<Inner<T, E>>,
}

struct Inner<T, E> {
    name: Arc<str>,
    enabled: AtomicBool,
    config: ChaosConfig,
    hooks: Hooks<T, E>,
    generator: SplitMix,
    /// Counted per thread: a call writes no shared counter of ours.
    counts: ResettableTally<6>,
    emitter: Emitter,
}

/// Which count of [`Inner::counts`] is which: calls decided, then each kind of injection,
/// then the latency injected in nanoseconds (saturating).
const CALLS: usize = 0;
const FAULTS: usize = 1;
const OUTCOMES: usize = 2;
const LATENCIES: usize = 3;
const BEHAVIORS: usize = 4;
const LATENCY_NANOS: usize = 5;

impl<T, E> Clone for Chaos<T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T, E> Chaos<T, E> {
    /// Starts building a chaos instance named `name`; it injects nothing until given rates.
    pub fn builder(name: impl Into<String>) -> ChaosBuilder<T, E> {
        ChaosBuilder::new(name.into())
    }

    /// An instance from a plain config, validated the same way as the builder's. Only
    /// latency can be injected this way: faults, outcomes and behaviours need their functions
    /// ([`builder`](Self::builder)).
    pub fn from_config(name: impl Into<String>, config: ChaosConfig) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    pub(super) fn new_validated(name: &str, config: ChaosConfig, hooks: Hooks<T, E>) -> Self {
        let name: Arc<str> = Arc::from(name.trim());
        Self {
            inner: Arc::new(Inner {
                emitter: Emitter::new(Arc::clone(&name)),
                name,
                enabled: AtomicBool::new(config.enabled),
                generator: SplitMix::new(config.seed),
                config,
                hooks,
                counts: ResettableTally::new(),
            }),
        }
    }

    /// The instance's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration, with the switch as it is now.
    pub fn config(&self) -> ChaosConfig {
        ChaosConfig {
            enabled: self.is_enabled(),
            ..self.inner.config
        }
    }

    /// Whether it injects now.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Turns injection on or off at run time, for every clone at once. Off, a call costs one
    /// relaxed atomic load and a branch, and nothing is counted.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Decides what one call gets, from the instance's seeded generator (one draw per
    /// configured injection), without running anything: [`call`](Self::call) is `roll` then
    /// [`run`](Self::run). [`Injections::NONE`] when disabled.
    #[inline]
    pub fn roll(&self) -> Injections {
        if !self.is_enabled() {
            return Injections::NONE;
        }
        let generator = &self.inner.generator;
        self.decide(|| generator.next_unit())
    }

    /// Decides what one call gets from draws the caller supplies: `draw` is called once per
    /// configured injection, in the order latency, behaviour, fault, outcome, and must return
    /// numbers in `[0, 1)`; an injection fires when its draw is below its rate.
    ///
    /// For decisions that are a function of the call itself rather than of the order calls
    /// arrive in (a request id hashed to a number, say), so concurrent runs are reproducible
    /// too. [`Injections::NONE`] when disabled.
    pub fn roll_with(&self, draw: impl FnMut() -> f64) -> Injections {
        if !self.is_enabled() {
            return Injections::NONE;
        }
        self.decide(draw)
    }

    fn decide(&self, draw: impl FnMut() -> f64) -> Injections {
        self.inner.counts.add(CALLS);
        decide(&self.inner.config, draw)
    }

    /// Runs `operation` with chaos: decides with [`roll`](Self::roll), then
    /// [`run`](Self::run)s.
    ///
    /// The decision is made when `call` is called, not when the future is first polled. A
    /// call that gets no injection is `operation`'s own future, mapped: no allocation, and
    /// when disabled one atomic load more than the bare call. A call that gets one runs in a
    /// boxed future (it may sleep; keeping the timer out of the common path keeps that path
    /// small).
    pub fn call<'a, F, Fut>(
        &'a self,
        operation: F,
    ) -> Call<Fut, impl Future<Output = Result<T, Error<E>>> + use<'a, T, E, F, Fut>>
    where
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<T, E>> + 'a,
    {
        let injections = self.roll();
        if injections.is_none() {
            return Call {
                direct: Some(operation()),
                injected: None,
            };
        }
        Call {
            direct: None,
            injected: Some(Box::pin(self.run(injections, operation))),
        }
    }

    /// Runs `operation` with the injections given, in this order: the delay, the behaviour
    /// hook, then a fault (`Err(Error::Inner(fault))`) or an outcome (`Ok(outcome)`)
    /// *instead of* the operation, else the operation. Injections whose function is missing
    /// are skipped.
    pub async fn run<F, Fut>(&self, injections: Injections, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.execute_with(injections, || async move {
            operation().await.map_err(Error::Inner)
        })
        .await
    }

    /// [`call`](Self::call) for an operation that already returns this crate's [`Error`],
    /// such as an inner pattern of a pipeline; its errors pass through unchanged.
    pub async fn execute<F, Fut>(&self, operation: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        let injections = self.roll();
        if injections.is_none() {
            return operation().await;
        }
        Box::pin(self.execute_with(injections, operation)).await
    }

    /// [`run`](Self::run) for an operation that already returns this crate's [`Error`].
    pub async fn execute_with<F, Fut>(
        &self,
        injections: Injections,
        operation: F,
    ) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error<E>>>,
    {
        if injections.is_none() {
            return operation().await;
        }
        let inner = &*self.inner;
        if let Some(latency) = injections.latency {
            let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
            inner
                .counts
                .add_with_amount(LATENCIES, LATENCY_NANOS, nanos);
            inner
                .emitter
                .emit(|| ChaosEvent::LatencyInjected { latency });
            tokio::time::sleep(latency).await;
        }
        if let (true, Some(behavior)) = (injections.behavior, &inner.hooks.behavior) {
            inner.counts.add(BEHAVIORS);
            inner.emitter.emit(|| ChaosEvent::BehaviorInjected);
            behavior().await;
        }
        if let (true, Some(fault)) = (injections.fault, &inner.hooks.fault) {
            inner.counts.add(FAULTS);
            tracing::debug!(target: "resilience::chaos", chaos = %inner.name, "fault injected");
            inner.emitter.emit(|| ChaosEvent::FaultInjected);
            return Err(Error::Inner(fault()));
        }
        if let (true, Some(outcome)) = (injections.outcome, &inner.hooks.outcome) {
            inner.counts.add(OUTCOMES);
            tracing::debug!(target: "resilience::chaos", chaos = %inner.name, "outcome injected");
            inner.emitter.emit(|| ChaosEvent::OutcomeInjected);
            return Ok(outcome());
        }
        operation().await
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> ChaosMetrics {
        let inner = &*self.inner;
        let counts = inner.counts.counts();
        ChaosMetrics {
            name: inner.name.to_string(),
            enabled: self.is_enabled(),
            total_calls: counts[CALLS],
            faults_injected: counts[FAULTS],
            outcomes_injected: counts[OUTCOMES],
            latencies_injected: counts[LATENCIES],
            behaviors_injected: counts[BEHAVIORS],
            total_injected_latency: Duration::from_nanos(counts[LATENCY_NANOS]),
        }
    }

    /// Sets every counter back to zero.
    pub fn reset_metrics(&self) {
        self.inner.counts.reset();
    }

    /// This instance's own listeners; events also reach
    /// [`events::global()`](crate::events::global).
    pub fn events(&self) -> &EventBus {
        self.inner.emitter.local()
    }
}

impl<T, E> fmt::Debug for Chaos<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("name", &self.inner.name)
            .field("config", &self.config())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Chaos::call`]: the operation's own future when nothing is injected,
    /// else a boxed run with the injections.
    pub struct Call<Direct, Injected> {
        #[pin]
        direct: Option<Direct>,
        injected: Option<Pin<Box<Injected>>>,
    }
}

impl<Direct, Injected> fmt::Debug for Call<Direct, Injected> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("injected", &self.injected.is_some())
            .finish_non_exhaustive()
    }
}

impl<Direct, Injected, T, E> Future for Call<Direct, Injected>
where
    Direct: Future<Output = Result<T, E>>,
    Injected: Future<Output = Result<T, Error<E>>>,
{
    type Output = Result<T, Error<E>>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        if let Some(injected) = this.injected {
            return injected.as_mut().poll(cx);
        }
        match this.direct.as_pin_mut() {
            Some(direct) => direct.poll(cx).map_err(Error::Inner),
            None => panic!("chaos::Call polled after completion"),
        }
    }
}
