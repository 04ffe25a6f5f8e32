//! Adaptive throttling: the cost of one request's decision and its answer, ours side by side
//! with google-cloud-gax's `AdaptiveThrottler` (the same formula, counting forever rather
//! than over a window) through its shared handle, `SharedRetryThrottler`
//! (`Arc<Mutex<dyn RetryThrottler>>`), as its retry loop uses it.
//!
//! ```text
//! cargo bench -p resilience-benches --bench throttle -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Group `throttle/allowed`: a healthy backend, so nothing is throttled. `floor_atomic`;
//! `gax_shared` (lock, `throttle_retry_attempt`, unlock; lock, `on_success`, unlock: its
//! draw is taken even at probability 0); `gax_owned` (the same on a plain `&mut`, no lock: a
//! floor for the formula itself); ours: `try_acquire_success` (the decision with the clock
//! read and the request counted, on a permit borrowing the throttle; the success writes
//! nothing, as the window counts refusals), `try_acquire_owned_success` (the same with a
//! permit holding a reference count, as the tower layer and the HTTP adapters take it) and
//! `stage_call` (a whole call through the throttle as a stage, around an operation ready at
//! once);
//! `clock_now` is tokio's clock (`tokio::time::Instant::now`), which ours read once per
//! decision before it read the time-stamp counter (through `quanta`, as governor does) and
//! still reads under a paused tokio clock; gax, counting forever rather than over a window,
//! reads no clock.
//!
//! Group `throttle/overloaded`: a backend refusing everything, the probability at its cap
//! (ours 0.9; gax's uncapped, near 1), so each decision takes a draw and most reject.
//!
//! Futures are polled once with no runtime (`now_or_never`), and each entry is checked once
//! before it is measured.

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use google_cloud_gax::retry_throttler::{AdaptiveThrottler, RetryThrottler, SharedRetryThrottler};
use resilience::throttle::AdaptiveThrottle;
use resilience_benches::{check, floor, poll_once, Group};

fn gax() -> SharedRetryThrottler {
    Arc::new(Mutex::new(AdaptiveThrottler::default()))
}

fn ours() -> AdaptiveThrottle {
    AdaptiveThrottle::builder("bench").seed(1).build().unwrap()
}

fn allowed(c: &mut Criterion) {
    let mut group = c.benchmark_group("throttle/allowed");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    let shared = gax();
    let mut entry = || {
        let throttled = shared.lock().unwrap().throttle_retry_attempt();
        if !throttled {
            shared.lock().unwrap().on_success();
        }
        !throttled
    };
    check("gax_shared", &mut entry);
    group.bench_function("gax_shared", |b| b.iter(&mut entry));

    let mut owned = AdaptiveThrottler::default();
    let mut entry = || {
        let throttled = black_box(&owned).throttle_retry_attempt();
        if !throttled {
            owned.on_success();
        }
        !throttled
    };
    check("gax_owned", &mut entry);
    group.bench_function("gax_owned", |b| b.iter(&mut entry));

    // tokio's clock, which ours reads only under a paused clock (it reads the TSC otherwise),
    // for reading the figures against it.
    group.bench_function("clock_now", |b| b.iter(tokio::time::Instant::now));

    our_entries(&mut group, &ours(), true);
    group.finish();
}

fn our_entries(group: &mut Group<'_>, throttle: &AdaptiveThrottle, healthy: bool) {
    let mut entry = || match throttle.try_acquire() {
        Ok(permit) => {
            if healthy {
                permit.success();
            } else {
                permit.failure();
            }
            true
        }
        Err(_) => false,
    };
    if healthy {
        check("try_acquire_success", &mut entry);
    }
    group.bench_function("try_acquire_success", |b| b.iter(&mut entry));

    if healthy {
        let mut entry = || match throttle.try_acquire_owned() {
            Ok(permit) => {
                permit.success();
                true
            }
            Err(_) => false,
        };
        check("try_acquire_owned_success", &mut entry);
        group.bench_function("try_acquire_owned_success", |b| b.iter(&mut entry));

        let mut entry = || {
            matches!(
                poll_once(throttle.call(|| async { Ok::<_, ()>(black_box(1_u64)) })),
                Some(Ok(1))
            )
        };
        check("stage_call", &mut entry);
        group.bench_function("stage_call", |b| b.iter(&mut entry));
    }
}

fn overloaded(c: &mut Criterion) {
    let mut group = c.benchmark_group("throttle/overloaded");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    // gax: many refusals counted (a failed attempt that is retried counts no accept).
    let shared = gax();
    for _ in 0..1_000 {
        let flow = google_cloud_gax::retry_result::RetryResult::Continue(
            google_cloud_gax::error::Error::io("refused"),
        );
        shared.lock().unwrap().on_retry_failure(&flow);
    }
    let mut entry = || {
        let throttled = shared.lock().unwrap().throttle_retry_attempt();
        black_box(throttled)
    };
    group.bench_function("gax_shared", |b| b.iter(&mut entry));

    let throttle = ours();
    for _ in 0..1_000 {
        if let Ok(permit) = throttle.try_acquire() {
            permit.failure();
        }
    }
    assert_eq!(throttle.rejection_probability(), 0.9);
    our_entries(&mut group, &throttle, false);
    group.finish();
}

criterion_group!(benches, allowed, overloaded);
criterion_main!(benches);
