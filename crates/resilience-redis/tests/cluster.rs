//! Limiters and the shared breaker on a real Redis Cluster (three primaries, three replicas,
//! `resilience-testkit`), in real time.
//!
//! Redis Cluster refuses a script whose keys span slots (`CROSSSLOT`), so every decision
//! made here without a backend error also proves the key layout; `keys.rs` checks the
//! slots themselves for many names. The failover test kills the primary that serves a key
//! and asserts counts and orderings, never durations: the failure policy answers while the
//! slot has no primary, Redis answers again after the replica took over, with the budget
//! and the breaker state the replica had received.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::rate_limit::{Algorithm, Denial, RateLimiter};
use resilience::Rate;
use resilience_redis::{redis, FailurePolicy, RedisBackend, RedisCircuitBreaker, RedisRateLimiter};
use resilience_testkit::{eventually_async, RedisCluster};

const CALL_TIMEOUT: Duration = Duration::from_millis(300);

/// One cluster at a time: six nodes each are plenty for a two-core machine, and a node
/// starved of CPU past its node timeout would be failed over by its peers.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn backend(cluster: &RedisCluster) -> RedisBackend {
    RedisBackend::cluster(cluster.urls())
        .call_timeout(CALL_TIMEOUT)
        .health_check_interval(Duration::from_millis(50))
        .connect()
        .await
        .unwrap()
}

fn local(name: &str, open: Duration) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .failure_threshold(1)
        .open_duration(open)
        .success_threshold(1)
        .half_open_max_calls(1)
        .build()
        .unwrap()
}

async fn shared(backend: &RedisBackend, name: &str, open: Duration) -> RedisCircuitBreaker {
    RedisCircuitBreaker::builder(local(name, open), backend)
        .sync_interval(Duration::from_secs(10))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiters_and_the_shared_breaker_run_on_a_cluster() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start().await.unwrap();
    let backend = backend(&cluster).await;
    assert!(backend.is_cluster());
    backend.ping().await.unwrap();

    for algorithm in [Algorithm::Gcra, Algorithm::SlidingLog] {
        let limiter = RedisRateLimiter::builder("api", &backend)
            .rate(Rate::per_minute(3))
            .algorithm(algorithm)
            .failure_policy(FailurePolicy::FailClosed)
            .build()
            .unwrap();
        let mut primaries = HashSet::new();
        for user in 0..30 {
            let key = format!("user-{user}");
            for check in 0..4 {
                let decision = limiter.check(&key).await;
                assert_eq!(
                    decision.is_allowed(),
                    check < 3,
                    "{algorithm:?} {key} #{check}"
                );
            }
            primaries.insert(cluster.primary_of(&limiter.redis_key(&key)).await.unwrap());
        }
        // Keys spread over the cluster: every primary holds some.
        assert_eq!(primaries.len(), 3, "{algorithm:?}");
        let metrics = limiter.metrics();
        assert_eq!(metrics.backend_errors, 0, "{algorithm:?}");
        assert_eq!(metrics.total_allowed, 90);
        assert_eq!(metrics.total_rejected, 30);
    }

    // Every breaker script: trip, read, probe (open -> half-open), release (close), reset.
    let other = self::backend(&cluster).await;
    let open = Duration::from_millis(200);
    let a = shared(&backend, "payments", open).await;
    let b = shared(&other, "payments", open).await;
    let failed: Result<(), _> = a.call(|| async { Err::<(), _>("boom") }).await;
    assert!(failed.is_err());
    assert_eq!(a.state(), CircuitState::Open);
    eventually_async(Duration::from_secs(5), "b follows the trip", || async {
        b.state() == CircuitState::Open
    })
    .await;
    assert!(b.call(|| async { Ok::<_, ()>(()) }).await.is_err());
    // After the open period a probe through b closes the circuit for both.
    eventually_async(
        Duration::from_secs(10),
        "a probe closes the circuit",
        || async {
            let _ = b.call(|| async { Ok::<_, ()>(()) }).await;
            b.shared_state().await.unwrap().state == CircuitState::Closed
        },
    )
    .await;
    eventually_async(Duration::from_secs(5), "a follows the close", || async {
        a.state() == CircuitState::Closed
    })
    .await;
    a.trip();
    eventually_async(
        Duration::from_secs(5),
        "b follows the second trip",
        || async { b.state() == CircuitState::Open },
    )
    .await;
    b.reset();
    eventually_async(Duration::from_secs(5), "a follows the reset", || async {
        a.state() == CircuitState::Closed
    })
    .await;
    for breaker in [&a, &b] {
        let metrics = breaker.metrics();
        assert_eq!(metrics.backend_errors, 0, "{metrics:?}");
        assert!(metrics.local.state == CircuitState::Closed);
    }
    assert!(b.metrics().probes_granted >= 1);
}

/// Resharding under a limiter and a breaker: `ASK` while the slot migrates, `MOVED` after.
/// One-key scripts (a limiter's decision, a breaker's read) follow both inside one call,
/// with no error. A multi-key script whose keys are half migrated gets `TRYAGAIN` from
/// Redis: the failure policy answers meanwhile, and the write is made once the slot has
/// settled, by itself. The budget and the breaker state travel with their slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_and_ask_redirections_are_followed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = RedisCluster::start().await.unwrap();
    let backend = backend(&cluster).await;
    let limiter = RedisRateLimiter::builder("api", &backend)
        .rate(Rate::per_hour(4))
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    let start = |backend: RedisBackend| async move {
        RedisCircuitBreaker::builder(local("ada", Duration::from_secs(600)), &backend)
            .sync_interval(Duration::from_millis(500))
            .start()
            .await
            .unwrap()
    };
    let breaker = start(backend.clone()).await;
    let watcher = start(self::backend(&cluster).await).await;
    assert!(limiter.check("ada").await.is_allowed());
    breaker.trip();
    eventually_async(
        Duration::from_secs(5),
        "the watcher follows the trip",
        || async { watcher.state() == CircuitState::Open },
    )
    .await;

    // The breaker "ada" has the same hash tag as the key "ada": one slot for both.
    let key = limiter.redis_key("ada");
    let moving = cluster.migrate_slot_of(&key).await.unwrap();
    assert_ne!(cluster.primary_of(&key).await.unwrap(), moving.to());
    assert!(limiter.check("ada").await.is_allowed(), "through ASK");
    assert_eq!(
        watcher.shared_state().await.unwrap().state,
        CircuitState::Open,
        "read through ASK"
    );
    assert_eq!(limiter.metrics().backend_errors, 0);
    assert_eq!(watcher.metrics().backend_errors, 0);
    // The reset touches three keys, of which only the state has moved: TRYAGAIN.
    breaker.reset();
    moving.finish(&cluster).await.unwrap();
    eventually_async(
        Duration::from_secs(30),
        "the reset is written after the move",
        || async { watcher.state() == CircuitState::Closed },
    )
    .await;
    eventually_async(Duration::from_secs(30), "Redis decides again", || async {
        backend.is_healthy()
    })
    .await;
    assert!(limiter.check("ada").await.is_allowed(), "through MOVED");
    assert!(limiter.check("ada").await.is_allowed());
    assert_eq!(
        limiter.check("ada").await.denial(),
        Some(Denial::RateExceeded),
        "the budget moved with its slot"
    );
}

/// Waits until the replicas have every write made so far (`WAIT` on every primary).
async fn replicated(backend: &RedisBackend) {
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query_async(&mut backend.connection())
        .await
        .unwrap();
    assert!(acked >= 1, "a replica acknowledged the writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_fails_over_and_decisions_return_to_redis() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = RedisCluster::start().await.unwrap();
    let backend = backend(&cluster).await;
    // Per hour, so that no unit comes back however long the failover takes.
    let limiter = RedisRateLimiter::builder("api", &backend)
        .rate(Rate::per_hour(3))
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    let victim = cluster.primary_of(&limiter.redis_key("ada")).await.unwrap();
    // A breaker whose keys live on the same primary as ada's budget.
    let mut name = String::new();
    for i in 0.. {
        name = format!("payments-{i}");
        let state_key = format!("resilience:cb:{{{name}}}");
        if cluster.primary_of(&state_key).await.unwrap() == victim {
            break;
        }
    }
    let open = Duration::from_secs(600);
    let a = shared(&backend, &name, open).await;
    let b = shared(&self::backend(&cluster).await, &name, open).await;

    // Before the kill: two of ada's three units spent, the breaker open everywhere.
    for _ in 0..2 {
        assert!(limiter.check("ada").await.is_allowed());
    }
    a.trip();
    eventually_async(Duration::from_secs(5), "b follows the trip", || async {
        b.state() == CircuitState::Open
    })
    .await;
    replicated(&backend).await;

    // Load on a key of the killed primary while it fails over.
    let mut bob = String::new();
    for i in 0.. {
        bob = format!("bob-{i}");
        if cluster.primary_of(&limiter.redis_key(&bob)).await.unwrap() == victim {
            break;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let (limiter, stop, unavailable) = (limiter.clone(), stop.clone(), unavailable.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                // Bob's budget is soon spent (denied as RateExceeded by Redis); only the
                // failure policy denies as BackendUnavailable.
                let decision = limiter.check(&bob).await;
                if decision.denial() == Some(Denial::BackendUnavailable) {
                    unavailable.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let killed = cluster
        .kill_primary_of(&limiter.redis_key("ada"))
        .await
        .unwrap();
    assert_eq!(killed, victim);
    eventually_async(Duration::from_secs(30), "the policy answers", || async {
        unavailable.load(Ordering::Relaxed) > 0
    })
    .await;
    // During the outage the breakers keep their local state.
    assert_eq!(a.state(), CircuitState::Open);
    assert_eq!(b.state(), CircuitState::Open);
    cluster.wait_for_failover(killed).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // Back to Redis by itself, with the replica's copy of ada's budget: one unit left.
    eventually_async(Duration::from_secs(30), "Redis decides again", || async {
        limiter.check("carol").await.budget_known()
    })
    .await;
    assert!(limiter.check("ada").await.is_allowed());
    let last = limiter.check("ada").await;
    assert_eq!(last.denial(), Some(Denial::RateExceeded));
    assert!(limiter.metrics().fallbacks_denied > 0);
    // The shared state survived on the replica: a new instance joins an open circuit.
    let c = shared(&self::backend(&cluster).await, &name, open).await;
    assert_eq!(c.state(), CircuitState::Open);
    assert_eq!(
        c.shared_state().await.unwrap().state,
        CircuitState::Open,
        "the promoted replica holds the open state"
    );
}
