//! The closed-state success path allocates nothing (DESIGN §9): `dhat`'s counting global
//! allocator watches `call`, `call_blocking` and a permit, each with no listener attached.
//! Its own test binary, run without libtest (see `common/alloc.rs`): the allocator is
//! process-wide.

mod common {
    pub(crate) mod alloc;
}

use common::alloc::{allocations, ready, run};
use resilience::circuit_breaker::CircuitBreaker;

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

fn main() {
    run(&[(
        "closed_success_path_allocates_nothing",
        closed_success_path_allocates_nothing,
    )]);
}
