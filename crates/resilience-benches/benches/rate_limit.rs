//! Rate limiting: our GCRA limiters side by side with `governor`'s, per check.
//!
//! ```text
//! cargo bench -p resilience-benches --bench rate_limit -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Groups (each starts with `floor_atomic`, one uncontended `AtomicU64::fetch_add`, as in
//! `benches/circuit_breaker.rs`):
//!
//! * `rate_limit/direct_allowed`: one budget, a request that is allowed. Ours through the sync
//!   `check_now`, through the async trait (`RateLimiter::check`, polled once) and through
//!   `try_acquire`; governor's `DefaultDirectRateLimiter::check`. `clock_now` is the cost of
//!   tokio's clock (`tokio::time::Instant::now`, the std monotonic clock outside tests), which
//!   ours reads only when built under a paused tokio clock: otherwise ours, like governor,
//!   reads the TSC through `quanta`.
//! * `rate_limit/direct_denied`: the same with the budget spent, so every check is denied.
//! * `rate_limit/direct_allowed_2_threads`: `direct_allowed`'s sync checks while a second
//!   thread checks the same limiter: a figure close to the one-thread figure means two
//!   threads get twice the decisions through. Ours against the peer with two threads is
//!   `benches/contended.rs`'s: it alternates them round by round, where these entries are
//!   measured one after the other.
//! * `rate_limit/layer_allowed`: one request through tower middleware around a service that
//!   answers at once (`ready`, then `call`, each polled once), every request allowed. Ours
//!   `RateLimitLayer` over the direct limiter; tower's `RateLimit` (a fixed window counted in
//!   the service itself, which reads tokio's clock on every call and so needs a runtime's
//!   timer; one is entered, never driven).
//! * `rate_limit/keyed_allowed`: one budget per key, 1,024 distinct `String` keys taken in
//!   turn (all already in the table), every check allowed. Ours `LocalRateLimiter::check_now`,
//!   governor's `DefaultKeyedRateLimiter<String>::check_key` (dashmap).
//!
//! Rates are 10⁹ per second (one per nanosecond) for the allowed groups, so the budget never
//! runs out while measuring, and 1 per hour, spent before measuring, for the denied group.
//! Every entry is run once before measuring and its outcome asserted, so no figure measures
//! the wrong path. Bytes per key are measured by `examples/rate_limit_memory.rs`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::FutureExt;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use resilience::rate_limit::{DirectRateLimiter, LocalRateLimiter, RateLimitLayer, RateLimiter};
use resilience::Rate;
use resilience_benches::{answer, check, check_outcome, floor, tower_call, Contender};
use tower::{service_fn, Layer};

/// One per nanosecond: never runs out during a run.
const FAST: u32 = 1_000_000_000;
const KEYS: usize = 1_024;

fn governor_quota(per_second: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(per_second).expect("non-zero"))
}

fn ours_direct(rate: Rate) -> DirectRateLimiter {
    DirectRateLimiter::builder("bench")
        .rate(rate)
        .build()
        .expect("valid config")
}

fn direct_allowed(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/direct_allowed");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    group.bench_function("clock_now", |b| b.iter(tokio::time::Instant::now));

    let ours = ours_direct(Rate::per_second(FAST));
    let mut entry = || ours.check_now().is_allowed();
    check_outcome("resilience_check_now", &mut entry, |allowed| *allowed);
    group.bench_function("resilience_check_now", |b| b.iter(&mut entry));

    let mut entry = || RateLimiter::check(&ours, "").now_or_never();
    check_outcome("resilience_check_trait", &mut entry, |d| {
        d.is_some_and(|d| d.is_allowed())
    });
    group.bench_function("resilience_check_trait", |b| b.iter(&mut entry));

    let mut entry = || ours.try_acquire().is_ok();
    check_outcome("resilience_try_acquire", &mut entry, |allowed| *allowed);
    group.bench_function("resilience_try_acquire", |b| b.iter(&mut entry));

    let governor = DefaultDirectRateLimiter::direct(governor_quota(FAST));
    let mut entry = || governor.check().is_ok();
    check_outcome("governor_direct", &mut entry, |allowed| *allowed);
    group.bench_function("governor_direct", |b| b.iter(&mut entry));
    group.finish();
}

fn direct_denied(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/direct_denied");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    let ours = ours_direct(Rate::per_hour(1));
    ours.check_now();
    let mut entry = || ours.check_now().is_allowed();
    check_outcome("resilience_check_now", &mut entry, |allowed| !*allowed);
    group.bench_function("resilience_check_now", |b| b.iter(&mut entry));

    let quota = Quota::per_hour(NonZeroU32::MIN);
    let governor = DefaultDirectRateLimiter::direct(quota);
    let _ = governor.check();
    let mut entry = || governor.check().is_ok();
    check_outcome("governor_direct", &mut entry, |allowed| !*allowed);
    group.bench_function("governor_direct", |b| b.iter(&mut entry));
    group.finish();
}

fn layer_allowed(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/layer_allowed");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    let mut service =
        RateLimitLayer::new(ours_direct(Rate::per_second(FAST))).layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check("resilience_layer", &mut entry);
    group.bench_function("resilience_layer", |b| b.iter(&mut entry));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    // Never runs out during a run: the window is an hour long.
    let tower_layer = tower::limit::RateLimitLayer::new(u64::MAX / 2, Duration::from_secs(3_600));
    let mut service = tower_layer.layer(service_fn(answer));
    let mut entry = || tower_call(&mut service);
    check("tower_rate_limit", &mut entry);
    group.bench_function("tower_rate_limit", |b| b.iter(&mut entry));
    group.finish();
}

fn keyed_allowed(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/keyed_allowed");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("client-{i:06}")).collect();

    let ours = LocalRateLimiter::builder("bench")
        .rate(Rate::per_second(FAST))
        .build()
        .expect("valid config");
    for key in &keys {
        ours.check_now(key);
    }
    let mut turn = 0;
    let mut entry = || {
        turn = (turn + 1) % KEYS;
        ours.check_now(&keys[turn]).is_allowed()
    };
    check_outcome("resilience_local", &mut entry, |allowed| *allowed);
    group.bench_function("resilience_local", |b| b.iter(&mut entry));

    let governor = DefaultKeyedRateLimiter::<String>::keyed(governor_quota(FAST));
    for key in &keys {
        let _ = governor.check_key(key);
    }
    let mut turn = 0;
    let mut entry = || {
        turn = (turn + 1) % KEYS;
        governor.check_key(&keys[turn]).is_ok()
    };
    check_outcome("governor_keyed", &mut entry, |allowed| *allowed);
    group.bench_function("governor_keyed", |b| b.iter(&mut entry));
    group.finish();
}

fn direct_allowed_2_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/direct_allowed_2_threads");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);

    let ours = ours_direct(Rate::per_second(FAST));
    let other = ours.clone();
    let contender = Contender::start(move || other.check_now().is_allowed());
    let mut entry = || ours.check_now().is_allowed();
    check_outcome("resilience_check_now", &mut entry, |allowed| *allowed);
    group.bench_function("resilience_check_now", |b| b.iter(&mut entry));
    drop(contender);

    let governor = Arc::new(DefaultDirectRateLimiter::direct(governor_quota(FAST)));
    let other = Arc::clone(&governor);
    let contender = Contender::start(move || other.check().is_ok());
    let mut entry = || governor.check().is_ok();
    check_outcome("governor_direct", &mut entry, |allowed| *allowed);
    group.bench_function("governor_direct", |b| b.iter(&mut entry));
    drop(contender);
    group.finish();
}

criterion_group!(
    benches,
    direct_allowed,
    direct_denied,
    layer_allowed,
    keyed_allowed,
    direct_allowed_2_threads
);
criterion_main!(benches);
