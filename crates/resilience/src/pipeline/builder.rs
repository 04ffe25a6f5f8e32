//! [`PipelineBuilder`]: picks the patterns of a [`Pipeline`]; their order is fixed.

use std::fmt;
use std::sync::Arc;

use super::Pipeline;
use crate::circuit_breaker::CircuitBreaker;
use crate::classify::Classifier;
use crate::config::check;
use crate::fallback::Fallback;
use crate::retry::{Retry, RetryRules};
use crate::stage::Stage;
use crate::timeout::Timeout;
use crate::ConfigError;

impl<T, E> Pipeline<T, E> {
    /// Starts a pipeline named `name` (used in reports of panicking predicates) with no
    /// pattern at all: each setter adds one, in any order; the order they run in is fixed.
    pub fn builder(name: impl Into<String>) -> PipelineBuilder<T, E> {
        PipelineBuilder {
            name: name.into(),
            fallback: None,
            retry: None,
            retry_rules: RetryRules::new(),
            breaker: None,
            classifier: Classifier::new(),
            rate_limiter: (),
            timeout: None,
            bulkhead: (),
        }
    }
}

/// Builds a [`Pipeline`]. `L` and `B` are the admission controls of the rate-limiter and
/// bulkhead slots (`()` when unused, which costs nothing).
#[must_use]
pub struct PipelineBuilder<T, E, L = (), B = ()> {
    name: String,
    fallback: Option<Fallback<T, E>>,
    retry: Option<Retry>,
    retry_rules: RetryRules<T, E>,
    breaker: Option<CircuitBreaker>,
    classifier: Classifier<T, E>,
    rate_limiter: L,
    timeout: Option<Timeout>,
    bulkhead: B,
}

impl<T, E, L, B> PipelineBuilder<T, E, L, B> {
    /// The outermost layer: answers when everything inside failed.
    pub fn fallback(mut self, fallback: Fallback<T, E>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Retries attempts through the circuit breaker and everything inside it.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// What the retry retries (default: every error, but never an inner circuit-breaker or
    /// rate-limiter rejection).
    pub fn retry_rules(mut self, rules: RetryRules<T, E>) -> Self {
        self.retry_rules = rules;
        self
    }

    /// Guards each attempt with a circuit breaker.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// What counts as a failure for the circuit breaker and adaptive limiters (default: every
    /// `Err`).
    pub fn classifier(mut self, classifier: Classifier<T, E>) -> Self {
        self.classifier = classifier;
        self
    }

    /// Bounds each attempt, including its wait for a bulkhead slot.
    pub fn timeout(mut self, timeout: Timeout) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The admission control outside the timeout: a rate limiter, or any [`Stage`] (a
    /// pair admits through both).
    pub fn rate_limiter<L2: Stage>(self, rate_limiter: L2) -> PipelineBuilder<T, E, L2, B> {
        PipelineBuilder {
            name: self.name,
            fallback: self.fallback,
            retry: self.retry,
            retry_rules: self.retry_rules,
            breaker: self.breaker,
            classifier: self.classifier,
            rate_limiter,
            timeout: self.timeout,
            bulkhead: self.bulkhead,
        }
    }

    /// The admission control inside the timeout, right around the call: a bulkhead, load
    /// shedder, backpressure or adaptive limiter, or a pair of them.
    pub fn bulkhead<B2: Stage>(self, bulkhead: B2) -> PipelineBuilder<T, E, L, B2> {
        PipelineBuilder {
            name: self.name,
            fallback: self.fallback,
            retry: self.retry,
            retry_rules: self.retry_rules,
            breaker: self.breaker,
            classifier: self.classifier,
            rate_limiter: self.rate_limiter,
            timeout: self.timeout,
            bulkhead,
        }
    }

    /// Checks the name and builds the pipeline.
    pub fn build(self) -> Result<Pipeline<T, E, L, B>, ConfigError> {
        check::name(&self.name)?;
        Ok(Pipeline {
            name: Arc::from(self.name.trim()),
            fallback: self.fallback,
            retry: self.retry,
            retry_rules: self.retry_rules,
            breaker: self.breaker,
            classifier: self.classifier,
            rate_limiter: self.rate_limiter,
            timeout: self.timeout,
            bulkhead: self.bulkhead,
        })
    }
}

impl<T, E, L, B> fmt::Debug for PipelineBuilder<T, E, L, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
