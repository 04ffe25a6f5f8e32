//! The closed-state success path and the open-circuit rejection allocate nothing: `dhat`'s
//! counting global allocator watches `call`, `call_blocking`, a permit, a timeout call and a
//! retry's first-try success, each with no listener attached.
//! Its own test binary, run without libtest (see `common/alloc.rs`): the allocator is
//! process-wide.

mod common {
    pub(crate) mod alloc;
}

use common::alloc::{allocations, ready, run};
use std::time::Duration;

use resilience::circuit_breaker::CircuitBreaker;
use resilience::retry::{BudgetConfig, Retry, RetryRules};
use resilience::timeout::Timeout;
use resilience::Error;

fn closed_success_path_allocates_nothing() {
    let breaker = CircuitBreaker::builder("hot").build().unwrap();
    // Warm up: first calls may initialise lazily created statics (tracing callsites).
    for _ in 0..10 {
        ready(breaker.call(|| async { Ok::<_, ()>(1) })).unwrap();
        breaker.call_blocking(|| Ok::<_, ()>(1)).unwrap();
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            ready(breaker.call(|| async { Ok::<_, ()>(1) })).unwrap();
            breaker.call_blocking(|| Ok::<_, ()>(1)).unwrap();
            breaker.try_acquire().unwrap().success();
        }
    });
    assert_eq!(allocated, 0, "allocations on the closed success path");
    assert_eq!(breaker.metrics().successful_requests, 3_020);
}

fn open_circuit_rejections_allocate_nothing() {
    let breaker = CircuitBreaker::builder("open").build().unwrap();
    breaker.trip();
    for _ in 0..10 {
        ready(breaker.call(|| async { Ok::<_, ()>(1) })).unwrap_err();
        breaker.call_blocking(|| Ok::<_, ()>(1)).unwrap_err();
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            ready(breaker.call(|| async { Ok::<_, ()>(1) })).unwrap_err();
            breaker.call_blocking(|| Ok::<_, ()>(1)).unwrap_err();
            drop(breaker.try_acquire().unwrap_err());
        }
    });
    assert_eq!(allocated, 0, "allocations on the open-circuit rejection");
    assert_eq!(breaker.metrics().rejected_requests, 3_020);
}

fn a_timeout_call_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let timeout = Timeout::builder("hot")
        .limit(Duration::from_secs(30))
        .build()
        .unwrap();
    for _ in 0..10 {
        ready(timeout.call(|| async { Ok::<_, ()>(1) })).unwrap();
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            ready(timeout.call(|| async { Ok::<_, ()>(1) })).unwrap();
        }
    });
    assert_eq!(allocated, 0, "allocations by a timeout call");
    assert_eq!(timeout.metrics().successful_executions, 1_010);
}

fn a_retry_first_try_success_allocates_nothing() {
    // A time limit and a budget: the clock is read and the budget deposited into per call.
    let retry = Retry::builder("hot")
        .max_elapsed(Duration::from_secs(30))
        .budget(BudgetConfig::default())
        .build()
        .unwrap();
    let rules = RetryRules::new().retry_on_result(|value: &u32| *value == 0);
    let round = || {
        ready(retry.call(|| async { Ok::<_, &str>(1) })).unwrap();
        ready(retry.call_with(&rules, || async { Ok::<_, &str>(1) })).unwrap();
        ready(retry.execute(|| async { Ok::<_, Error<&str>>(1) })).unwrap();
    };
    for _ in 0..10 {
        round();
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            round();
        }
    });
    assert_eq!(allocated, 0, "allocations by a retry's first-try success");
    assert_eq!(retry.metrics().successful_attempts, 3_030);
}

fn main() {
    run(&[
        (
            "closed_success_path_allocates_nothing",
            closed_success_path_allocates_nothing,
        ),
        (
            "open_circuit_rejections_allocate_nothing",
            open_circuit_rejections_allocate_nothing,
        ),
        (
            "a_timeout_call_allocates_nothing",
            a_timeout_call_allocates_nothing,
        ),
        (
            "a_retry_first_try_success_allocates_nothing",
            a_retry_first_try_success_allocates_nothing,
        ),
    ]);
}
