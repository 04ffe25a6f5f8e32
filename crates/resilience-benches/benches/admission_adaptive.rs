//! Load shedder and adaptive limiter: one slot taken and given back, ours side by side with
//! tokio's `Semaphore` and tower's `ConcurrencyLimit`.
//!
//! ```text
//! cargo bench -p resilience-benches --bench admission_adaptive -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Groups (each with its own floor and peers):
//!
//! * `load_shed/uncontended`, `adaptive/uncontended`: a free slot, taken and released, on one
//!   thread: `floor_atomic` (one uncontended `AtomicU64::fetch_add`, the physical floor),
//!   `semaphore_try_acquire` (tokio's `Semaphore::try_acquire` + drop), `tower_concurrency_limit`
//!   (`ready` + `call` through tower's `ConcurrencyLimit` around a service that answers at
//!   once), then ours: a permit (`try_acquire` + drop, or + `success()` for the adaptive
//!   limiter, whose permit feeds the algorithm; it borrows the handle, and the `_owned`
//!   entries take one holding a reference), `call` around an operation that is ready at
//!   once, and our tower layer around the same service as tower's. The adaptive group measures
//!   each algorithm's permit: AIMD (the default), which learns from outcomes alone and reads the
//!   clock once per call, and Vegas and Gradient2, which read it twice for the latency.
//! * `load_shed/contended_2_threads`, `adaptive/contended_2_threads`: the same entries while a
//!   second thread takes and releases a slot of the same instance in a tight loop; the figure
//!   is the measuring thread's time per operation. Ours against the peer with two threads is
//!   `benches/contended.rs`'s: it alternates them round by round, where these entries are
//!   measured one after the other.
//!
//! Futures are polled once with [`FutureExt::now_or_never`] and no runtime, as in
//! `benches/circuit_breaker.rs`; [`check`] asserts before measuring that every entry is
//! admitted on its first poll (the instances have room for both threads; the shedder is far
//! below its lowest threshold, and successes only ever raise the adaptive limits).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resilience::adaptive::{AdaptiveLayer, AdaptiveLimiter, Gradient2Config, VegasConfig};
use resilience::load_shed::{LoadShedder, LoadShedderLayer, Priority};
use resilience_benches::{
    answer, check, floor, poll_once, semaphore_peers, tower_call, Contender, Group,
};
use tokio::sync::Semaphore;
use tower::{service_fn, Layer};

/// Room for both threads of the contended groups.
const SLOTS: u32 = 16;

fn semaphore() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(SLOTS as usize))
}

/// The two peers every group measures against, with a second thread on the same semaphore
/// when `contended`.
fn peers(group: &mut Group<'_>, contended: bool) {
    let semaphore = semaphore();
    let _contender = contended.then(|| {
        let shared = Arc::clone(&semaphore);
        Contender::start(move || shared.try_acquire().is_ok())
    });
    semaphore_peers(group, &semaphore);
}

/// Far below the lowest threshold (60 % of 1000) with two threads holding one slot each.
fn shedder() -> LoadShedder {
    LoadShedder::builder("bench").build().expect("valid config")
}

fn load_shed_entries(group: &mut Group<'_>, shedder: &LoadShedder) {
    let mut entry = || shedder.try_acquire(Priority::Normal).is_ok();
    check("load_shed_try_acquire", &mut entry);
    group.bench_function("load_shed_try_acquire", |b| b.iter(&mut entry));

    let mut entry = || shedder.try_acquire_owned(Priority::Normal).is_ok();
    check("load_shed_try_acquire_owned", &mut entry);
    group.bench_function("load_shed_try_acquire_owned", |b| b.iter(&mut entry));

    let mut entry = || matches!(poll_once(shedder.acquire(Priority::Normal)), Some(Ok(_)));
    check("load_shed_acquire", &mut entry);
    group.bench_function("load_shed_acquire", |b| b.iter(&mut entry));

    let mut entry = || {
        let call = shedder.call(Priority::Normal, || async { Ok::<_, ()>(black_box(1_u64)) });
        matches!(poll_once(call), Some(Ok(1)))
    };
    check("load_shed_call", &mut entry);
    group.bench_function("load_shed_call", |b| b.iter(&mut entry));

    let mut service = LoadShedderLayer::new(shedder.clone()).layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check("load_shed_tower", &mut entry);
    group.bench_function("load_shed_tower", |b| b.iter(&mut entry));
}

fn load_shed(c: &mut Criterion, contended: bool) {
    let name = if contended {
        "load_shed/contended_2_threads"
    } else {
        "load_shed/uncontended"
    };
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    peers(&mut group, contended);
    let shedder = shedder();
    let _contender = contended.then(|| {
        let shared = shedder.clone();
        Contender::start(move || shared.try_acquire(Priority::Normal).is_ok())
    });
    load_shed_entries(&mut group, &shedder);
    group.finish();
}

/// AIMD from 100 (successes only raise it), Vegas and Gradient2 from their defaults of 20.
fn limiters() -> [(&'static str, AdaptiveLimiter); 3] {
    let build = |builder: resilience::adaptive::AdaptiveLimiterBuilder| {
        builder.build().expect("valid config")
    };
    [
        ("aimd", build(AdaptiveLimiter::builder("bench"))),
        (
            "vegas",
            build(AdaptiveLimiter::builder("bench").vegas(VegasConfig::default())),
        ),
        (
            "gradient2",
            build(AdaptiveLimiter::builder("bench").gradient2(Gradient2Config::default())),
        ),
    ]
}

fn adaptive_entries(group: &mut Group<'_>, algorithm: &str, limiter: &AdaptiveLimiter) {
    let mut entry = || limiter.try_acquire().map(|permit| permit.success()).is_ok();
    let name = format!("adaptive_{algorithm}_try_acquire");
    check(&name, &mut entry);
    group.bench_function(name, |b| b.iter(&mut entry));
    if algorithm != "aimd" {
        return;
    }

    let mut entry = || limiter.try_acquire_owned().map(|p| p.success()).is_ok();
    check("adaptive_aimd_try_acquire_owned", &mut entry);
    group.bench_function("adaptive_aimd_try_acquire_owned", |b| b.iter(&mut entry));

    let mut entry = || {
        let call = limiter.call(|| async { Ok::<_, ()>(black_box(1_u64)) });
        matches!(poll_once(call), Some(Ok(1)))
    };
    check("adaptive_aimd_call", &mut entry);
    group.bench_function("adaptive_aimd_call", |b| b.iter(&mut entry));

    let mut service = AdaptiveLayer::new(limiter.clone()).layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check("adaptive_aimd_tower", &mut entry);
    group.bench_function("adaptive_aimd_tower", |b| b.iter(&mut entry));
}

fn adaptive(c: &mut Criterion, contended: bool) {
    let name = if contended {
        "adaptive/contended_2_threads"
    } else {
        "adaptive/uncontended"
    };
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    peers(&mut group, contended);
    for (algorithm, limiter) in limiters() {
        let _contender = contended.then(|| {
            let shared = limiter.clone();
            Contender::start(move || shared.try_acquire().map(|p| p.success()).is_ok())
        });
        adaptive_entries(&mut group, algorithm, &limiter);
    }
    group.finish();
}

fn load_shed_uncontended(c: &mut Criterion) {
    load_shed(c, false);
}

fn load_shed_contended(c: &mut Criterion) {
    load_shed(c, true);
}

fn adaptive_uncontended(c: &mut Criterion) {
    adaptive(c, false);
}

fn adaptive_contended(c: &mut Criterion) {
    adaptive(c, true);
}

criterion_group!(
    benches,
    load_shed_uncontended,
    load_shed_contended,
    adaptive_uncontended,
    adaptive_contended
);
criterion_main!(benches);
