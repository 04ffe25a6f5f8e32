//! Admission control: one slot taken and given back, ours side by side with tokio's
//! `Semaphore` and tower's `ConcurrencyLimit`.
//!
//! ```text
//! cargo bench -p resilience-benches --bench admission -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Groups, each self-contained (its own floor and peers), so other limiters can add theirs:
//!
//! * `bulkhead/uncontended`, `backpressure/uncontended`: a free slot, taken and released, on
//!   one thread: `floor_atomic` (one uncontended `AtomicU64::fetch_add`, the physical floor),
//!   `semaphore_try_acquire` (tokio's `Semaphore::try_acquire` + drop, the bulkhead's own
//!   building block and the fastest peer), `tower_concurrency_limit` (`ready` + `call` through
//!   tower's `ConcurrencyLimit` around a service that answers at once), then ours: a permit
//!   (`try_acquire` + drop; for backpressure also `try_acquire_owned`, whose permit holds a
//!   reference), `call` around an operation that is ready at once, and our tower layer around
//!   the same service as tower's.
//! * `bulkhead/contended_2_threads`, `backpressure/contended_2_threads`: the same entries
//!   while a second thread takes and releases a slot of the same instance in a tight loop.
//!   The figure is the measuring thread's time per operation under that contention. Ours against the peer with two threads is
//!   `benches/contended.rs`'s: it alternates them round by round, where these entries are
//!   measured one after the other.
//!
//! Futures are polled once with [`FutureExt::now_or_never`] and no runtime, as in
//! `benches/circuit_breaker.rs`: none of these paths arms a timer or waits, which [`check`]
//! asserts for every entry before it is measured (capacity is never exhausted: the
//! instances have room for both threads and the backpressure marks are never reached).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resilience::backpressure::{Backpressure, BackpressureLayer};
use resilience::bulkhead::{Bulkhead, BulkheadLayer};
use resilience_benches::{
    answer, check, floor, poll_once, semaphore_peers, tower_call, Contender, Group,
};
use tokio::sync::Semaphore;
use tower::{service_fn, Layer};

/// Room for both threads of the contended groups.
const SLOTS: u32 = 16;

fn bulkhead_entries(group: &mut Group<'_>, bulkhead: &Bulkhead) {
    let mut entry = || bulkhead.try_acquire().is_ok();
    check("bulkhead_try_acquire", &mut entry);
    group.bench_function("bulkhead_try_acquire", |b| b.iter(&mut entry));

    let mut entry = || {
        let call = bulkhead.call(|| async { Ok::<_, ()>(black_box(1_u64)) });
        matches!(poll_once(call), Some(Ok(1)))
    };
    check("bulkhead_call", &mut entry);
    group.bench_function("bulkhead_call", |b| b.iter(&mut entry));

    let mut service = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check("bulkhead_tower", &mut entry);
    group.bench_function("bulkhead_tower", |b| b.iter(&mut entry));
}

fn backpressure_entries(group: &mut Group<'_>, controller: &Backpressure) {
    let mut entry = || controller.try_acquire().is_ok();
    check("backpressure_try_acquire", &mut entry);
    group.bench_function("backpressure_try_acquire", |b| b.iter(&mut entry));

    let mut entry = || controller.try_acquire_owned().is_ok();
    check("backpressure_try_acquire_owned", &mut entry);
    group.bench_function("backpressure_try_acquire_owned", |b| b.iter(&mut entry));

    let mut entry = || {
        let call = controller.call(|| async { Ok::<_, ()>(black_box(1_u64)) });
        matches!(poll_once(call), Some(Ok(1)))
    };
    check("backpressure_call", &mut entry);
    group.bench_function("backpressure_call", |b| b.iter(&mut entry));

    let mut service = BackpressureLayer::new(controller.clone()).layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check("backpressure_tower", &mut entry);
    group.bench_function("backpressure_tower", |b| b.iter(&mut entry));
}

fn bulkhead() -> Bulkhead {
    Bulkhead::builder("bench")
        .max_concurrent(SLOTS)
        .build()
        .expect("valid config")
}

/// Defaults (1000 / 800 / 200): two threads never get near the high water mark.
fn controller() -> Backpressure {
    Backpressure::builder("bench")
        .build()
        .expect("valid config")
}

fn semaphore() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(SLOTS as usize))
}

fn bulkhead_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulkhead/uncontended");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    semaphore_peers(&mut group, &semaphore());
    bulkhead_entries(&mut group, &bulkhead());
    group.finish();
}

fn bulkhead_contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulkhead/contended_2_threads");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    let semaphore = semaphore();
    {
        let shared = Arc::clone(&semaphore);
        let _contender = Contender::start(move || shared.try_acquire().is_ok());
        semaphore_peers(&mut group, &semaphore);
    }
    let bulkhead = bulkhead();
    let shared = bulkhead.clone();
    let _contender = Contender::start(move || shared.try_acquire().is_ok());
    bulkhead_entries(&mut group, &bulkhead);
    group.finish();
}

fn backpressure_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("backpressure/uncontended");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    semaphore_peers(&mut group, &semaphore());
    backpressure_entries(&mut group, &controller());
    group.finish();
}

fn backpressure_contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("backpressure/contended_2_threads");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    let semaphore = semaphore();
    {
        let shared = Arc::clone(&semaphore);
        let _contender = Contender::start(move || shared.try_acquire().is_ok());
        semaphore_peers(&mut group, &semaphore);
    }
    let controller = controller();
    let shared = controller.clone();
    let _contender = Contender::start(move || shared.try_acquire().is_ok());
    backpressure_entries(&mut group, &controller);
    group.finish();
}

/// Short warm-up and measurement so that the whole file runs in a few minutes on two cores;
/// command-line flags still override these.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bulkhead_uncontended, bulkhead_contended, backpressure_uncontended,
        backpressure_contended
}
criterion_main!(benches);
