//! Feature `metrics` allocates nothing per recorded event: with a recorder installed (plain
//! atomics, `metrics-util`'s `Registry`), the circuit breaker's calls and rejections, the rate
//! limiter's decisions, the bulkhead's and load shedder's gauges, retry's attempts and
//! backpressure's decisions record with no allocation. Its own test binary, run without
//! libtest (see `common/alloc.rs`): the allocator is process-wide.
//!
//! Histograms are left out on purpose: how a histogram stores its samples is the recorder's
//! business (the Prometheus exporter's buckets allocate a block every few dozen samples until
//! the next scrape drains them); what this crate does per sample is the same kept-handle call.

mod common {
    pub(crate) mod alloc;
    pub(crate) mod recorder;
}

use common::alloc::{allocations, ready, run};
use common::recorder::Values;
use resilience::load_shed::Priority;
use resilience::rate_limit::DirectRateLimiter;
use resilience::{Backpressure, Bulkhead, CircuitBreaker, LoadShedder, Rate, Retry};

fn recording_allocates_nothing() {
    let recorder = Values::new();
    let (breaker, open, limiter, bulkhead, shedder, controller, retry) =
        metrics::with_local_recorder(&recorder, || {
            let open = CircuitBreaker::builder("open").build().unwrap();
            open.force_open();
            (
                CircuitBreaker::builder("hot").build().unwrap(),
                open,
                DirectRateLimiter::builder("hot")
                    .rate(Rate::per_second(1))
                    .build()
                    .unwrap(),
                Bulkhead::builder("hot").max_concurrent(2).build().unwrap(),
                LoadShedder::builder("hot").build().unwrap(),
                Backpressure::builder("hot").build().unwrap(),
                Retry::builder("hot").build().unwrap(),
            )
        });
    let round = || {
        ready(breaker.call(|| async { Ok::<_, ()>(1) })).unwrap();
        assert!(ready(open.call(|| async { Ok::<_, ()>(1) })).is_err());
        let _ = limiter.check_now();
        ready(bulkhead.call(|| async { Ok::<_, ()>(1) })).unwrap();
        drop(shedder.try_acquire(Priority::Normal).unwrap());
        drop(controller.try_acquire().unwrap());
        ready(retry.call(|| async { Ok::<_, &str>(1) })).unwrap();
    };
    for _ in 0..10 {
        round();
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            round();
        }
    });
    assert_eq!(allocated, 0, "allocations while recording metrics");
    let decisions = recorder.0.get_counter_handles();
    let rejected = decisions
        .iter()
        .find(|(key, _)| {
            key.name() == "resilience_rate_limit_decisions_total"
                && key.labels().any(|label| label.value() == "rejected")
        })
        .map(|(_, count)| count.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(rejected, Some(1_009), "the recorder saw the decisions");
}

fn main() {
    run(&[("recording_allocates_nothing", recording_allocates_nothing)]);
}
