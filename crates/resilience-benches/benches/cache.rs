//! A cache hit: ours (with a time to live, through the handle and the tower layer) side by
//! side with a bare `quick_cache` hit, the store ours is built on, which keeps no time to
//! live, and with a `moka` hit, whose synchronous cache keeps one (and a time to idle) as ours
//! does: the peer of our hits with a time to live. `quick_cache`'s `get_or_insert_async`, a
//! future that answers a hit without running the computation it is given, is the peer of
//! `get_or_fetch` without a time to live; its plain `get`, of our `get`.
//!
//! Futures are polled once with no runtime (`now_or_never`) and their output is matched, as
//! a caller awaiting them would (as in `benches/admission.rs`), rather than returned whole:
//! a `Result<u64, Error<io::Error>>` handed to `black_box` is 88 bytes the loop copies and
//! reads back at once, which added some 5–9 ns to every future's entry, a hit without a time
//! to live included.
//!
//! ```text
//! cargo bench -p resilience-benches --bench cache -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resilience::cache::{Cache, CacheLayer};
use resilience_benches::{check, floor, poll_once};
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
    // quick_cache's own get-or-compute, the peer of `get_or_fetch` without a time to live:
    // a future polled once that answers from the entry without running the computation.
    let mut entry = || {
        matches!(
            poll_once(
                bare.get_or_insert_async(black_box(&7), async { Ok::<u64, std::io::Error>(0) })
            ),
            Some(Ok(7))
        )
    };
    check("quick_cache_get_or_insert_async", &mut entry);
    group.bench_function("quick_cache_get_or_insert_async", |b| b.iter(&mut entry));

    let moka_ttl = moka::sync::Cache::<u64, u64>::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(3600))
        .build();
    let moka_idle = moka::sync::Cache::<u64, u64>::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(3600))
        .time_to_idle(Duration::from_secs(600))
        .build();
    for key in 0..1_000 {
        moka_ttl.insert(key, key);
        moka_idle.insert(key, key);
    }
    assert_eq!(moka_ttl.get(&7), Some(7));
    assert_eq!(moka_idle.get(&7), Some(7));
    group.bench_function("moka_get_ttl", |b| b.iter(|| moka_ttl.get(black_box(&7))));
    group.bench_function("moka_get_ttl_idle", |b| {
        b.iter(|| moka_idle.get(black_box(&7)))
    });

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
    let mut entry = || {
        matches!(
            poll_once(ttl.get_or_fetch(black_box(&7), fetch)),
            Some(Ok(7))
        )
    };
    check("resilience_get_or_fetch_ttl", &mut entry);
    group.bench_function("resilience_get_or_fetch_ttl", |b| b.iter(&mut entry));

    let mut entry = || {
        matches!(
            poll_once(no_ttl.get_or_fetch(black_box(&7), fetch)),
            Some(Ok(7))
        )
    };
    check("resilience_get_or_fetch_no_ttl", &mut entry);
    group.bench_function("resilience_get_or_fetch_no_ttl", |b| b.iter(&mut entry));

    let mut entry = || {
        matches!(
            poll_once(idle.get_or_fetch(black_box(&7), fetch)),
            Some(Ok(7))
        )
    };
    check("resilience_get_or_fetch_ttl_idle", &mut entry);
    group.bench_function("resilience_get_or_fetch_ttl_idle", |b| b.iter(&mut entry));

    let inner = service_fn(|n: u64| async move { Ok::<_, std::io::Error>(n) });
    let mut layered = CacheLayer::new(ttl.clone(), |n: &u64| *n).layer(inner);
    let mut entry = || {
        let mut cx = Context::from_waker(Waker::noop());
        match layered.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => matches!(poll_once(layered.call(black_box(7))), Some(Ok(7))),
            _ => false,
        }
    };
    check("resilience_layer_ttl", &mut entry);
    group.bench_function("resilience_layer_ttl", |b| b.iter(&mut entry));
    group.finish();
}

criterion_group!(benches, hit);
criterion_main!(benches);
