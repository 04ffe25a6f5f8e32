//! Rate-limit checks allocate nothing (DESIGN §9): `dhat`'s counting global allocator watches
//! the direct limiter (allowed and denied, sync and through the trait) and the keyed limiter,
//! for known keys and for new ones, and the sketched keyed limiter (checks and peeks), each
//! with no listener attached. Its own test binary,
//! run without libtest (see `common/alloc.rs`): the allocator is process-wide.

mod common {
    pub(crate) mod alloc;
}

use common::alloc::{allocations, ready, run};
use resilience::rate_limit::{DirectRateLimiter, LocalRateLimiter, RateLimiter};
use resilience::Rate;

fn checks_allocate_nothing() {
    let direct = DirectRateLimiter::builder("hot")
        .rate(Rate::per_second(1_000_000_000))
        .build()
        .unwrap();
    let spent = DirectRateLimiter::builder("spent")
        .rate(Rate::per_hour(1))
        .build()
        .unwrap();
    let keyed = LocalRateLimiter::builder("hot")
        .rate(Rate::per_second(1_000))
        .build()
        .unwrap();
    let keys: Vec<String> = (0..2_000).map(|i| format!("client-{i}")).collect();
    // Warm up: lazily created statics (tracing callsites), and the first key of every shard
    // allocates that shard's table once.
    for key in &keys[..1_000] {
        assert!(keyed.check_now(key).is_allowed());
    }
    spent.check_now();
    let allocated = allocations(|| {
        for key in &keys {
            assert!(direct.check_now().is_allowed());
            assert!(ready(RateLimiter::check(&direct, key)).is_allowed());
            assert!(!spent.check_now().is_allowed());
            assert!(spent.try_acquire().is_err());
            // The first 1,000 keys are known, the next 1,000 are new.
            assert!(keyed.check_now(key).is_allowed());
            assert!(ready(RateLimiter::check(&keyed, key)).is_allowed());
        }
    });
    assert_eq!(allocated, 0, "allocations on the check paths");
    assert_eq!(keyed.metrics().active_limiters, 2_000);
}

fn sketched_checks_and_peeks_allocate_nothing() {
    let sketched = LocalRateLimiter::builder("sketched")
        .rate(Rate::per_second(1_000))
        .sketch(1_024, 4)
        .build()
        .unwrap();
    let keys: Vec<String> = (0..2_000).map(|i| format!("client-{i}")).collect();
    // Warm up the tracing callsites.
    assert!(sketched.check_now("warm").is_allowed());
    let allocated = allocations(|| {
        for key in &keys {
            assert!(sketched.check_now(key).is_allowed());
            assert!(sketched.peek(key).is_allowed());
            assert!(ready(RateLimiter::check(&sketched, key)).is_allowed());
        }
    });
    assert_eq!(allocated, 0, "allocations on the sketched check paths");
    assert_eq!(
        sketched.metrics().active_limiters,
        0,
        "the sketch holds no keys"
    );
}

fn main() {
    run(&[
        ("checks_allocate_nothing", checks_allocate_nothing),
        (
            "sketched_checks_and_peeks_allocate_nothing",
            sketched_checks_and_peeks_allocate_nothing,
        ),
    ]);
}
