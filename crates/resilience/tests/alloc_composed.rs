//! The paths the other allocation tests leave out allocate nothing either: a deadline's run
//! and scope, a timeout whose timer was armed (the operation pending once), a fallback and a
//! whole pipeline whose operation succeeds, and every pattern's tower layer around a service
//! that answers at once, each with no listener attached.
//!
//! Its own test binary, run without libtest (see `common/alloc.rs`): the allocator is
//! process-wide.
#![cfg(feature = "tower")]

mod common {
    pub(crate) mod alloc;
}

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::alloc::{allocations_in_rounds, ready, run};
use resilience::adaptive::{AdaptiveLayer, AdaptiveLimiter};
use resilience::backpressure::{Backpressure, BackpressureLayer};
use resilience::bulkhead::{Bulkhead, BulkheadLayer};
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerLayer};
use resilience::fallback::{Fallback, FallbackLayer};
use resilience::load_shed::{LoadShedder, LoadShedderLayer};
use resilience::pipeline::Pipeline;
use resilience::rate_limit::{DirectRateLimiter, Rate, RateLimitLayer};
use resilience::retry::{Retry, RetryLayer};
use resilience::throttle::{AdaptiveThrottle, ThrottleLayer};
use resilience::timeout::{Deadline, Timeout, TimeoutLayer};
use tower::{service_fn, Layer, Service};

/// A limiter that never runs out within a test.
fn fast_limiter() -> DirectRateLimiter {
    DirectRateLimiter::builder("hot")
        .rate(Rate::per_second(1_000_000_000))
        .build()
        .unwrap()
}

/// A runtime with a timer, entered: timeouts and deadlines need one to arm their timers.
fn timer_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// An operation that is pending on its first poll and ready with 1 on its second, so the
/// timer around it is armed.
fn pending_once() -> impl Future<Output = Result<u32, &'static str>> {
    let mut polled = false;
    poll_fn(move |cx| {
        if polled {
            Poll::Ready(Ok(1))
        } else {
            polled = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// Polls `future` until it is ready, at most twice.
fn twice<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..2 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("the future was expected to be ready on its second poll");
}

fn deadlines_allocate_nothing() {
    let runtime = timer_runtime();
    let _context = runtime.enter();
    let named = Deadline::after(Duration::from_secs(30)).named("request");
    let allocated = allocations_in_rounds(|| {
        let deadline = Deadline::after(Duration::from_secs(30));
        assert!(matches!(
            ready(deadline.run(async { Ok::<_, &str>(1) })),
            Ok(1)
        ));
        assert!(matches!(twice(named.run(pending_once())), Ok(1)));
        assert_eq!(ready(named.scope(async { 1 })), 1);
    });
    assert_eq!(allocated, 0, "allocations by deadline runs and scopes");
}

fn an_armed_timeout_allocates_nothing() {
    let runtime = timer_runtime();
    let _context = runtime.enter();
    let timeout = Timeout::new(Duration::from_secs(30)).unwrap();
    let allocated = allocations_in_rounds(|| {
        assert!(matches!(twice(timeout.call(pending_once)), Ok(1)));
    });
    assert_eq!(
        allocated, 0,
        "allocations by a timeout whose timer was armed"
    );
    assert_eq!(timeout.metrics().successful_executions, 1_010);
}

fn fallback_and_pipeline_successes_allocate_nothing() {
    let runtime = timer_runtime();
    let _context = runtime.enter();
    let fallback = Fallback::<u32, &str>::builder("hot")
        .value(0)
        .build()
        .unwrap();
    let pipeline = Pipeline::<u32, &str>::builder("hot")
        .fallback(Fallback::builder("hot").value(0).build().unwrap())
        .retry(Retry::builder("hot").build().unwrap())
        .circuit_breaker(CircuitBreaker::builder("hot").build().unwrap())
        .timeout(Timeout::new(Duration::from_secs(30)).unwrap())
        .rate_limiter(fast_limiter())
        .bulkhead(Bulkhead::builder("hot").max_concurrent(8).build().unwrap())
        .build()
        .unwrap();
    let allocated = allocations_in_rounds(|| {
        assert!(matches!(
            ready(fallback.call(|| async { Ok::<_, &str>(1) })),
            Ok(1)
        ));
        assert!(matches!(ready(pipeline.call(|| async { Ok(1) })), Ok(1)));
        assert!(matches!(twice(pipeline.call(pending_once)), Ok(1)));
    });
    assert_eq!(
        allocated, 0,
        "allocations by a fallback and a pipeline that succeed"
    );
}

/// Takes `service` through `poll_ready` and `call` for `request`, expecting its answer at
/// once.
fn through<S, R>(service: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("the service was expected to be ready"),
    }
    ready(service.call(request)).expect("the call was expected to succeed")
}

fn tower_layers_allocate_nothing() {
    let runtime = timer_runtime();
    let _context = runtime.enter();
    let answer = || service_fn(|n: u32| async move { Ok::<_, Infallible>(n) });
    let failing_answer = || service_fn(|n: u32| async move { Ok::<_, &str>(n) });

    let mut breaker =
        CircuitBreakerLayer::new(CircuitBreaker::builder("hot").build().unwrap()).layer(answer());
    let mut bulkhead =
        BulkheadLayer::new(Bulkhead::builder("hot").build().unwrap()).layer(answer());
    let mut backpressure =
        BackpressureLayer::new(Backpressure::builder("hot").build().unwrap()).layer(answer());
    let mut shedder =
        LoadShedderLayer::new(LoadShedder::builder("hot").build().unwrap()).layer(answer());
    let mut adaptive =
        AdaptiveLayer::new(AdaptiveLimiter::builder("hot").build().unwrap()).layer(answer());
    let mut throttle =
        ThrottleLayer::new(AdaptiveThrottle::builder("hot").build().unwrap()).layer(answer());
    let mut rate_limit = RateLimitLayer::new(fast_limiter()).layer(answer());
    let mut timeout =
        TimeoutLayer::new(Timeout::new(Duration::from_secs(30)).unwrap()).layer(answer());
    let mut retry = RetryLayer::new(Retry::builder("hot").build().unwrap()).layer(answer());
    let mut fallback = FallbackLayer::new(
        Fallback::<u32, &str>::builder("hot")
            .value(0)
            .build()
            .unwrap(),
    )
    .layer(failing_answer());

    let allocated = allocations_in_rounds(|| {
        assert_eq!(through(&mut breaker, 1), 1);
        assert_eq!(through(&mut bulkhead, 1), 1);
        assert_eq!(through(&mut backpressure, 1), 1);
        assert_eq!(through(&mut shedder, 1), 1);
        assert_eq!(through(&mut adaptive, 1), 1);
        assert_eq!(through(&mut throttle, 1), 1);
        assert_eq!(through(&mut rate_limit, 1), 1);
        assert_eq!(through(&mut timeout, 1), 1);
        assert_eq!(through(&mut retry, 1), 1);
        assert_eq!(through(&mut fallback, 1), 1);
    });
    assert_eq!(allocated, 0, "allocations by the tower layers' happy paths");
}

fn main() {
    run(&[
        ("deadlines_allocate_nothing", deadlines_allocate_nothing),
        (
            "an_armed_timeout_allocates_nothing",
            an_armed_timeout_allocates_nothing,
        ),
        (
            "fallback_and_pipeline_successes_allocate_nothing",
            fallback_and_pipeline_successes_allocate_nothing,
        ),
        (
            "tower_layers_allocate_nothing",
            tower_layers_allocate_nothing,
        ),
    ]);
}
