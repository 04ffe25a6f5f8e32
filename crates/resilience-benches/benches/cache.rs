//! A cache hit: ours (with a time to live, through the handle and the tower layer) side by
//! side with a bare `quick_cache` hit, the store ours is built on.
//!
//! ```text
//! cargo bench -p resilience-benches --bench cache -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use resilience::cache::{Cache, CacheLayer};
use resilience_benches::floor;
use tower::{service_fn, Layer, Service};

fn hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache/hit");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    let bare = quick_cache::sync::Cache::<u64, u64>::new(10_000);
    for key in 0..1_000 {
        bare.insert(key, key);
    }
    assert_eq!(bare.get(&7), Some(7));
    group.bench_function("quick_cache_get", |b| b.iter(|| bare.get(black_box(&7))));

    let ttl = Cache::<u64, u64>::builder("ttl")
        .ttl(Duration::from_secs(3600))
        .build()
        .expect("valid cache");
    let no_ttl = Cache::<u64, u64>::builder("no-ttl")
        .no_ttl()
        .build()
        .expect("valid cache");
    let idle = Cache::<u64, u64>::builder("idle")
        .ttl(Duration::from_secs(3600))
        .time_to_idle(Duration::from_secs(600))
        .build()
        .expect("valid cache");
    for key in 0..1_000 {
        ttl.insert(key, key);
        no_ttl.insert(key, key);
        idle.insert(key, key);
    }
    // The synchronous lookup alone, without a future around it.
    group.bench_function("resilience_get_no_ttl", |b| {
        b.iter(|| no_ttl.get(black_box(&7)))
    });
    group.bench_function("resilience_get_ttl", |b| b.iter(|| ttl.get(black_box(&7))));
    let fetch = || async { Ok::<u64, std::io::Error>(0) };
    let mut entry = || ttl.get_or_fetch(black_box(&7), fetch).now_or_never();
    assert!(matches!(entry(), Some(Ok(7))));
    group.bench_function("resilience_get_or_fetch_ttl", |b| b.iter(&mut entry));

    let mut entry = || no_ttl.get_or_fetch(black_box(&7), fetch).now_or_never();
    assert!(matches!(entry(), Some(Ok(7))));
    group.bench_function("resilience_get_or_fetch_no_ttl", |b| b.iter(&mut entry));

    let mut entry = || idle.get_or_fetch(black_box(&7), fetch).now_or_never();
    assert!(matches!(entry(), Some(Ok(7))));
    group.bench_function("resilience_get_or_fetch_ttl_idle", |b| b.iter(&mut entry));

    let inner = service_fn(|n: u64| async move { Ok::<_, std::io::Error>(n) });
    let mut layered = CacheLayer::new(ttl.clone(), |n: &u64| *n).layer(inner);
    let mut entry = || {
        let mut cx = Context::from_waker(Waker::noop());
        match layered.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => layered.call(black_box(7)).now_or_never(),
            _ => None,
        }
    };
    assert!(matches!(entry(), Some(Ok(7))));
    group.bench_function("resilience_layer_ttl", |b| b.iter(&mut entry));
    group.finish();
}

criterion_group!(benches, hit);
criterion_main!(benches);
