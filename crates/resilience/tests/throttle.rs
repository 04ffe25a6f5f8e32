//! Adaptive throttling through the public API, under paused time: the exact window, what
//! counts as a request and as an accept, a simulated overloaded backend (the client converges
//! to `k` times what the backend accepts, then recovers), events, the pipeline, the tower
//! layer and many threads sharing one throttle.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::classify::Outcome;
use resilience::pipeline::Pipeline;
use resilience::throttle::{AdaptiveThrottle, ThrottleConfig};
use resilience::{Error, PatternKind, RejectionReason, Retry, Timeout};
use resilience_testkit::EventRecorder;

const SECOND: Duration = Duration::from_secs(1);
const NS: Duration = Duration::from_nanos(1);

/// A throttle that judges from the first request and can reject up to 99 %.
fn eager(window: Duration, seed: u64) -> AdaptiveThrottle {
    AdaptiveThrottle::builder("eager")
        .window(window)
        .min_requests(0)
        .max_rejection_probability(0.99)
        .seed(seed)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_window_counts_requests_and_accepts_for_exactly_its_length() {
    // Sixteen buckets of one second.
    let throttle = eager(16 * SECOND, 1);
    for _ in 0..4 {
        throttle.try_acquire().unwrap().success();
    }
    throttle.try_acquire().unwrap().failure();
    // 5 requests, 4 accepts: (5 − 8) / 6 < 0.
    let metrics = throttle.metrics();
    assert_eq!((metrics.window_requests, metrics.window_accepts), (5, 4));
    assert_eq!(metrics.rejection_probability, 0.0);
    assert_eq!(metrics.total_failures, 1);

    // The first bucket is counted until the sixteenth ends, one nanosecond before 16 s.
    tokio::time::advance(16 * SECOND - NS).await;
    assert_eq!(throttle.metrics().window_requests, 5);
    tokio::time::advance(NS).await;
    let metrics = throttle.metrics();
    assert_eq!((metrics.window_requests, metrics.window_accepts), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn the_probability_is_the_formula_of_the_window() {
    let throttle = eager(16 * SECOND, 7);
    // Ten refused requests: each is drawn against (R − 0) / (R + 1) of those before it.
    let mut throttled = 0;
    for _ in 0..10 {
        match throttle.try_acquire() {
            Ok(permit) => permit.failure(),
            Err(rejection) => {
                assert_eq!(rejection.reason(), RejectionReason::Throttled);
                assert_eq!(rejection.pattern(), PatternKind::Throttle);
                assert_eq!(rejection.retry_after(), None);
                throttled += 1;
            }
        }
    }
    let metrics = throttle.metrics();
    assert_eq!(
        metrics.window_requests, 10,
        "throttled requests count as requests"
    );
    assert_eq!(metrics.total_throttled, throttled);
    assert_eq!(
        metrics.total_failures,
        10 - throttled,
        "but never as failures"
    );
    assert_eq!(metrics.rejection_probability, 10.0 / 11.0);
    // Three accepts later (13 requests, 3 accepts, K = 2): (13 − 6) / 14, if admitted.
    let mut accepted = 0;
    while accepted < 3 {
        if let Ok(permit) = throttle.try_acquire() {
            permit.success();
            accepted += 1;
        }
    }
    let metrics = throttle.metrics();
    let (r, a) = (
        metrics.window_requests as f64,
        metrics.window_accepts as f64,
    );
    assert_eq!(a, 3.0);
    assert_eq!(metrics.rejection_probability, (r - 2.0 * a) / (r + 1.0));
}

#[tokio::test(start_paused = true)]
async fn no_rejection_below_min_requests_and_never_above_the_cap() {
    let throttle = AdaptiveThrottle::builder("guarded")
        .min_requests(50)
        .max_rejection_probability(0.5)
        .seed(3)
        .build()
        .unwrap();
    // A cold start: the first 50 requests all go out, although every one fails.
    for _ in 0..50 {
        throttle.try_acquire().unwrap().failure();
    }
    assert_eq!(throttle.rejection_probability(), 0.5);
    let mut throttled = 0;
    for _ in 0..1_000 {
        match throttle.try_acquire() {
            Ok(permit) => permit.failure(),
            Err(_) => throttled += 1,
        }
    }
    // At most half is dropped: within 5 standard deviations of 500 of 1,000.
    assert!((420..=580).contains(&throttled), "{throttled}");
}

#[tokio::test(start_paused = true)]
async fn cancelled_and_ignored_calls_count_as_accepted() {
    let throttle = eager(16 * SECOND, 1);
    drop(throttle.try_acquire().unwrap());
    throttle.try_acquire().unwrap().record(Outcome::Ignored);
    let metrics = throttle.metrics();
    assert_eq!((metrics.window_requests, metrics.window_accepts), (2, 2));
    assert_eq!(metrics.total_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn requests_waiting_for_their_answer_count_as_accepted() {
    // A burst sent before any answer: nothing has been refused, so nothing is throttled.
    let throttle = eager(16 * SECOND, 1);
    let permits: Vec<_> = (0..100)
        .map(|_| throttle.try_acquire().expect("nothing refused yet"))
        .collect();
    let metrics = throttle.metrics();
    assert_eq!(
        (metrics.window_requests, metrics.window_accepts),
        (100, 100)
    );
    // Their refusals arrive: the window now holds 100 requests and no accept.
    for permit in permits {
        permit.failure();
    }
    let metrics = throttle.metrics();
    assert_eq!((metrics.window_requests, metrics.window_accepts), (100, 0));
    assert_eq!(metrics.rejection_probability, 0.99);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_withdraws_what_the_window_promised() {
    // The burst above earned credit for the requests after it (nothing was refused when the
    // window was summed); the refusals that follow must take it back, so the very next
    // requests are drawn against the capped probability.
    let throttle = eager(16 * SECOND, 3);
    let permits: Vec<_> = (0..100).map(|_| throttle.try_acquire().unwrap()).collect();
    for permit in permits {
        permit.failure();
    }
    let mut throttled = 0;
    for _ in 0..20 {
        match throttle.try_acquire() {
            Ok(permit) => permit.failure(),
            Err(_) => throttled += 1,
        }
    }
    assert!(throttled >= 15, "{throttled} of 20 throttled at p = 0.99");
}

#[tokio::test(start_paused = true)]
async fn an_owned_permit_outlives_the_handle() {
    let throttle = eager(16 * SECOND, 1);
    let permit = throttle.clone().try_acquire_owned().unwrap();
    tokio::spawn(async move { permit.failure() }).await.unwrap();
    let metrics = throttle.metrics();
    assert_eq!((metrics.window_requests, metrics.window_accepts), (1, 0));
    assert_eq!(metrics.total_failures, 1);
    let permit = throttle.try_acquire_owned().unwrap();
    assert!(format!("{permit:?}").starts_with("OwnedPermit"));
    drop(permit);
    assert_eq!(throttle.metrics().window_accepts, 1, "dropped: accepted");
}

/// One simulated second: `offered` requests at even intervals to a backend that accepts the
/// first `capacity` it receives in that second and refuses the rest. Returns (sent,
/// accepted, throttled).
async fn second(throttle: &AdaptiveThrottle, offered: u32, capacity: u32) -> (u32, u32, u32) {
    let (mut sent, mut accepted, mut throttled) = (0, 0, 0);
    for _ in 0..offered {
        match throttle.try_acquire() {
            Ok(permit) => {
                sent += 1;
                if accepted < capacity {
                    accepted += 1;
                    permit.success();
                } else {
                    permit.failure();
                }
            }
            Err(_) => throttled += 1,
        }
        tokio::time::advance(SECOND / offered).await;
    }
    (sent, accepted, throttled)
}

#[tokio::test(start_paused = true)]
async fn an_overloaded_backend_receives_k_times_what_it_accepts_then_recovers() {
    // The defaults: a 2-minute window, K = 2. The client offers 100 requests a second; the
    // backend accepts 10 a second.
    let throttle = AdaptiveThrottle::builder("simulated")
        .seed(42)
        .build()
        .unwrap();
    let k = throttle.config().k;
    let (offered, capacity) = (100_u32, 10_u32);
    let window = throttle.config().window.as_secs() as u32;

    // Once the window is full of overload, the window holds R requests and A ≈ (C/O)·R
    // accepts, so p = (R − K·A) / (R + 1) and the client sends a share 1 − p ≈ K·C/O = 0.2
    // of what it is offered: the backend receives twice what it accepts and refuses half.
    for _ in 0..window + 30 {
        second(&throttle, offered, capacity).await;
    }
    let (mut sent, mut accepted, mut total) = (0_u64, 0_u64, 0_u64);
    let seconds = 360;
    for _ in 0..seconds {
        let (s, a, _) = second(&throttle, offered, capacity).await;
        sent += u64::from(s);
        accepted += u64::from(a);
        total += u64::from(offered);
    }
    // Expected share, with the `+ 1` and a window of at least 15 of its 16 buckets.
    let min_window_requests = f64::from(offered * window) * 15.0 / 16.0;
    let share = k * f64::from(capacity) / f64::from(offered);
    let share_low = 1.0 - (1.0 - share) * 1.0; // the `+ 1` only lowers p
    let share_high = 1.0 - (1.0 - share) * min_window_requests / (min_window_requests + 1.0);
    // Each request is an independent draw: five standard deviations of a binomial count.
    let sigma = (total as f64 * share * (1.0 - share)).sqrt();
    let (low, high) = (
        share_low * total as f64 - 5.0 * sigma,
        share_high * total as f64 + 5.0 * sigma,
    );
    assert!(
        (low..=high).contains(&(sent as f64)),
        "sent {sent} of {total}, expected {low:.0}..={high:.0}"
    );
    // The backend was saturated every second (it accepted its capacity) and received about
    // K times that.
    assert!(accepted <= u64::from(capacity) * seconds);
    assert!(accepted as f64 >= 0.99 * f64::from(capacity) * seconds as f64);
    let received_per_accept = sent as f64 / accepted as f64;
    assert!(
        (received_per_accept - k).abs() <= 5.0 * sigma / accepted as f64 + 0.02,
        "{received_per_accept}"
    );

    // The backend recovers (accepts everything). Throttled requests never counted as
    // failures, so the probability falls to zero within a few windows, for good.
    let mut last_throttled = None;
    for at in 0..4 * window {
        let (_, _, throttled) = second(&throttle, offered, u32::MAX).await;
        if throttled > 0 {
            last_throttled = Some(at);
        }
    }
    let last = last_throttled.expect("it was throttling when the backend recovered");
    assert!(
        last < 2 * window,
        "still throttling {last} s after the recovery"
    );
    assert_eq!(throttle.rejection_probability(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_request_is_an_event_with_its_probability() {
    let throttle = eager(16 * SECOND, 11);
    let recorder = EventRecorder::attach(throttle.events());
    let mut probabilities = Vec::new();
    for _ in 0..20 {
        let p = throttle.rejection_probability();
        match throttle.try_acquire() {
            Ok(permit) => permit.failure(),
            Err(_) => probabilities.push(p),
        }
    }
    assert!(!probabilities.is_empty());
    let events = recorder.events();
    assert_eq!(events.len(), probabilities.len());
    for (event, p) in events.iter().zip(&probabilities) {
        assert_eq!(event.kind().as_str(), "throttle_rejected");
        assert_eq!(event.metadata()["probability"], p.to_string());
    }
}

#[tokio::test(start_paused = true)]
async fn in_a_pipeline_timeouts_count_as_refusals_and_throttling_is_not_retried() {
    let throttle = eager(16 * SECOND, 5);
    let pipeline = Pipeline::<u32, String>::builder("client")
        .retry(Retry::builder("client").max_attempts(3).build().unwrap())
        .rate_limiter(throttle.clone())
        .timeout(Timeout::new(SECOND).unwrap())
        .build()
        .unwrap();
    // A backend that hangs: every attempt times out and counts against it.
    let attempts = AtomicU32::new(0);
    for _ in 0..20 {
        let before = throttle.metrics();
        let result = pipeline
            .call(|| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<Result<u32, String>>().await
            })
            .await;
        let after = throttle.metrics();
        let throttled = after.total_throttled - before.total_throttled;
        let timed_out = after.total_failures - before.total_failures;
        // Up to three attempts; a throttled one ends the call, never retried.
        assert!(throttled <= 1 && timed_out + throttled <= 3);
        let last = match result {
            Err(Error::RetryExhausted { last, .. }) => *last.unwrap(),
            other => other.unwrap_err(),
        };
        if throttled == 1 {
            let rejection = last.rejection().unwrap_or_else(|| panic!("{last:?}"));
            assert_eq!(rejection.reason(), RejectionReason::Throttled);
        } else {
            assert!(last.is_timeout(), "{last:?}");
            assert_eq!(timed_out, 3);
        }
    }
    let metrics = throttle.metrics();
    assert!(metrics.total_throttled > 0);
    assert_eq!(
        metrics.total_failures,
        u64::from(attempts.load(Ordering::SeqCst))
    );
    assert_eq!(metrics.window_accepts, 0);
}

#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn as_tower_middleware_errors_are_refusals() {
    use resilience::throttle::ThrottleLayer;
    use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

    let throttle = eager(16 * SECOND, 9);
    let mut client = ServiceBuilder::new()
        .layer(ThrottleLayer::new(throttle.clone()))
        .service(service_fn(|ok: bool| async move {
            if ok {
                Ok(1)
            } else {
                Err("503")
            }
        }));
    assert_eq!(client.ready().await.unwrap().call(true).await.unwrap(), 1);
    let _ = client.ready().await.unwrap().call(false).await;
    let metrics = throttle.metrics();
    assert_eq!((metrics.window_requests, metrics.window_accepts), (2, 1));
    assert_eq!(metrics.total_failures, 1);
}

#[test]
fn many_threads_lose_no_count() {
    // A window of a year: every request of the test is in it, whatever the real clock does.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let throttle = runtime.block_on(async {
        AdaptiveThrottle::from_config(
            "shared",
            ThrottleConfig {
                window: resilience::throttle::MAX_WINDOW,
                seed: Some(1),
                ..ThrottleConfig::default()
            },
        )
        .unwrap()
    });
    let threads = 8;
    let per_thread = 5_000_u64;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let throttle = throttle.clone();
            scope.spawn(move || {
                for i in 0..per_thread {
                    if let Ok(permit) = throttle.try_acquire() {
                        // Two of every three answers are refusals.
                        if (i + t) % 3 == 0 {
                            permit.success();
                        } else {
                            permit.failure();
                        }
                    }
                }
            });
        }
    });
    let metrics = throttle.metrics();
    let total = threads * per_thread;
    assert_eq!(metrics.total_requests, total);
    assert_eq!(
        metrics.window_requests, total,
        "no lost increment in the ring"
    );
    assert_eq!(
        metrics.window_accepts + metrics.total_failures + metrics.total_throttled,
        total,
        "every request is accepted, refused or throttled, once"
    );
    assert!(metrics.total_throttled > 0);
}

#[test]
fn named_in_a_registry() {
    use resilience::registry::{Registry, RegistryError};

    let registry = Registry::<AdaptiveThrottle>::new();
    let config = ThrottleConfig {
        seed: Some(1),
        ..ThrottleConfig::default()
    };
    let a = registry.get_or_create("search", config).unwrap();
    let b = registry.get_or_create("search", config).unwrap();
    a.try_acquire().unwrap().success();
    assert_eq!(b.metrics().window_accepts, 1, "same name, same throttle");
    let other = ThrottleConfig { k: 1.5, ..config };
    assert!(matches!(
        registry.get_or_create("search", other),
        Err(RegistryError::ConfigMismatch { .. })
    ));
    assert_eq!(registry.metrics()["search"].total_requests, 1);
    let error = AdaptiveThrottle::from_config("bad", ThrottleConfig { k: 0.0, ..config });
    assert_eq!(error.unwrap_err().field(), "k");
}
