//! Keyed rate limiting in fixed memory: our sketched limiter (a sliding-window counter over a
//! count-min sketch) side by side with pingora-limits' `Rate` (a count-min sketch per window
//! slot, current and previous), at the same memory: 4 rows of 1,024 cells of 16 bytes for
//! ours (a count and its window, for two windows), 2 slots × 4 rows × 1,024 `AtomicIsize`
//! for pingora's, 64 KiB each.
//!
//! ```text
//! cargo bench -p resilience-benches --bench rate_limit_sketch -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Group `rate_limit/sketch_allowed`: 1,024 distinct `String` keys taken in turn, every check
//! allowed (10⁹ per second). `floor_atomic`; `pingora_observe` (`Rate::observe(&key, 1)`
//! compared with the limit: a fixed-window count, one ahash per row, one `fetch_add` per row);
//! `pingora_rate_with_observe` (its sliding estimate from both windows, then the count: what
//! a sliding-window limit on pingora costs); ours: `sketched_check` (`check_now`: one
//! foldhash, the estimate from both windows, the decision with `remaining` and
//! `reset_after`, one compare-exchange per row), `sketched_peek` (the same without counting)
//! and `exact_gcra` (the exact keyed limiter, for reference).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pingora_limits::rate::Rate as PingoraRate;
use resilience::rate_limit::LocalRateLimiter;
use resilience::Rate;
use resilience_benches::{check_outcome, floor};

/// One per nanosecond: never runs out during a run.
const FAST: u32 = 1_000_000_000;
const KEYS: usize = 1_024;

fn sketch_allowed(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit/sketch_allowed");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("client-{i:06}")).collect();

    let pingora = PingoraRate::new(Duration::from_secs(1));
    let mut turn = 0;
    let mut entry = || {
        turn = (turn + 1) % KEYS;
        pingora.observe(&keys[turn], 1) <= FAST as isize
    };
    check_outcome("pingora_observe", &mut entry, |allowed| *allowed);
    group.bench_function("pingora_observe", |b| b.iter(&mut entry));

    let mut turn = 0;
    let mut entry = || {
        turn = (turn + 1) % KEYS;
        let key = &keys[turn];
        let estimate = pingora.rate_with(key, |rate| {
            let previous = rate.prev_samples as f64 * (1.0 - rate.current_interval_fraction);
            previous + rate.curr_samples as f64
        });
        estimate < f64::from(FAST) && pingora.observe(key, 1) > 0
    };
    check_outcome("pingora_rate_with_observe", &mut entry, |allowed| *allowed);
    group.bench_function("pingora_rate_with_observe", |b| b.iter(&mut entry));

    let sketched = LocalRateLimiter::builder("bench")
        .rate(Rate::per_second(FAST))
        .sketch(1_024, 4)
        .build()
        .expect("valid config");
    assert_eq!(sketched.config().sketch.bytes(), 64 * 1024);
    let mut turn = 0;
    let mut entry = || {
        turn = (turn + 1) % KEYS;
        sketched.check_now(&keys[turn]).is_allowed()
    };
    check_outcome("sketched_check", &mut entry, |allowed| *allowed);
    group.bench_function("sketched_check", |b| b.iter(&mut entry));

    let mut turn = 0;
    let mut entry = || {
        turn = (turn + 1) % KEYS;
        sketched.peek(&keys[turn]).is_allowed()
    };
    check_outcome("sketched_peek", &mut entry, |allowed| *allowed);
    group.bench_function("sketched_peek", |b| b.iter(&mut entry));

    let exact = LocalRateLimiter::builder("bench")
        .rate(Rate::per_second(FAST))
        .build()
        .expect("valid config");
    for key in &keys {
        exact.check_now(key);
    }
    let mut turn = 0;
    let mut entry = || {
        turn = (turn + 1) % KEYS;
        exact.check_now(&keys[turn]).is_allowed()
    };
    check_outcome("exact_gcra", &mut entry, |allowed| *allowed);
    group.bench_function("exact_gcra", |b| b.iter(&mut entry));
    group.finish();
}

criterion_group!(benches, sketch_allowed);
criterion_main!(benches);
