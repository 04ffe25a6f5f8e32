//! Retry and pipeline overhead on an operation that succeeds at the first try, ours side by
//! side with `backon`, a bare call, and for the pipeline the same steps composed by hand from
//! the fastest peers (backon, recloser, tokio's timeout).
//!
//! ```text
//! cargo bench -p resilience-benches --bench retry -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Futures are polled once with `now_or_never` inside an entered tokio runtime (the timeout
//! needs a timer driver to exist, but a call that finishes at once never arms it), so no entry
//! pays for an executor. Each entry is checked once to complete on its first poll.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use resilience::circuit_breaker::CircuitBreaker;
use resilience::pipeline::Pipeline;
use resilience::{Fallback, Retry, Timeout};

/// The operation every entry runs: ready at once with `Ok(1)`.
async fn operation() -> Result<u64, std::io::Error> {
    Ok(black_box(1))
}

/// Why the hand-built peer pipeline's attempt failed.
#[derive(Debug)]
enum PeerError {
    Operation,
    TimedOut,
    Rejected,
}

fn first_try_success(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let _context = runtime.enter();

    let mut group = c.benchmark_group("retry/first_try_success");
    group.throughput(Throughput::Elements(1));

    let counter = AtomicU64::new(0);
    group.bench_function("floor_atomic", |b| {
        b.iter(|| black_box(&counter).fetch_add(1, Ordering::Relaxed));
    });

    let mut bare = || operation().now_or_never();
    assert!(matches!(bare(), Some(Ok(1))));
    group.bench_function("bare_call", |b| b.iter(&mut bare));

    let retry = Retry::builder("bench").build().expect("valid retry");
    let mut ours = || retry.call(operation).now_or_never();
    assert!(matches!(ours(), Some(Ok(1))));
    group.bench_function("resilience_retry", |b| b.iter(&mut ours));

    let backoff = ExponentialBuilder::default().with_max_times(3);
    let mut backon = || operation.retry(backoff).now_or_never();
    assert!(matches!(backon(), Some(Ok(1))));
    group.bench_function("backon", |b| b.iter(&mut backon));
    group.finish();

    let mut group = c.benchmark_group("pipeline/first_try_success");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_call", |b| b.iter(&mut bare));

    let empty = Pipeline::<u64, std::io::Error>::builder("empty")
        .build()
        .expect("valid pipeline");
    let mut entry = || empty.call(operation).now_or_never();
    assert!(matches!(entry(), Some(Ok(1))));
    group.bench_function("resilience_empty", |b| b.iter(&mut entry));

    let full = Pipeline::<u64, std::io::Error>::builder("full")
        .fallback(Fallback::builder("full").value(0).build().expect("valid"))
        .retry(Retry::builder("full").build().expect("valid"))
        .circuit_breaker(CircuitBreaker::builder("full").build().expect("valid"))
        .timeout(Timeout::new(Duration::from_secs(1)).expect("valid"))
        .build()
        .expect("valid pipeline");
    let mut entry = || full.call(operation).now_or_never();
    assert!(matches!(entry(), Some(Ok(1))));
    group.bench_function("resilience_fallback_retry_breaker_timeout", |b| {
        b.iter(&mut entry);
    });

    // The same four steps from the fastest peers, composed by hand as a user would: backon's
    // retry around recloser's async breaker around tokio's timeout, the error replaced by a
    // value at the end.
    let breaker = recloser::AsyncRecloser::from(recloser::Recloser::default());
    let backoff = ExponentialBuilder::default().with_max_times(3);
    let attempt = || async {
        match breaker
            .call(tokio::time::timeout(Duration::from_secs(1), operation()))
            .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(PeerError::Operation),
            Err(recloser::Error::Inner(_)) => Err(PeerError::TimedOut),
            Err(recloser::Error::Rejected) => Err(PeerError::Rejected),
        }
    };
    let mut entry = || {
        attempt
            .retry(backoff)
            .now_or_never()
            .map(|result| result.unwrap_or(0))
    };
    assert!(matches!(entry(), Some(1)));
    group.bench_function("peers_backon_recloser_tokio_timeout_unwrap_or", |b| {
        b.iter(&mut entry);
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = first_try_success
}
criterion_main!(benches);
