//! The pipeline's hedge slot (inside the retry, outside the breaker, each hedged attempt
//! through everything inside) and an adaptive throttle sharing the rate-limiter slot with a
//! rate limiter, under paused time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::circuit_breaker::CircuitBreaker;
use resilience::hedge::Hedge;
use resilience::pipeline::Pipeline;
use resilience::rate_limit::DirectRateLimiter;
use resilience::throttle::AdaptiveThrottle;
use resilience::{Rate, Retry, Timeout};
use tokio::time::{sleep, Instant};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_hedged_attempt_wins_the_race_through_the_breaker_and_timeout() {
    let hedge = Hedge::builder("search").delay(20 * MS).build().unwrap();
    let breaker = CircuitBreaker::builder("search").build().unwrap();
    let pipeline = Pipeline::<&str, std::io::Error>::builder("search")
        .retry(Retry::builder("search").max_attempts(2).build().unwrap())
        .hedge(hedge.clone())
        .circuit_breaker(breaker.clone())
        .timeout(Timeout::new(100 * MS).unwrap())
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let started = Instant::now();
    let answer = pipeline
        .call(|| async {
            // The first attempt is slow (cut off by no one: the hedge wins first).
            let latency = if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                80
            } else {
                5
            };
            sleep(latency * MS).await;
            Ok("hits")
        })
        .await
        .unwrap();
    assert_eq!(answer, "hits");
    assert_eq!(started.elapsed(), 25 * MS, "20 ms delay + 5 ms");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(hedge.metrics().hedge_wins, 1);
    // The winner was a success through the breaker; the loser was dropped, not a failure.
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.successful_requests, metrics.failed_requests),
        (1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttle_shares_the_rate_limiter_slot() {
    let limiter = DirectRateLimiter::builder("api")
        .rate(Rate::per_second(100))
        .build()
        .unwrap();
    let throttle = AdaptiveThrottle::builder("api").build().unwrap();
    let pipeline = Pipeline::<u32, String>::builder("api")
        .rate_limiter((limiter.clone(), throttle.clone()))
        .build()
        .unwrap();
    for n in 0..10 {
        let result = pipeline
            .call(|| async move {
                if n % 2 == 0 {
                    Ok(n)
                } else {
                    Err("503".to_owned())
                }
            })
            .await;
        assert_eq!(result.is_ok(), n % 2 == 0);
    }
    let metrics = throttle.metrics();
    assert_eq!((metrics.window_requests, metrics.window_accepts), (10, 5));
    assert_eq!(metrics.total_failures, 5);
    assert_eq!(limiter.metrics().total_allowed, 10);
}
