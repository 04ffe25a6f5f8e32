//! The uncontended admission paths allocate nothing (DESIGN §9): `dhat`'s counting global
//! allocator watches a bulkhead's free-slot path (`call`, `try_acquire`, `acquire`) and a
//! backpressure controller below its high water mark (`call`, `try_acquire`), each with no
//! listener attached. Its own test binary, because the allocator is process-wide.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use resilience::backpressure::Backpressure;
use resilience::bulkhead::Bulkhead;

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
fn free_slot_paths_allocate_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let bulkhead = Bulkhead::builder("hot").max_concurrent(2).build().unwrap();
    let controller = Backpressure::builder("hot").build().unwrap();
    let round = || {
        ready(bulkhead.call(|| async { Ok::<_, ()>(1) })).unwrap();
        bulkhead.try_acquire().unwrap().success();
        drop(ready(bulkhead.acquire()).unwrap());
        ready(controller.call(|| async { Ok::<_, ()>(1) })).unwrap();
        drop(controller.try_acquire().unwrap());
    };
    // Warm up: first calls may initialise lazily created statics (tracing callsites).
    for _ in 0..10 {
        round();
    }
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..1_000 {
        round();
    }
    let allocated = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(allocated, 0, "allocations on the free-slot paths");
    assert_eq!(bulkhead.metrics().accepted_requests, 3_030);
    assert_eq!(controller.metrics().total_accepted, 2_020);
}
