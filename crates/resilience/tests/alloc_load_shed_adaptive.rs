//! The uncontended paths of the load shedder and the adaptive limiter allocate nothing
//! (DESIGN §9): `dhat`'s counting global allocator watches a slot taken and released through
//! each entry point, with no listener attached. Its own test binary, because the allocator is
//! process-wide.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use resilience::adaptive::{AdaptiveLimiter, Gradient2Config, VegasConfig};
use resilience::load_shed::{LoadShedder, Priority};

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
fn free_slots_allocate_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let shedder = LoadShedder::builder("hot").build().unwrap();
    let limiters = [
        AdaptiveLimiter::builder("aimd").build().unwrap(),
        AdaptiveLimiter::builder("vegas")
            .vegas(VegasConfig::default())
            .build()
            .unwrap(),
        AdaptiveLimiter::builder("gradient2")
            .gradient2(Gradient2Config::default())
            .build()
            .unwrap(),
    ];
    let round = || {
        drop(shedder.try_acquire(Priority::Normal).unwrap());
        drop(ready(shedder.acquire(Priority::Low)).unwrap());
        ready(shedder.call(Priority::High, || async { Ok::<_, ()>(1) })).unwrap();
        for limiter in &limiters {
            limiter.try_acquire().unwrap().success();
            drop(limiter.try_acquire().unwrap());
            ready(limiter.call(|| async { Ok::<_, ()>(1) })).unwrap();
        }
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
    assert_eq!(shedder.metrics().total_accepted, 3 * 1_010);
    assert_eq!(limiters[0].metrics().success_count, 2 * 1_010);
}
