//! Extreme values: durations at and past the one upper bound every config shares
//! ([`MAX_DURATION`]), backoffs that grow without a cap, waits of `Duration::MAX`. None may
//! panic; a config past the bound is refused naming its field.

use std::time::Duration;

use resilience::adaptive::AimdConfig;
use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::retry::{Backoff, BudgetConfig};
use resilience::{
    AdaptiveLimiter, Backpressure, Bulkhead, ConfigError, ConfigProblem, LoadShedder, Retry,
    Timeout, MAX_DURATION,
};
use tokio::time::advance;

/// Past the bound: representable, but longer than any config accepts.
const TOO_LONG: Duration = Duration::from_secs(u64::MAX);

fn refused<T: std::fmt::Debug>(built: Result<T, ConfigError>, field: &str) {
    let error = built.unwrap_err();
    assert_eq!(error.field(), field, "{error}");
    assert!(
        matches!(error.problem(), ConfigProblem::TooLarge { .. }),
        "{error}"
    );
}

#[test]
fn every_config_refuses_durations_past_the_bound_naming_the_field() {
    let breaker = || CircuitBreaker::builder("b");
    refused(breaker().open_duration(TOO_LONG).build(), "open_duration");
    refused(
        breaker().open_duration_backoff(2.0, TOO_LONG).build(),
        "max_open_duration",
    );
    refused(breaker().timeout(TOO_LONG).build(), "timeout");
    refused(
        AdaptiveLimiter::builder("a").wait_timeout(TOO_LONG).build(),
        "wait_timeout",
    );
    refused(
        Backpressure::builder("p").wait_timeout(TOO_LONG).build(),
        "wait_timeout",
    );
    refused(
        Bulkhead::builder("h").wait_timeout(TOO_LONG).build(),
        "wait_timeout",
    );
    refused(
        LoadShedder::builder("s").wait_timeout(TOO_LONG).build(),
        "wait_timeout",
    );
    refused(Retry::builder("r").max_delay(TOO_LONG).build(), "max_delay");
    refused(
        Retry::builder("r").max_elapsed(TOO_LONG).build(),
        "max_elapsed",
    );
    refused(
        Retry::builder("r")
            .budget(BudgetConfig {
                window: TOO_LONG,
                ..BudgetConfig::default()
            })
            .build(),
        "budget.window",
    );
    refused(Timeout::builder("t").limit(TOO_LONG).build(), "limit");
}

#[test]
fn the_bound_itself_is_accepted_everywhere() {
    CircuitBreaker::builder("b")
        .open_duration(MAX_DURATION)
        .timeout(MAX_DURATION)
        .build()
        .unwrap();
    AdaptiveLimiter::builder("a")
        .wait_timeout(MAX_DURATION)
        .build()
        .unwrap();
    Backpressure::builder("p")
        .wait_timeout(MAX_DURATION)
        .build()
        .unwrap();
    LoadShedder::builder("s")
        .wait_timeout(MAX_DURATION)
        .build()
        .unwrap();
    Retry::builder("r")
        .backoff(Backoff::Constant {
            delay: MAX_DURATION,
        })
        .max_delay(MAX_DURATION)
        .max_elapsed(MAX_DURATION)
        .build()
        .unwrap();
    Timeout::builder("t").limit(MAX_DURATION).build().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_breaker_open_for_the_longest_duration_trips_and_stays_open() {
    let breaker = CircuitBreaker::builder("b")
        .open_duration(MAX_DURATION)
        .build()
        .unwrap();
    breaker.trip();
    assert_eq!(breaker.state(), CircuitState::Open);
    let retry_after = breaker.try_acquire().unwrap_err().retry_after().unwrap();
    assert!(
        retry_after > Duration::from_secs(86_400 * 365 * 20),
        "{retry_after:?}"
    );
    advance(Duration::from_secs(86_400 * 365)).await;
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn an_uncapped_backoff_that_overflows_keeps_the_circuit_open() {
    let breaker = CircuitBreaker::builder("b")
        .failure_threshold(1)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut config = breaker.config();
    config.open_duration_multiplier = 1e300;
    breaker.set_config(config).unwrap();
    breaker.trip();
    advance(Duration::from_secs(60)).await;
    // The failed probe is the second trip: 60 s × 1e300 is far past anything representable.
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    let remaining = breaker.metrics().remaining_open_time.unwrap();
    assert!(
        remaining > Duration::from_secs(86_400 * 365 * 20),
        "{remaining:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn backpressure_waits_of_duration_max_wait_instead_of_panicking() {
    let controller = Backpressure::builder("p")
        .max_pending(2)
        .water_marks(1, 0)
        .build()
        .unwrap();
    let held = controller.acquire_timeout(Duration::MAX).await.unwrap();
    let waiter = {
        let controller = controller.clone();
        tokio::spawn(async move { controller.acquire_timeout(Duration::MAX).await })
    };
    advance(Duration::from_secs(3_600)).await;
    assert!(!waiter.is_finished());
    drop(held);
    assert!(waiter.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn adaptive_waits_of_duration_max_wait_instead_of_panicking() {
    let limiter = AdaptiveLimiter::builder("a")
        .aimd(AimdConfig {
            initial_limit: 1,
            min_limit: 1,
            ..AimdConfig::default()
        })
        .build()
        .unwrap();
    let held = limiter.acquire(Duration::MAX).await.unwrap();
    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire(Duration::MAX).await })
    };
    advance(Duration::from_secs(3_600)).await;
    assert!(!waiter.is_finished());
    drop(held);
    assert!(waiter.await.unwrap().is_ok());
}

/// The largest counts a config accepts build a working breaker: a detector grows with the
/// calls it sees instead of reserving its whole window when built (`u32::MAX` entries would be
/// tens of gigabytes, an abort rather than an error).
#[tokio::test(start_paused = true)]
async fn the_largest_detector_windows_build_a_working_breaker() {
    use resilience::circuit_breaker::{DetectorConfig, Window};
    for detector in [
        DetectorConfig::FailureCount {
            threshold: u32::MAX,
            window: Duration::from_secs(1),
        },
        DetectorConfig::FailureRate {
            window: Window::Calls(u32::MAX),
            threshold: 0.5,
            min_calls: u32::MAX,
        },
    ] {
        let breaker = CircuitBreaker::builder("huge")
            .detector(detector)
            .build()
            .unwrap();
        for _ in 0..3 {
            let failed = breaker.call(|| async { Err::<(), _>("down") }).await;
            assert!(matches!(failed, Err(resilience::Error::Inner("down"))));
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.metrics().failed_requests, 3);
    }
}
