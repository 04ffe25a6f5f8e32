//! Bytes per key of a keyed rate limiter at a million keys: ours and governor's, measured as
//! live heap bytes with `dhat` (requested sizes, before the allocator's own rounding).
//!
//! Each limiter is offered N distinct keys (`client-0000000`, ...), each checked once at a
//! rate of 1 per hour, so every key stays live. Ours is built with `max_keys = N`: keys are
//! kept as seeded 64-bit hashes, so the figure does not depend on key length, and a shard that
//! fills with live keys refuses the rest (counted as "refused"). Governor's keyed limiter
//! keeps the key itself and never evicts on its own; it is shown with `String` keys (what an
//! HTTP key is) and with `u64` keys (its floor).
//!
//! Run with: `cargo run --release -p resilience-benches --example rate_limit_memory [N]`

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota};
use resilience::rate_limit::LocalRateLimiter;
use resilience::Rate;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

/// Builds a limiter, offers it `keys` keys and prints what it holds.
fn measure<L>(
    name: &str,
    keys: usize,
    build: impl FnOnce() -> L,
    mut offer: impl FnMut(&L, usize),
    held: impl Fn(&L) -> usize,
) {
    let before = live_bytes();
    let limiter = build();
    for i in 0..keys {
        offer(&limiter, i);
    }
    let bytes = live_bytes() - before;
    let held = held(&limiter);
    println!(
        "{name:<28} {keys:>9} {held:>9} {:>8} {bytes:>12} {:>10.1}",
        keys - held,
        bytes as f64 / held as f64,
    );
}

fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("a number of keys"));
    let _profiler = dhat::Profiler::builder().testing().build();
    let hourly = Quota::per_hour(NonZeroU32::MIN);
    println!(
        "{:<28} {:>9} {:>9} {:>8} {:>12} {:>10}",
        "limiter", "offered", "held", "refused", "heap bytes", "bytes/key"
    );
    measure(
        "resilience LocalRateLimiter",
        keys,
        || {
            LocalRateLimiter::builder("memory")
                .rate(Rate::per_hour(1))
                .max_keys(keys)
                .build()
                .expect("valid config")
        },
        |limiter, i| {
            limiter.check_now(&format!("client-{i:07}"));
        },
        |limiter| limiter.metrics().active_limiters,
    );
    measure(
        "governor keyed <String>",
        keys,
        || DefaultKeyedRateLimiter::<String>::keyed(hourly),
        |limiter, i| {
            let _ = limiter.check_key(&format!("client-{i:07}"));
        },
        DefaultKeyedRateLimiter::len,
    );
    measure(
        "governor keyed <u64>",
        keys,
        || DefaultKeyedRateLimiter::<u64>::keyed(hourly),
        |limiter, i| {
            let _ = limiter.check_key(&(i as u64));
        },
        DefaultKeyedRateLimiter::len,
    );
}
