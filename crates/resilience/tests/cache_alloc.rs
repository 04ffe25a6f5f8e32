//! A cache hit allocates nothing, with and without a time to live or a time-to-idle. Its own
//! test binary, run without libtest (see `common/alloc.rs`): the allocator is process-wide.

mod common {
    pub(crate) mod alloc;
}

use std::time::Duration;

use common::alloc::{allocations, ready, run};
use resilience::cache::Cache;

fn a_hit_allocates_nothing() {
    let caches = [
        Cache::<u64, u64>::builder("no-ttl")
            .no_ttl()
            .build()
            .unwrap(),
        Cache::<u64, u64>::builder("ttl").build().unwrap(),
        Cache::<u64, u64>::builder("idle")
            .time_to_idle(Duration::from_secs(60))
            .build()
            .unwrap(),
    ];
    for cache in &caches {
        cache.insert(7, 49);
    }
    let fetch = || async { Ok::<u64, ()>(0) };
    for cache in &caches {
        for _ in 0..10 {
            assert_eq!(ready(cache.get_or_fetch(&7, fetch)).ok(), Some(49));
        }
    }
    let allocated = allocations(|| {
        for cache in &caches {
            for _ in 0..1_000 {
                assert_eq!(ready(cache.get_or_fetch(&7, fetch)).ok(), Some(49));
                assert_eq!(cache.get(&7), Some(49));
            }
        }
    });
    assert_eq!(allocated, 0, "allocations on a hit");
    assert_eq!(caches[2].metrics().hits, 2_010);
}

fn main() {
    run(&[("a_hit_allocates_nothing", a_hit_allocates_nothing)]);
}
