//! The sketched keyed limiter (a count-min sketch of fixed size for every key): its error
//! is over-estimation only and within the count-min bound. Under a flood of keys, a
//! well-behaved key is wrongly limited no more often than the bound allows, a heavy key is
//! always held to its limit, and threads racing on one key pass at most one request each
//! beyond it. Configuration and peeking work as for the exact limiter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use resilience::rate_limit::{Algorithm, LocalRateLimiter, RateLimiterConfig, SketchSize};
use resilience::Rate;

/// A limiter of `limit` requests per hour per key: every test runs within one window.
fn sketched(limit: u32, size: SketchSize) -> LocalRateLimiter {
    LocalRateLimiter::builder("sketched")
        .rate(Rate::per_hour(limit))
        .sketch(size.width, size.depth)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_keys_wrongly_limits_well_behaved_keys_within_the_bound() {
    let size = SketchSize::default();
    let limit = 100;
    let limiter = sketched(limit, size);
    // A flood: 10,000 keys, one request each.
    for flood in 0..10_000 {
        assert!(limiter.check_now(&format!("flood-{flood}")).is_allowed());
    }
    // A heavy key asks ten times its limit: held to it exactly, never more.
    let heavy = (0..10 * limit)
        .filter(|_| limiter.check_now("heavy").is_allowed())
        .count() as u32;
    assert!(heavy <= limit, "the heavy key passed {heavy} > {limit}");
    // 200 well-behaved keys, 20 requests each (a fifth of their limit).
    let (good_keys, good_requests) = (200, 20);
    let mut wrongly_limited = 0;
    for key in 0..good_keys {
        let key = format!("good-{key}");
        if (0..good_requests).any(|_| !limiter.check_now(&key).is_allowed()) {
            wrongly_limited += 1;
        }
    }
    // N requests were counted in the window. A good key is limited only if its estimate is
    // over by at least `limit − good_requests`; by the count-min bound, an error over
    // e·N/width happens to at most a share e^−depth of keys.
    let n = f64::from(10_000 + heavy + good_keys * good_requests);
    let error_bound = std::f64::consts::E * n / size.width as f64;
    assert!(
        error_bound < f64::from(limit - good_requests),
        "{error_bound}"
    );
    let share = f64::from(wrongly_limited) / f64::from(good_keys);
    let bound = (-(size.depth as f64)).exp();
    assert!(
        share <= bound,
        "{wrongly_limited} of {good_keys} limited early"
    );
    // The heavy key hit its limit at most `e·N/width` early, and only if it collided.
    assert!(
        f64::from(heavy) >= f64::from(limit) - error_bound,
        "{heavy}"
    );
    // Only the requests allowed were counted; the sketch stored no key.
    let metrics = limiter.metrics();
    assert_eq!(metrics.active_limiters, 0);
    assert_eq!(
        metrics.total_checks,
        u64::from(10_000 + 10 * limit + good_keys * good_requests)
    );
}

#[tokio::test(start_paused = true)]
async fn a_tiny_sketch_only_ever_limits_early() {
    // Two cells in one row: every key collides with half the others.
    let limiter = sketched(10, SketchSize { width: 2, depth: 1 });
    let mut allowed = std::collections::HashMap::new();
    for _ in 0..50 {
        for key in 0..8 {
            if limiter.check_now(&format!("k{key}")).is_allowed() {
                *allowed.entry(key).or_insert(0) += 1;
            }
        }
    }
    // Never late: no key passes its limit, and in all at most the two cells' limits pass.
    assert!(allowed.values().all(|&n| n <= 10), "{allowed:?}");
    assert!(allowed.values().sum::<u32>() <= 20, "{allowed:?}");
}

#[tokio::test(start_paused = true)]
async fn windows_slide_as_the_exact_counter_does() {
    let limiter = LocalRateLimiter::builder("sliding")
        .rate(Rate::per_second(3))
        .sketch(64, 2)
        .build()
        .unwrap();
    let exact = LocalRateLimiter::builder("exact")
        .rate(Rate::per_second(3))
        .algorithm(Algorithm::SlidingWindow)
        .build()
        .unwrap();
    // One key alone in the sketch decides exactly as the sliding-window counter.
    for step in 0..300_u64 {
        tokio::time::advance(Duration::from_millis(step % 7 * 90)).await;
        for _ in 0..step % 4 {
            assert_eq!(
                limiter.check_now("ada"),
                exact.check_now("ada"),
                "step {step}"
            );
        }
        assert_eq!(limiter.peek("ada"), exact.peek("ada"));
    }
}

#[test]
fn threads_racing_on_one_key_pass_at_most_one_request_each_beyond_its_limit() {
    let limit = 1_000;
    let limiter = sketched(limit, SketchSize::default());
    let threads = 8_u64;
    let allowed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..5_000 {
                    if limiter.check_now("hot").is_allowed() {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let allowed = allowed.load(Ordering::Relaxed);
    assert!(
        (u64::from(limit)..u64::from(limit) + threads).contains(&allowed),
        "{allowed}"
    );
}

#[test]
fn sketch_sizes_are_checked_and_fixed() {
    let config = |width, depth| RateLimiterConfig {
        algorithm: Algorithm::SketchedWindow,
        sketch: SketchSize { width, depth },
        ..RateLimiterConfig::new(Rate::per_second(1))
    };
    for (width, depth, field) in [
        (0, 4, "sketch.width"),
        (usize::MAX, 4, "sketch.width"),
        (1_024, 0, "sketch.depth"),
        (1_024, 17, "sketch.depth"),
        (SketchSize::MAX_WIDTH, 2, "sketch.width"),
    ] {
        let error = LocalRateLimiter::from_config("s", config(width, depth)).unwrap_err();
        assert_eq!(error.field(), field);
    }
    config(SketchSize::MAX_WIDTH, 1).validate().unwrap();
    config(SketchSize::MAX_WIDTH / 16, SketchSize::MAX_DEPTH)
        .validate()
        .unwrap();
    let limiter = LocalRateLimiter::from_config("s", config(1_024, 1)).unwrap();
    assert_eq!(SketchSize::default().bytes(), 64 * 1024);
    let error = limiter.set_config(config(512, 1)).unwrap_err();
    assert_eq!(error.field(), "sketch");
}

#[cfg(feature = "serde")]
#[test]
fn the_sketch_deserializes() {
    let config: RateLimiterConfig = serde_json::from_str(
        r#"{"rate": "10/s", "algorithm": "sketched_window", "sketch": {"width": 2048, "depth": 3}}"#,
    )
    .unwrap();
    assert_eq!(config.algorithm, Algorithm::SketchedWindow);
    assert_eq!(
        config.sketch,
        SketchSize {
            width: 2048,
            depth: 3
        }
    );
    let error = serde_json::from_str::<RateLimiterConfig>(
        r#"{"rate": "10/s", "sketch": {"width": 0, "depth": 3}}"#,
    )
    .unwrap_err();
    assert!(error.to_string().contains("sketch.width"), "{error}");
}
