//! The uncontended paths of the load shedder and the adaptive limiter allocate nothing, and
//! neither do their rejections (DESIGN §9): `dhat`'s counting global allocator watches a slot
//! taken and released through each entry point, and a full shedder and limiter refusing,
//! with no listener attached. Its own test binary, because the allocator is
//! process-wide.

mod common {
    pub(crate) mod alloc;
}

use common::alloc::{allocations_in_rounds, ready, run};
use resilience::adaptive::{AdaptiveLimiter, Gradient2Config, VegasConfig};
use resilience::load_shed::{LoadShedder, Priority};

fn free_slots_allocate_nothing() {
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
    let allocated = allocations_in_rounds(round);
    assert_eq!(allocated, 0, "allocations on the free-slot paths");
    assert_eq!(shedder.metrics().total_accepted, 3 * 1_010);
    assert_eq!(limiters[0].metrics().success_count, 2 * 1_010);
}

fn rejections_allocate_nothing() {
    let shedder = LoadShedder::builder("full")
        .max_requests(1)
        .max_queue_depth(0)
        .build()
        .unwrap();
    let limiter = AdaptiveLimiter::builder("full").build().unwrap();
    let _slot = shedder.try_acquire(Priority::Critical).unwrap();
    let _slots: Vec<_> = (0..limiter.limit())
        .map(|_| limiter.try_acquire().unwrap())
        .collect();
    let round = || {
        assert!(shedder.try_acquire(Priority::Normal).is_err());
        assert!(ready(shedder.call(Priority::High, || async { Ok::<_, ()>(1) })).is_err());
        assert!(limiter.try_acquire().is_err());
        assert!(limiter.try_acquire_owned().is_err());
        assert!(ready(limiter.call(|| async { Ok::<_, ()>(1) })).is_err());
    };
    let allocated = allocations_in_rounds(round);
    assert_eq!(allocated, 0, "allocations on the rejection paths");
    assert_eq!(shedder.metrics().total_shed, 2 * 1_010);
}

fn main() {
    run(&[
        ("free_slots_allocate_nothing", free_slots_allocate_nothing),
        ("rejections_allocate_nothing", rejections_allocate_nothing),
    ]);
}
