//! Hedging overhead when the primary answers before the delay, with a hedge armed: ours (the
//! handle and the tower layer, fixed and percentile delays) side by side with tower's
//! `Hedge` (armed: its histogram primed past `min_data_points`) and a bare service call.
//!
//! ```text
//! cargo bench -p resilience-benches --bench hedge -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Futures are polled once with `now_or_never` inside an entered tokio runtime (a hedge's
//! timer needs a driver to exist, but a call answered on its first poll never arms one), so
//! no entry pays for an executor. Each entry is checked once to complete on its first poll.

use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use resilience::hedge::{Hedge, HedgeDelay, HedgeLayer};
use resilience_benches::floor;
use tower::{service_fn, Layer, Service};

/// Readies `service` (every service here is always ready) and polls one call once.
fn call_once<S: Service<u64>>(
    service: &mut S,
    request: u64,
) -> Option<Result<S::Response, S::Error>> {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => service.call(request).now_or_never(),
        _ => None,
    }
}

/// The inner service of every entry: answers at once.
fn answer() -> impl Service<u64, Response = u64, Error = std::io::Error, Future: Send> + Clone {
    service_fn(|n: u64| async move { Ok::<_, std::io::Error>(black_box(n)) })
}

#[derive(Clone)]
struct ClonePolicy;

impl tower::hedge::Policy<u64> for ClonePolicy {
    fn clone_request(&self, request: &u64) -> Option<u64> {
        Some(*request)
    }

    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

fn primary_answers_first(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let _context = runtime.enter();

    let mut group = c.benchmark_group("hedge/primary_answers_first");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    let mut bare = answer();
    assert!(matches!(call_once(&mut bare, 1), Some(Ok(1))));
    group.bench_function("bare_service", |b| b.iter(|| call_once(&mut bare, 1)));

    // Armed: 100 samples of 1 ms, past `min_data_points`, so every call gets a delay.
    let samples = [1_u64; 100];
    let mut tower_hedge = tower::hedge::Hedge::new_with_mock_latencies(
        answer(),
        ClonePolicy,
        10,
        0.9,
        Duration::from_secs(10),
        &samples,
    );
    assert!(matches!(call_once(&mut tower_hedge, 1), Some(Ok(1))));
    group.bench_function("tower_hedge", |b| b.iter(|| call_once(&mut tower_hedge, 1)));

    // The handle, a fixed delay, the default budget (10 % extra attempts).
    let budgeted = Hedge::builder("budgeted")
        .delay(Duration::from_millis(1))
        .build()
        .expect("valid hedge");
    let operation = |n: u32| async move { Ok::<_, std::io::Error>(black_box(u64::from(n))) };
    let mut entry = || budgeted.call(operation).now_or_never();
    assert!(matches!(entry(), Some(Ok(1))));
    group.bench_function("resilience_call_fixed_budget", |b| b.iter(&mut entry));

    let fixed = Hedge::builder("fixed")
        .delay(Duration::from_millis(1))
        .no_budget()
        .build()
        .expect("valid hedge");
    let mut entry = || fixed.call(operation).now_or_never();
    assert!(matches!(entry(), Some(Ok(1))));
    group.bench_function("resilience_call_fixed", |b| b.iter(&mut entry));

    let mut layered = HedgeLayer::new(fixed.clone()).layer(answer());
    assert!(matches!(call_once(&mut layered, 1), Some(Ok(1))));
    group.bench_function("resilience_layer_fixed", |b| {
        b.iter(|| call_once(&mut layered, 1));
    });

    // The percentile delay, armed: enough samples and one refresh behind it.
    let measured = Hedge::builder("measured")
        .delay_mode(HedgeDelay::Percentile {
            percentile: 90.0,
            min_samples: 10,
            refresh: Duration::from_millis(1),
        })
        .no_budget()
        .build()
        .expect("valid hedge");
    let mut layered = HedgeLayer::new(measured.clone()).layer(answer());
    let armed_by = tokio::time::Instant::now() + Duration::from_millis(5);
    while measured.current_delay().is_none() || tokio::time::Instant::now() < armed_by {
        assert!(matches!(call_once(&mut layered, 1), Some(Ok(1))));
    }
    group.bench_function("resilience_layer_percentile", |b| {
        b.iter(|| call_once(&mut layered, 1));
    });
    group.finish();
}

criterion_group!(benches, primary_answers_first);
criterion_main!(benches);
