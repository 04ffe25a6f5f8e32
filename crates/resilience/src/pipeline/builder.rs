//! [`PipelineBuilder`]: picks the patterns of a [`Pipeline`]; their order is fixed.

use std::fmt;
use std::sync::Arc;

use super::Pipeline;
use crate::chaos::Chaos;
use crate::circuit_breaker::CircuitBreaker;
use crate::classify::Classifier;
use crate::config::check;
use crate::fallback::Fallback;
use crate::hedge::Hedge;
use crate::retry::{Retry, RetryRules};
use crate::stage::Stage;
use crate::timeout::Timeout;
use crate::ConfigError;

impl<T, E> Pipeline<T, E> {
    /// Starts a pipeline named `name` (used in reports of panicking predicates) with no
    /// pattern at all: each setter adds one, in any order; the order they run in is fixed.
    pub fn builder(name: impl Into<String>) -> PipelineBuilder<T, E> {
        PipelineBuilder {
            common: Common {
                name: name.into(),
                fallback: None,
                retry: None,
                retry_rules: RetryRules::new(),
                hedge: None,
                classifier: Classifier::new(),
                timeout: None,
                chaos: None,
                admission: false,
            },
            breaker: None,
            rate_limiter: (),
            bulkhead: (),
        }
    }
}

/// Builds a [`Pipeline`]. `L` and `B` are the stages of the rate-limiter and bulkhead slots
/// (`()` when unused, which costs nothing); `K` is the circuit breaker, local by default.
#[must_use]
pub struct PipelineBuilder<T, E, L = (), B = (), K = CircuitBreaker> {
    common: Common<T, E>,
    breaker: Option<K>,
    rate_limiter: L,
    bulkhead: B,
}

/// The parts whose types do not change while building.
struct Common<T, E> {
    name: String,
    fallback: Option<Fallback<T, E>>,
    retry: Option<Retry>,
    retry_rules: RetryRules<T, E>,
    hedge: Option<Hedge>,
    classifier: Classifier<T, E>,
    timeout: Option<Timeout>,
    chaos: Option<Chaos<T, E>>,
    /// Whether the rate-limiter or bulkhead slot was filled: until then both are `()`.
    admission: bool,
}

impl<T, E, L, B, K> PipelineBuilder<T, E, L, B, K> {
    /// The outermost layer: answers when everything inside failed.
    pub fn fallback(mut self, fallback: Fallback<T, E>) -> Self {
        self.common.fallback = Some(fallback);
        self
    }

    /// Retries attempts through the circuit breaker and everything inside it.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.common.retry = Some(retry);
        self
    }

    /// What the retry retries (default: every error, but never an inner circuit-breaker or
    /// rate-limiter rejection).
    pub fn retry_rules(mut self, rules: RetryRules<T, E>) -> Self {
        self.common.retry_rules = rules;
        self
    }

    /// Races extra attempts against a slow one, inside the retry and outside the circuit
    /// breaker: each hedged attempt goes through the breaker and everything inside it on its
    /// own (the timeout bounds each attempt, not the race), and the retry starts a new race
    /// only when every attempt of the last one failed. What the hedge accepts is what the
    /// [`classifier`](Self::classifier) does not call a failure.
    pub fn hedge(mut self, hedge: Hedge) -> Self {
        self.common.hedge = Some(hedge);
        self
    }

    /// Guards each attempt with a circuit breaker: a local [`CircuitBreaker`], or any
    /// breaker that is a [`Stage`] (such as one sharing its state through Redis).
    pub fn circuit_breaker<K2: Stage>(self, breaker: K2) -> PipelineBuilder<T, E, L, B, K2> {
        PipelineBuilder {
            common: self.common,
            breaker: Some(breaker),
            rate_limiter: self.rate_limiter,
            bulkhead: self.bulkhead,
        }
    }

    /// What counts as a failure for the circuit breaker and adaptive limiters (default: every
    /// `Err`).
    pub fn classifier(mut self, classifier: Classifier<T, E>) -> Self {
        self.common.classifier = classifier;
        self
    }

    /// Bounds each attempt, including its wait for a bulkhead slot.
    pub fn timeout(mut self, timeout: Timeout) -> Self {
        self.common.timeout = Some(timeout);
        self
    }

    /// The innermost layer, right around the operation (inside the bulkhead): injected
    /// faults, outcomes and delays look to every other pattern like the dependency's own.
    pub fn chaos(mut self, chaos: Chaos<T, E>) -> Self {
        self.common.chaos = Some(chaos);
        self
    }

    /// The admission control outside the timeout: a rate limiter, or any [`Stage`] (a
    /// pair admits through both).
    pub fn rate_limiter<L2: Stage>(mut self, rate_limiter: L2) -> PipelineBuilder<T, E, L2, B, K> {
        self.common.admission = true;
        PipelineBuilder {
            common: self.common,
            breaker: self.breaker,
            rate_limiter,
            bulkhead: self.bulkhead,
        }
    }

    /// The admission control inside the timeout, right around the call: a bulkhead, load
    /// shedder, backpressure or adaptive limiter, or a pair of them.
    pub fn bulkhead<B2: Stage>(mut self, bulkhead: B2) -> PipelineBuilder<T, E, L, B2, K> {
        self.common.admission = true;
        PipelineBuilder {
            common: self.common,
            breaker: self.breaker,
            rate_limiter: self.rate_limiter,
            bulkhead,
        }
    }

    /// Checks the name and builds the pipeline.
    pub fn build(self) -> Result<Pipeline<T, E, L, B, K>, ConfigError> {
        let common = self.common;
        check::name(&common.name)?;
        Ok(Pipeline {
            bare: !common.admission && common.chaos.is_none(),
            name: Arc::from(common.name.trim()),
            fallback: common.fallback,
            retry: common.retry,
            retry_rules: common.retry_rules,
            hedge: common.hedge,
            breaker: self.breaker,
            classifier: common.classifier,
            rate_limiter: self.rate_limiter,
            timeout: common.timeout,
            bulkhead: self.bulkhead,
            chaos: common.chaos,
        })
    }
}

impl<T, E, L, B, K> fmt::Debug for PipelineBuilder<T, E, L, B, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("name", &self.common.name)
            .finish_non_exhaustive()
    }
}
