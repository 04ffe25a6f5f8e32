//! The uncontended admission paths allocate nothing (DESIGN §9): `dhat`'s counting global
//! allocator watches a bulkhead's free-slot path (`call`, `try_acquire`, `acquire`) and a
//! backpressure controller below its high water mark (`call`, `try_acquire`), the rejections
//! of a full bulkhead and of a controller above its high water mark, and an adaptive
//! throttle's decisions (admitted and throttled), each with no listener attached. Its own test binary, run without libtest (see `common/alloc.rs`): the allocator is
//! process-wide.

mod common {
    pub(crate) mod alloc;
}

use common::alloc::{allocations, allocations_in_rounds, ready, run};
use resilience::backpressure::Backpressure;
use resilience::bulkhead::Bulkhead;
use resilience::throttle::AdaptiveThrottle;
use std::time::Duration;

fn free_slot_paths_allocate_nothing() {
    let bulkhead = Bulkhead::builder("hot").max_concurrent(2).build().unwrap();
    let controller = Backpressure::builder("hot").build().unwrap();
    let round = || {
        ready(bulkhead.call(|| async { Ok::<_, ()>(1) })).unwrap();
        bulkhead.try_acquire().unwrap().success();
        drop(ready(bulkhead.acquire()).unwrap());
        ready(controller.call(|| async { Ok::<_, ()>(1) })).unwrap();
        drop(controller.try_acquire().unwrap());
    };
    let allocated = allocations_in_rounds(round);
    assert_eq!(allocated, 0, "allocations on the free-slot paths");
    assert_eq!(bulkhead.metrics().accepted_requests, 3_030);
    assert_eq!(controller.metrics().total_accepted, 2_020);
}

fn rejections_allocate_nothing() {
    let bulkhead = Bulkhead::builder("full")
        .max_concurrent(1)
        .max_waiting(0)
        .build()
        .unwrap();
    let controller = Backpressure::builder("high")
        .water_marks(1, 0)
        .wait_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let _slot = bulkhead.try_acquire().unwrap();
    let _pending = controller.try_acquire().unwrap();
    let round = || {
        assert!(bulkhead.try_acquire().is_err());
        assert!(ready(bulkhead.call(|| async { Ok::<_, ()>(1) })).is_err());
        assert!(controller.try_acquire().is_err());
        assert!(ready(controller.call(|| async { Ok::<_, ()>(1) })).is_err());
    };
    let allocated = allocations_in_rounds(round);
    assert_eq!(allocated, 0, "allocations on the rejection paths");
    assert_eq!(bulkhead.metrics().rejected_requests, 2 * 1_010);
    assert_eq!(controller.metrics().total_rejected, 2 * 1_010);
}

fn throttle_decisions_allocate_nothing() {
    let healthy = AdaptiveThrottle::builder("healthy")
        .seed(1)
        .build()
        .unwrap();
    let overloaded = AdaptiveThrottle::builder("overloaded")
        .seed(1)
        .build()
        .unwrap();
    for _ in 0..100 {
        if let Ok(permit) = overloaded.try_acquire() {
            permit.failure();
        }
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            ready(healthy.call(|| async { Ok::<_, ()>(1) })).unwrap();
            healthy.try_acquire().unwrap().success();
            // Throttled or not, the decision and the rejection allocate nothing.
            match overloaded.try_acquire() {
                Ok(permit) => permit.failure(),
                Err(rejection) => drop(rejection),
            }
        }
    });
    assert_eq!(allocated, 0, "allocations of throttle decisions");
    assert!(overloaded.metrics().total_throttled > 500);
}

fn main() {
    run(&[
        (
            "free_slot_paths_allocate_nothing",
            free_slot_paths_allocate_nothing,
        ),
        ("rejections_allocate_nothing", rejections_allocate_nothing),
        (
            "throttle_decisions_allocate_nothing",
            throttle_decisions_allocate_nothing,
        ),
    ]);
}
