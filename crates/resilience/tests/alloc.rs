//! The closed-state success path allocates nothing (DESIGN §9): `dhat`'s counting global
//! allocator watches `call`, `call_blocking` and a permit, each with no listener attached.
//! Its own test binary, because the allocator is process-wide.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use resilience::circuit_breaker::CircuitBreaker;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Polls a future that is ready at once, without a runtime (which could allocate itself).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future was expected to be ready"),
    }
}

#[test]
fn closed_success_path_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let breaker = CircuitBreaker::builder("hot").build().unwrap();
    // Warm up: first calls may initialise lazily created statics (tracing callsites).
    for _ in 0..10 {
        ready(breaker.call(|| async { Ok::<_, ()>(1) })).unwrap();
        breaker.call_blocking(|| Ok::<_, ()>(1)).unwrap();
    }
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..1_000 {
        ready(breaker.call(|| async { Ok::<_, ()>(1) })).unwrap();
        breaker.call_blocking(|| Ok::<_, ()>(1)).unwrap();
        breaker.try_acquire().unwrap().success();
    }
    let allocated = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(allocated, 0, "allocations on the closed success path");
    assert_eq!(breaker.metrics().successful_requests, 3_020);
}
