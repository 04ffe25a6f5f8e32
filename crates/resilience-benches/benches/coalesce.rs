//! Request coalescing: one caller, no contention, ours side by side with `singleflight-async`.
//!
//! ```text
//! cargo bench -p resilience-benches --bench coalesce -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Group `coalesce/one_caller`: a call for a key nobody else asks for, around an operation
//! that answers at once, so the figure is the coalescing overhead itself (look the key up,
//! become its leader, run, remove the key): `floor_atomic`, `singleflight_async_work`
//! (`SingleFlight::work`, the peer: a map under a `parking_lot` mutex, an `Arc`'d slot behind
//! a tokio mutex per call), then ours, `coalescer_call`, with a `u64` key and with a `String`
//! key (moved in, as a request's key would be; the `String`'s own allocation is made
//! outside the timed part by `iter_batched`), and `coalescer_call_shared`.
//!
//! Futures are polled once with no runtime (`now_or_never`); the `check` before each entry
//! asserts that it completes on that first poll. Allocations per call are counted by
//! `examples/coalesce_chaos_allocations.rs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use resilience::coalesce::Coalescer;
use resilience_benches::{check, floor, poll_once};
use singleflight_async::SingleFlight;

fn one_caller(c: &mut Criterion) {
    let mut group = c.benchmark_group("coalesce/one_caller");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    let peer = SingleFlight::<u64, u64>::new();
    let mut entry = || poll_once(peer.work(7, || async { black_box(1_u64) })) == Some(1);
    check("singleflight_async_work", &mut entry);
    group.bench_function("singleflight_async_work", |b| b.iter(&mut entry));

    let ours = Coalescer::<u64, u64, ()>::builder("bench").build().unwrap();
    let mut entry = || {
        matches!(
            poll_once(ours.call(7, || async { Ok(black_box(1_u64)) })),
            Some(Ok(1))
        )
    };
    check("coalescer_call", &mut entry);
    group.bench_function("coalescer_call", |b| b.iter(&mut entry));

    let mut entry = || {
        matches!(
            poll_once(ours.call_shared(7, || async { Ok(black_box(1_u64)) })),
            Some((Ok(1), false))
        )
    };
    check("coalescer_call_shared", &mut entry);
    group.bench_function("coalescer_call_shared", |b| b.iter(&mut entry));

    let by_name = Coalescer::<String, u64, ()>::builder("bench")
        .build()
        .unwrap();
    let call = |key: String| {
        matches!(
            poll_once(by_name.call(key, || async { Ok(black_box(1_u64)) })),
            Some(Ok(1))
        )
    };
    assert!(call("user-7".to_owned()));
    group.bench_function("coalescer_call_string_key", |b| {
        b.iter_batched(|| "user-7".to_owned(), call, BatchSize::SmallInput);
    });
    let peer = SingleFlight::<String, u64>::new();
    let work = |key: String| poll_once(peer.work(key, || async { black_box(1_u64) })) == Some(1);
    assert!(work("user-7".to_owned()));
    group.bench_function("singleflight_async_work_string_key", |b| {
        b.iter_batched(|| "user-7".to_owned(), work, BatchSize::SmallInput);
    });
    group.finish();
}

criterion_group!(benches, one_caller);
criterion_main!(benches);
