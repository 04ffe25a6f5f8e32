//! Breaker transitions reach the other instances by pub/sub, long before their poll: three
//! instances (three backends, as three processes would have) on a real `redis-server`, with
//! a poll interval of a minute, so that only the published message can explain an instance
//! following within the test. Orderings and counts only: a loaded machine may be slow, but
//! never a minute slow. The latency itself is printed here and measured by the `redis`
//! bench (`resilience-benches`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience_redis::{RedisBackend, RedisCircuitBreaker};
use resilience_testkit::RedisServer;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Far beyond any wait below: a follow within the test is the message's doing.
const POLL: Duration = Duration::from_secs(60);
/// How long a follower may take on a loaded machine before the test calls it lost.
const PATIENCE: Duration = Duration::from_secs(10);

async fn instance(server: &RedisServer) -> RedisCircuitBreaker {
    let backend = RedisBackend::builder(server.url())
        .call_timeout(Duration::from_millis(300))
        .health_check_interval(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let local = CircuitBreaker::builder("payments")
        .failure_threshold(1)
        .open_duration(Duration::from_secs(600))
        .build()
        .unwrap();
    RedisCircuitBreaker::builder(local, &backend)
        .sync_interval(POLL)
        .start()
        .await
        .unwrap()
}

/// Calls `breaker` every millisecond until it rejects, then 20 more times; returns when it
/// first rejected. `admitted` counts the calls it admitted before. Every call after the
/// first rejection must be rejected too: the state does not flap back.
fn watch(breaker: RedisCircuitBreaker, admitted: Arc<AtomicU32>) -> JoinHandle<Instant> {
    tokio::spawn(async move {
        let deadline = Instant::now() + PATIENCE;
        let rejected_at = loop {
            match breaker.acquire().await {
                Ok(permit) => {
                    permit.success();
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => break Instant::now(),
            }
            assert!(
                Instant::now() < deadline,
                "{} never rejected",
                breaker.name()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        for _ in 0..20 {
            assert!(breaker.acquire().await.is_err(), "rejects from then on");
        }
        rejected_at
    })
}

/// Trips `a` once `b` and `c` are admitting calls, and returns how long `b` and `c` took
/// to reject.
async fn trip_and_watch(
    a: &RedisCircuitBreaker,
    b: &RedisCircuitBreaker,
    c: &RedisCircuitBreaker,
) -> [Duration; 2] {
    let counts = [Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0))];
    let wb = watch(b.clone(), Arc::clone(&counts[0]));
    let wc = watch(c.clone(), Arc::clone(&counts[1]));
    let deadline = Instant::now() + PATIENCE;
    while counts
        .iter()
        .any(|count| count.load(Ordering::Relaxed) == 0)
    {
        assert!(Instant::now() < deadline, "the watchers never ran");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let tripped = Instant::now();
    let failed: Result<(), _> = a.call(|| async { Err::<(), _>("boom") }).await;
    assert!(failed.is_err());
    assert!(
        a.acquire().await.is_err(),
        "the tripping instance rejects at once"
    );
    let (b_at, c_at) = (wb.await.unwrap(), wc.await.unwrap());
    // Ordering: the followers reject after the trip, never before.
    assert!(b_at >= tripped && c_at >= tripped);
    [b_at - tripped, c_at - tripped]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_reaches_the_other_instances_before_their_poll() {
    let server = RedisServer::start().await.unwrap();
    let started = Instant::now();
    let (a, b, c) = (
        instance(&server).await,
        instance(&server).await,
        instance(&server).await,
    );
    let [to_b, to_c] = trip_and_watch(&a, &b, &c).await;
    println!("trip reached b after {to_b:?}, c after {to_c:?}");
    assert!(started.elapsed() < POLL, "no poll ran: pub/sub did it");
    for follower in [&b, &c] {
        let metrics = follower.metrics();
        assert_eq!(
            metrics.applied, 1,
            "one shared transition applied: {metrics:?}"
        );
        assert_eq!(metrics.writes, 0, "followers write nothing: {metrics:?}");
    }
    assert_eq!(a.metrics().writes, 1);

    // And back: a reset on c closes a and b.
    c.reset();
    let deadline = Instant::now() + PATIENCE;
    while a.state() != CircuitState::Closed || b.state() != CircuitState::Closed {
        assert!(Instant::now() < deadline, "the reset did not reach a and b");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(started.elapsed() < POLL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_come_back_after_a_redis_restart() {
    let mut server = RedisServer::start().await.unwrap();
    let started = Instant::now();
    let (a, b, c) = (
        instance(&server).await,
        instance(&server).await,
        instance(&server).await,
    );
    server.restart().await.unwrap();
    // Every backend notices the lost connection, and subscribes again once Redis answers.
    let deadline = Instant::now() + PATIENCE;
    for breaker in [&a, &b, &c] {
        while !breaker.metrics().backend_healthy || breaker.shared_state().await.is_err() {
            assert!(Instant::now() < deadline, "the backends did not recover");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let [to_b, to_c] = trip_and_watch(&a, &b, &c).await;
    println!("after a restart, the trip reached b after {to_b:?}, c after {to_c:?}");
    assert!(
        started.elapsed() < POLL,
        "no poll ran: the renewed subscriptions did it"
    );
}
