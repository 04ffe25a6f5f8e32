//! The uncontended admission paths allocate nothing (DESIGN §9): `dhat`'s counting global
//! allocator watches a bulkhead's free-slot path (`call`, `try_acquire`, `acquire`) and a
//! backpressure controller below its high water mark (`call`, `try_acquire`), each with no
//! listener attached. Its own test binary, run without libtest (see `common/alloc.rs`): the allocator is
//! process-wide.

mod common {
    pub(crate) mod alloc;
}

use common::alloc::{allocations, ready, run};
use resilience::backpressure::Backpressure;
use resilience::bulkhead::Bulkhead;

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
    // Warm up: first calls may initialise lazily created statics (tracing callsites).
    for _ in 0..10 {
        round();
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            round();
        }
    });
    assert_eq!(allocated, 0, "allocations on the free-slot paths");
    assert_eq!(bulkhead.metrics().accepted_requests, 3_030);
    assert_eq!(controller.metrics().total_accepted, 2_020);
}

fn main() {
    run(&[(
        "free_slot_paths_allocate_nothing",
        free_slot_paths_allocate_nothing,
    )]);
}
