//! A backend that finds its primary through Redis Sentinel, following a failover: a real
//! primary, replica and `redis-sentinel` (`resilience-testkit`), in real time.
//!
//! The primary is killed under load. While no primary answers, the failure policy decides;
//! once Sentinel has promoted the replica, the backend moves there by itself and Redis
//! decides again, with the budgets and the breaker state the replica had received (the test
//! waits for replication before the kill, so the state *survives*; a write the replica
//! missed is rebuilt instead: an instance whose breaker is open writes its trip again when it
//! sees the record's new lifetime, see `breaker_faults.rs`). Counts and orderings only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::rate_limit::{Denial, RateLimiter};
use resilience::Rate;
use resilience_redis::{redis, FailurePolicy, RedisBackend, RedisCircuitBreaker, RedisRateLimiter};
use resilience_testkit::{eventually_async, RedisSentinel};

async fn backend(group: &RedisSentinel) -> RedisBackend {
    RedisBackend::sentinel(group.sentinel_urls(), group.service())
        .call_timeout(Duration::from_millis(300))
        .health_check_interval(Duration::from_millis(50))
        .connect()
        .await
        .unwrap()
}

async fn shared(backend: &RedisBackend, name: &str) -> RedisCircuitBreaker {
    let local = CircuitBreaker::builder(name)
        .failure_threshold(1)
        .open_duration(Duration::from_secs(600))
        .build()
        .unwrap();
    // A poll far beyond the test's waits: only pub/sub can explain a prompt follow.
    RedisCircuitBreaker::builder(local, backend)
        .sync_interval(Duration::from_secs(60))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed_under_load() {
    let mut group = RedisSentinel::start().await.unwrap();
    let backend = backend(&group).await;
    assert!(!backend.is_cluster());
    backend.ping().await.unwrap();
    let limiter = RedisRateLimiter::builder("api", &backend)
        .rate(Rate::per_hour(3))
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    let a = shared(&backend, "payments").await;
    let b = shared(&self::backend(&group).await, "payments").await;

    for _ in 0..2 {
        assert!(limiter.check("ada").await.is_allowed());
    }
    a.trip();
    eventually_async(Duration::from_secs(5), "b follows the trip", || async {
        b.state() == CircuitState::Open
    })
    .await;
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query_async(&mut backend.connection())
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica has every write");

    let stop = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let (limiter, stop, unavailable) = (limiter.clone(), stop.clone(), unavailable.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                if limiter.check("bob").await.denial() == Some(Denial::BackendUnavailable) {
                    unavailable.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let old = group.kill_primary().await.unwrap();
    eventually_async(Duration::from_secs(30), "the policy answers", || async {
        unavailable.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(!backend.is_healthy());
    assert_eq!(a.state(), CircuitState::Open);
    let new = group.wait_for_failover(old).await.unwrap();
    assert_ne!(new, old);
    eventually_async(Duration::from_secs(30), "Redis decides again", || async {
        limiter.check("carol").await.budget_known()
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // The promoted replica's copy: ada has one unit left; the circuit is open for a newcomer.
    assert!(limiter.check("ada").await.is_allowed());
    assert_eq!(
        limiter.check("ada").await.denial(),
        Some(Denial::RateExceeded)
    );
    assert!(limiter.metrics().fallbacks_denied > 0);
    let c = shared(&self::backend(&group).await, "payments").await;
    assert_eq!(c.state(), CircuitState::Open);

    // Pub/sub follows the move too: once every backend has moved (b's saw no call, only
    // its lost connection), a reset on the newcomer reaches a and b long before their 60 s
    // poll.
    eventually_async(Duration::from_secs(30), "every backend moved", || async {
        a.metrics().backend_healthy && b.metrics().backend_healthy
    })
    .await;
    c.reset();
    eventually_async(
        Duration::from_secs(10),
        "a and b follow the reset",
        || async { a.state() == CircuitState::Closed && b.state() == CircuitState::Closed },
    )
    .await;
}

#[tokio::test]
async fn bad_addresses_are_typed_errors_and_an_absent_sentinel_is_an_outage() {
    let none: [&str; 0] = [];
    assert!(RedisBackend::cluster(none).connect().await.is_err());
    assert!(RedisBackend::sentinel(none, "x").connect().await.is_err());
    assert!(RedisBackend::sentinel(["not a url"], "x")
        .connect()
        .await
        .is_err());
    assert!(RedisBackend::cluster(["nope://127.0.0.1:1"])
        .connect()
        .await
        .is_err());

    // Nobody listens on that port: the backend starts, unhealthy, and the policy decides.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", free.local_addr().unwrap());
    drop(free);
    let backend = RedisBackend::sentinel([url], "resilience")
        .call_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    assert!(!backend.is_healthy());
    assert!(backend.ping().await.is_err());
    let limiter = RedisRateLimiter::builder("api", &backend)
        .rate(Rate::per_hour(3))
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    assert_eq!(
        limiter.check("ada").await.denial(),
        Some(Denial::BackendUnavailable)
    );
}
