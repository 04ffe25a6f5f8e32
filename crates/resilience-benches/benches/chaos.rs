//! Chaos injection: what it costs to leave it in the code, ours side by side with the `fail`
//! crate's fail points (feature `failpoints` on, as a build that can inject must have it).
//!
//! ```text
//! cargo bench -p resilience-benches --bench chaos -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Group `chaos/disabled`: nothing can be injected. `floor_atomic`;
//! `fail_point_unconfigured` (`fail_point!` on a name never configured: a read lock and a
//! map lookup); ours switched off: `chaos_roll` (the decision alone: one relaxed load and a
//! branch) and `chaos_call` (a whole call around an operation that is ready at once, next to
//! `bare_call`, the same operation polled without chaos).
//!
//! Group `chaos/enabled_not_firing`: armed, but this call is not hit. `fail_point_off` (a
//! fail point configured `"off"`); ours enabled with a fault rate so small it never fires, so
//! every call takes its draw: `chaos_roll`, `chaos_call`.
//!
//! Futures are polled once with no runtime (`now_or_never`), and each entry is checked once
//! before it is measured. Allocations per call: `examples/coalesce_chaos_allocations.rs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resilience::chaos::Chaos;
use resilience_benches::{check, floor, poll_once};

fn chaos(enabled: bool) -> Chaos<u64, ()> {
    Chaos::builder("bench")
        .fault(f64::MIN_POSITIVE, || ())
        .seed(1)
        .enabled(enabled)
        .build()
        .unwrap()
}

fn ours(group: &mut resilience_benches::Group<'_>, chaos: &Chaos<u64, ()>) {
    // The same operation with no chaos at all, so `chaos_call` can be read against it.
    let mut entry = || {
        let operation = || async { Ok::<_, ()>(black_box(1_u64)) };
        matches!(poll_once(operation()), Some(Ok(1)))
    };
    group.bench_function("bare_call", |b| b.iter(&mut entry));

    let mut entry = || !black_box(chaos.roll()).fault;
    check("chaos_roll", &mut entry);
    group.bench_function("chaos_roll", |b| b.iter(&mut entry));

    let mut entry = || {
        matches!(
            poll_once(chaos.call(|| async { Ok(black_box(1_u64)) })),
            Some(Ok(1))
        )
    };
    check("chaos_call", &mut entry);
    group.bench_function("chaos_call", |b| b.iter(&mut entry));
}

fn disabled(c: &mut Criterion) {
    let mut group = c.benchmark_group("chaos/disabled");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    group.bench_function("fail_point_unconfigured", |b| {
        b.iter(|| fail::fail_point!(black_box("bench_unconfigured")));
    });
    ours(&mut group, &chaos(false));
    group.finish();
}

fn enabled_not_firing(c: &mut Criterion) {
    let mut group = c.benchmark_group("chaos/enabled_not_firing");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    fail::cfg("bench_off", "off").unwrap();
    group.bench_function("fail_point_off", |b| {
        b.iter(|| fail::fail_point!(black_box("bench_off")));
    });
    ours(&mut group, &chaos(true));
    group.finish();
}

criterion_group!(benches, disabled, enabled_not_firing);
criterion_main!(benches);
