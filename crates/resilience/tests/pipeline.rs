//! The pipeline: the documented order proven by the events it emits, what each layer sees of
//! the others, and cancellation at random points leaving nothing running or held.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::classify::Outcome;
use resilience::events;
use resilience::pipeline::Pipeline;
use resilience::retry::Backoff;
use resilience::stage::{Admit, Stage, StagePermit};
use resilience::{Error, Fallback, PatternKind, Rejection, RejectionReason, Retry, Timeout};
use resilience_testkit::EventRecorder;

type Failure = std::io::Error;

fn failure() -> Failure {
    std::io::Error::other("upstream down")
}

fn retry(name: &str, attempts: u32) -> Retry {
    Retry::builder(name)
        .max_attempts(attempts)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_order_shows_in_the_events() {
    let name = "order";
    let recorder = EventRecorder::attach(events::global());
    let pipeline = Pipeline::<&str, Failure>::builder(name)
        .fallback(Fallback::builder(name).value("cached").build().unwrap())
        .retry(retry(name, 5))
        .circuit_breaker(
            CircuitBreaker::builder(name)
                .failure_threshold(2)
                .build()
                .unwrap(),
        )
        .timeout(
            Timeout::builder(name)
                .limit(Duration::from_secs(1))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();

    let calls = AtomicU32::new(0);
    let answer = pipeline
        .call(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(failure())
        })
        .await
        .unwrap();
    recorder.detach(events::global());

    assert_eq!(answer, "cached");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the open circuit stopped the retries"
    );
    // Two failures open the circuit; the third attempt is rejected by the breaker, which the
    // retry does not retry; the fallback answers last, from outside everything.
    assert_eq!(
        recorder.names_from(name),
        [
            "timeout_success",
            "call_failure",
            "retry_attempt",
            "timeout_success",
            "call_failure",
            "state_change",
            "circuit_opened",
            "retry_attempt",
            "call_rejected",
            "fallback_triggered",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_inside_the_breaker_is_a_failure() {
    let breaker = CircuitBreaker::builder("slow")
        .failure_threshold(2)
        .build()
        .unwrap();
    let pipeline = Pipeline::<(), Failure>::builder("slow")
        .circuit_breaker(breaker.clone())
        .timeout(Timeout::new(Duration::from_millis(50)).unwrap())
        .build()
        .unwrap();
    for _ in 0..2 {
        let error = pipeline
            .call(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(error.is_timeout());
    }
    assert_eq!(breaker.state(), CircuitState::Open);
}

/// An admission control for tests: refuses when told to, counts permits held and outcomes.
#[derive(Debug, Clone, Default)]
struct Gate {
    refuse: Arc<Mutex<bool>>,
    held: Arc<AtomicI64>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
}

#[derive(Debug)]
struct GatePermit(Gate);

impl Stage for Gate {
    type Permit = GatePermit;

    fn admit(&self) -> Admit<GatePermit> {
        if *self.refuse.lock().unwrap() {
            return Admit::rejected(Rejection::new(
                PatternKind::Bulkhead,
                Arc::from("gate"),
                RejectionReason::CapacityFull,
                None,
            ));
        }
        let gate = self.clone();
        Admit::waiting(async move {
            tokio::task::yield_now().await; // a real await point to cancel at
            gate.held.fetch_add(1, Ordering::SeqCst);
            Ok(GatePermit(gate))
        })
    }

    fn name(&self) -> &str {
        "gate"
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::Bulkhead
    }
}

impl StagePermit for GatePermit {
    fn wants_outcome(&self) -> bool {
        true
    }

    fn record(self, outcome: Outcome) {
        self.0.outcomes.lock().unwrap().push(outcome);
    }
}

impl Drop for GatePermit {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn an_inner_rejection_is_ignored_by_the_breaker_and_outcomes_reach_the_permit() {
    let gate = Gate::default();
    let breaker = CircuitBreaker::builder("gated")
        .failure_threshold(1)
        .build()
        .unwrap();
    let pipeline = Pipeline::<u32, Failure>::builder("gated")
        .circuit_breaker(breaker.clone())
        .bulkhead(gate.clone())
        .build()
        .unwrap();

    *gate.refuse.lock().unwrap() = true;
    for _ in 0..3 {
        let error = pipeline.call(|| async { Ok(1) }).await.unwrap_err();
        assert_eq!(
            error.rejection().unwrap().reason(),
            RejectionReason::CapacityFull
        );
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "a full bulkhead is not a failure"
    );
    assert_eq!(breaker.metrics().ignored_requests, 3);

    *gate.refuse.lock().unwrap() = false;
    assert_eq!(pipeline.call(|| async { Ok(7) }).await.unwrap(), 7);
    let _ = pipeline.call(|| async { Err(failure()) }).await;
    assert_eq!(
        *gate.outcomes.lock().unwrap(),
        [Outcome::Success, Outcome::Failure]
    );
    assert_eq!(gate.held.load(Ordering::SeqCst), 0);
}

/// Cancelling pipeline calls at seeded random points (waiting for admission, running, in a
/// retry's backoff) leaves no attempt running, no permit held and no probe taken, and no
/// attempt starts after its call was dropped.
#[tokio::test(start_paused = true)]
async fn cancellation_at_random_points_leaves_nothing_running() {
    let mut rng = fastrand::Rng::with_seed(7);
    let gate = Gate::default();
    let breaker = CircuitBreaker::builder("cancel")
        .failure_threshold(1_000)
        .build()
        .unwrap();
    let pipeline = Arc::new(
        Pipeline::<(), Failure>::builder("cancel")
            .retry(retry("cancel", 4))
            .circuit_breaker(breaker.clone())
            .timeout(Timeout::new(Duration::from_millis(30)).unwrap())
            .bulkhead(gate.clone())
            .build()
            .unwrap(),
    );
    let running = Arc::new(AtomicI64::new(0));
    let started = Arc::new(AtomicU32::new(0));

    struct Running(Arc<AtomicI64>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    for _round in 0..100 {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (pipeline, running, started) = (
                    Arc::clone(&pipeline),
                    Arc::clone(&running),
                    Arc::clone(&started),
                );
                let work = Duration::from_millis(rng.u64(0..50));
                let fails = rng.bool();
                tokio::spawn(async move {
                    pipeline
                        .call(|| {
                            let (running, started) = (Arc::clone(&running), Arc::clone(&started));
                            async move {
                                started.fetch_add(1, Ordering::SeqCst);
                                running.fetch_add(1, Ordering::SeqCst);
                                let _guard = Running(running);
                                tokio::time::sleep(work).await;
                                if fails {
                                    Err(failure())
                                } else {
                                    Ok(())
                                }
                            }
                        })
                        .await
                })
            })
            .collect();
        tokio::time::advance(Duration::from_millis(rng.u64(0..40))).await;
        for task in &tasks {
            if rng.u8(0..3) == 0 {
                task.abort();
            }
        }
        for task in tasks {
            let _ = task.await;
        }
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "an attempt is still running"
        );
        assert_eq!(
            gate.held.load(Ordering::SeqCst),
            0,
            "a permit is still held"
        );
        let before = started.load(Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            before,
            "an attempt started after its call ended"
        );
    }
    assert_eq!(breaker.metrics().half_open_calls, 0);
}

/// An adaptive limiter in the bulkhead slot learns from every outcome (its permit asks for
/// them), and a pair fills one slot with two limiters.
#[tokio::test(start_paused = true)]
async fn an_adaptive_limiter_in_the_pipeline_learns_from_outcomes() {
    let adaptive = resilience::AdaptiveLimiter::builder("learner")
        .build()
        .unwrap();
    let gate = Gate::default();
    let pipeline = Pipeline::<u32, Failure>::builder("learner")
        .bulkhead((gate.clone(), adaptive.clone()))
        .build()
        .unwrap();
    pipeline.call(|| async { Ok(1) }).await.unwrap();
    let _ = pipeline.call(|| async { Err(failure()) }).await;
    let metrics = adaptive.metrics();
    assert_eq!((metrics.success_count, metrics.failure_count), (1, 1));
    assert_eq!(
        *gate.outcomes.lock().unwrap(),
        [Outcome::Success, Outcome::Failure]
    );
}

/// A pipeline without stages or chaos hands its operation straight to the timeout; with
/// empty stages filled in, it goes through them: the answers and the timeout's counts agree.
#[tokio::test(start_paused = true)]
async fn empty_stages_change_nothing_around_the_timeout() {
    let timeout = || Timeout::new(Duration::from_millis(50)).unwrap();
    let (bare_timeout, staged_timeout) = (timeout(), timeout());
    let bare = Pipeline::<u8, Failure>::builder("bare")
        .timeout(bare_timeout.clone())
        .build()
        .unwrap();
    let staged = Pipeline::<u8, Failure>::builder("staged")
        .rate_limiter(())
        .bulkhead(())
        .timeout(staged_timeout.clone())
        .build()
        .unwrap();
    answers_around_a_timeout(&bare, &bare_timeout).await;
    answers_around_a_timeout(&staged, &staged_timeout).await;
}

/// A success, an error and a timed-out call through `pipeline`, counted by its `timeout`.
async fn answers_around_a_timeout<L: Stage, B: Stage>(
    pipeline: &Pipeline<u8, Failure, L, B>,
    timeout: &Timeout,
) {
    assert_eq!(pipeline.call(|| async { Ok(1) }).await.unwrap(), 1);
    assert!(matches!(
        pipeline.call(|| async { Err(failure()) }).await,
        Err(Error::Inner(_))
    ));
    let slow = pipeline
        .call(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(2)
        })
        .await;
    assert!(slow.unwrap_err().is_timeout());
    let metrics = timeout.metrics();
    let counts = (
        metrics.successful_executions,
        metrics.failed_executions,
        metrics.timed_out_executions,
    );
    assert_eq!(counts, (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn an_empty_pipeline_just_calls() {
    let pipeline = Pipeline::<u8, Failure>::builder("empty").build().unwrap();
    assert_eq!(pipeline.call(|| async { Ok(3) }).await.unwrap(), 3);
    assert!(matches!(
        pipeline.call(|| async { Err(failure()) }).await,
        Err(Error::Inner(_))
    ));
    assert_eq!(
        Pipeline::<u8, Failure>::builder(" ")
            .build()
            .unwrap_err()
            .field(),
        "name"
    );
}

#[test]
fn flatten_removes_one_level_of_nesting() {
    let nested: Error<Error<&str>> = Error::Inner(Error::Inner("boom"));
    assert!(matches!(nested.flatten(), Error::Inner("boom")));
    let nested: Error<Error<&str>> = Error::Inner(Error::Timeout {
        elapsed: Duration::from_secs(1),
        limit: Duration::from_secs(1),
    });
    assert!(nested.flatten().is_timeout());
}

/// The same stack as tower middleware: `ServiceBuilder` with our layers, outermost first.
/// Each layer wraps its inner service's error in `Error`; `Error::flatten` undoes one level,
/// and the retry's rules see the inner `Error`, so they can leave rejections alone.
#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn the_same_stack_as_tower_layers() {
    use resilience::circuit_breaker::CircuitBreakerLayer;
    use resilience::retry::{RetryLayer, RetryRules};
    use resilience::timeout::TimeoutLayer;
    use tower::{ServiceBuilder, ServiceExt};

    let breaker = CircuitBreaker::builder("tower-stack")
        .failure_threshold(2)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let upstream = tower::service_fn(move |(): ()| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<u32, _>(failure()) }
    });
    let rules = RetryRules::<u32, Error<Failure>>::new().never_retry_if(Error::is_rejected);
    let service = ServiceBuilder::new()
        .map_err(Error::<Error<Failure>>::flatten)
        .layer(RetryLayer::new(retry("tower-stack", 5)).rules(rules))
        .map_err(Error::<Error<Failure>>::flatten)
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::new(
            Timeout::new(Duration::from_secs(1)).unwrap(),
        ))
        .service(upstream);

    let error = service.oneshot(()).await.unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the open circuit stopped the retries"
    );
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(
        error.rejection().map(Rejection::reason),
        Some(RejectionReason::CircuitOpen),
        "{error}"
    );
}
