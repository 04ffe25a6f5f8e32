//! [`Pipeline`]: one `call` through every configured pattern, in the documented order.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::chaos::Chaos;
use crate::circuit_breaker::CircuitBreaker;
use crate::classify::{judge_nested, Classifier, Outcome};
use crate::fallback::Fallback;
use crate::hedge::Hedge;
use crate::retry::{Retry, RetryRules};
use crate::stage::{self, Stage, StagePermit};
use crate::timeout::Timeout;
use crate::{Error, PatternKind};

/// Patterns composed around one kind of operation (returning `Result<T, E>`), outermost first:
/// fallback, retry, circuit breaker (`K`), rate limiter (`L`), timeout, bulkhead (`B`), chaos.
///
/// Built with [`Pipeline::builder`]; see the [module docs](super) for why this order. Cheap to
/// share behind an `Arc`; the patterns inside are handles whose clones share state, so the
/// same breaker may also serve other pipelines.
pub struct Pipeline<T, E, L = (), B = (), K = CircuitBreaker> {
    pub(super) name: Arc<str>,
    pub(super) fallback: Option<Fallback<T, E>>,
    pub(super) retry: Option<Retry>,
    pub(super) retry_rules: RetryRules<T, E>,
    pub(super) hedge: Option<Hedge>,
    pub(super) breaker: Option<K>,
    pub(super) classifier: Classifier<T, E>,
    pub(super) rate_limiter: L,
    pub(super) timeout: Option<Timeout>,
    pub(super) bulkhead: B,
    pub(super) chaos: Option<Chaos<T, E>>,
    /// No rate limiter, bulkhead or chaos: inside the breaker, an attempt is the timeout
    /// around the operation alone (the empty stages would admit at once and learn nothing).
    pub(super) bare: bool,
}

impl<T, E, L, B, K> Pipeline<T, E, L, B, K>
where
    L: Stage,
    B: Stage,
    K: Stage,
    E: fmt::Display,
{
    /// Runs `operation` through the stack. `operation` may be called several times (once per
    /// retry attempt), so it is `Fn`; each call must start a fresh attempt.
    ///
    /// Dropping the returned future cancels whatever is running (an attempt, a wait for a
    /// slot, a backoff sleep) and releases every slot and probe it holds.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep its arguments twice (as passed and as bound), in every call's future"
    )]
    pub fn call<F, Fut>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<T, Error<E>>> + use<'_, T, E, L, B, K, F, Fut>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        async move {
            // The retry and the attempt are awaited here, and the fallback answers for their
            // result here too, rather than through closures and the fallback's own future:
            // fewer state machines between the caller and the attempt.
            let result = {
                let attempt = || self.attempt(&operation);
                match &self.retry {
                    None => attempt().await,
                    Some(retry) => retry.execute_with(&self.retry_rules, attempt).await,
                }
            };
            let Some(fallback) = &self.fallback else {
                return result;
            };
            match fallback.settle(result) {
                Ok(answer) => answer,
                // The error moves straight into the chain's future: nothing of the result is
                // kept beside it.
                Err(primary) => fallback.recover(primary).await,
            }
        }
    }

    /// One attempt of the retry: a race of hedged attempts, each through the breaker and
    /// everything inside it, or a single one.
    async fn attempt<F, Fut>(&self, operation: &F) -> Result<T, Error<E>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // The unhedged attempt goes through the breaker here rather than through `guarded`:
        // one state machine less on every call of a pipeline without hedging.
        match (&self.hedge, &self.breaker) {
            (Some(hedge), _) => {
                hedge
                    .execute_with(&self.classifier, |_| self.guarded(operation))
                    .await
            }
            (None, Some(breaker)) => {
                stage::execute(breaker, &self.classifier, || self.limited(operation)).await
            }
            (None, None) => self.limited(operation).await,
        }
    }

    /// One hedged attempt: circuit breaker around the rest.
    async fn guarded<F, Fut>(&self, operation: &F) -> Result<T, Error<E>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match &self.breaker {
            Some(breaker) => {
                stage::execute(breaker, &self.classifier, || self.limited(operation)).await
            }
            None => self.limited(operation).await,
        }
    }

    /// Rate limiter around the timeout.
    async fn limited<F, Fut>(&self, operation: &F) -> Result<T, Error<E>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Without stages or chaos, the operation goes straight into the timeout: no
        // state machine of `isolated` around it.
        if self.bare {
            return match &self.timeout {
                Some(timeout) => timeout.call(operation).await,
                None => operation().await.map_err(Error::Inner),
            };
        }
        // A ready answer is taken without an await; a wait is awaited through its box alone,
        // so this future does not carry a whole answer (room for a rejection) across the await.
        let permit = match self.rate_limiter.admit().permit_or_wait()? {
            Ok(permit) => permit,
            Err(waiting) => waiting.await?,
        };
        let result = match &self.timeout {
            Some(timeout) => timeout.execute(|| self.isolated(operation)).await,
            None => self.isolated(operation).await,
        };
        self.complete(permit, result)
    }

    /// Bulkhead around the call itself.
    async fn isolated<F, Fut>(&self, operation: &F) -> Result<T, Error<E>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = match self.bulkhead.admit().permit_or_wait()? {
            Ok(permit) => permit,
            Err(waiting) => waiting.await?,
        };
        let result = match &self.chaos {
            Some(chaos) => chaos.call(operation).await,
            None => operation().await.map_err(Error::Inner),
        };
        self.complete(permit, result)
    }

    /// Tells an admission permit how the call went, if it learns from outcomes (adaptive
    /// limiters do); judging runs the classifier's user code, so it is skipped otherwise.
    fn complete<P: StagePermit>(
        &self,
        permit: P,
        result: Result<T, Error<E>>,
    ) -> Result<T, Error<E>> {
        if !permit.wants_outcome() {
            return result;
        }
        // A panicking predicate is reported under the breaker's kind: the classifier is the
        // one the pipeline's breaker uses.
        let (outcome, result): (Outcome, _) = judge_nested(
            &self.classifier,
            result,
            PatternKind::CircuitBreaker,
            &self.name,
        );
        permit.record(outcome);
        result
    }
}

impl<T, E, L: fmt::Debug, B: fmt::Debug, K: Stage> fmt::Debug for Pipeline<T, E, L, B, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("fallback", &self.fallback.as_ref().map(Fallback::name))
            .field("retry", &self.retry.as_ref().map(Retry::name))
            .field("hedge", &self.hedge.as_ref().map(Hedge::name))
            .field("circuit_breaker", &self.breaker.as_ref().map(Stage::name))
            .field("rate_limiter", &self.rate_limiter)
            .field("timeout", &self.timeout.as_ref().map(Timeout::name))
            .field("bulkhead", &self.bulkhead)
            .field("chaos", &self.chaos.as_ref().map(Chaos::name))
            .finish()
    }
}
