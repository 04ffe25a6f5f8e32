//! A hedged call answered before its delay allocates nothing, through the handle and the
//! tower layer, with the fixed and the percentile delay. Its own test binary, run without
//! libtest (see `common/alloc.rs`): the allocator is process-wide.

mod common {
    pub(crate) mod alloc;
}

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::alloc::{allocations, ready, run};
use resilience::hedge::{Hedge, HedgeDelay, HedgeLayer};
use tower::{service_fn, Layer, Service};

fn call_once<S: Service<u64>>(service: &mut S) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    ready(service.call(1))
}

fn answered_before_the_delay_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let fixed = Hedge::builder("fixed")
        .delay(Duration::from_millis(1))
        .build()
        .unwrap();
    let measured = Hedge::builder("measured")
        .delay_mode(HedgeDelay::Percentile {
            percentile: 90.0,
            min_samples: 10,
            refresh: Duration::from_secs(3600),
        })
        .no_budget()
        .build()
        .unwrap();
    let answer = service_fn(|n: u64| async move { Ok::<_, ()>(n) });
    let mut fixed_layer = HedgeLayer::new(fixed.clone()).layer(answer);
    let mut measured_layer = HedgeLayer::new(measured.clone()).layer(answer);
    let operation = |n: u32| async move { Ok::<_, ()>(n) };
    // Warm up: first calls may initialise lazily created statics (tracing callsites).
    for _ in 0..10 {
        ready(fixed.call(operation)).unwrap();
        call_once(&mut fixed_layer).unwrap();
        call_once(&mut measured_layer).unwrap();
    }
    let allocated = allocations(|| {
        for _ in 0..1_000 {
            ready(fixed.call(operation)).unwrap();
            call_once(&mut fixed_layer).unwrap();
            call_once(&mut measured_layer).unwrap();
        }
    });
    assert_eq!(allocated, 0, "allocations when the primary answers first");
    assert_eq!(fixed.metrics().total_requests, 2_020);
    assert_eq!(measured.metrics().hedged_attempts, 0);
}

fn main() {
    run(&[(
        "answered_before_the_delay_allocates_nothing",
        answered_before_the_delay_allocates_nothing,
    )]);
}
