//! A coalesced call that nobody joins, and a call through chaos that gets no injection
//! (disabled, or enabled and not hit), allocate nothing. Its own test binary, run without
//! libtest (see `common/alloc.rs`): the allocator is process-wide.

mod common {
    pub(crate) mod alloc;
}

use common::alloc::{allocations, ready, run};
use resilience::chaos::Chaos;
use resilience::coalesce::Coalescer;

fn a_call_nobody_joins_allocates_nothing() {
    let group = Coalescer::<u64, u64, ()>::builder("hot").build().unwrap();
    // Warm up: the shard's table grows once and keeps its capacity.
    for key in 0..10 {
        ready(group.call(key, || async { Ok(1) })).unwrap();
    }
    let allocated = allocations(|| {
        for key in 0..1_000 {
            ready(group.call(key % 10, || async { Ok(1) })).unwrap();
            assert!(!ready(group.call_shared(7, || async { Ok(1) })).1);
        }
    });
    assert_eq!(allocated, 0, "allocations of uncontended coalesced calls");
    assert_eq!(group.in_flight(), 0);
}

fn chaos_that_injects_nothing_allocates_nothing() {
    let chaos = Chaos::<u64, ()>::builder("hot")
        .fault(f64::MIN_POSITIVE, || ())
        .seed(1)
        .build()
        .unwrap();
    for _ in 0..10 {
        ready(chaos.call(|| async { Ok(1) })).unwrap();
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            ready(chaos.call(|| async { Ok(1) })).unwrap();
        }
        chaos.set_enabled(false);
        for _ in 0..1_000 {
            ready(chaos.call(|| async { Ok(1) })).unwrap();
        }
    });
    assert_eq!(allocated, 0, "allocations of calls with no injection");
    assert_eq!(chaos.metrics().total_calls, 1_010);
}

fn main() {
    run(&[
        (
            "a_call_nobody_joins_allocates_nothing",
            a_call_nobody_joins_allocates_nothing,
        ),
        (
            "chaos_that_injects_nothing_allocates_nothing",
            chaos_that_injects_nothing_allocates_nothing,
        ),
    ]);
}
