//! Shared circuit-breaker state against a real `redis-server` (one per test), in real time.
//! Each test runs two or three breaker instances, each on its own connection, as separate
//! processes would.

use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::{Error, RejectionReason};
use resilience_redis::{FailurePolicy, RedisBackend, RedisCircuitBreaker};
use resilience_testkit::RedisServer;
use tokio::time::Instant;

const SYNC: Duration = Duration::from_millis(50);
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// The documented staleness bound (`sync_interval` + call timeout), plus slack for a busy
/// machine.
const STALENESS: Duration = Duration::from_millis(50 + 500 + 400);

async fn backend(server: &RedisServer) -> RedisBackend {
    RedisBackend::builder(server.url())
        .call_timeout(CALL_TIMEOUT)
        .health_check_interval(Duration::from_millis(50))
        .connect()
        .await
        .unwrap()
}

fn local(name: &str, open: Duration) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .failure_threshold(2)
        .open_duration(open)
        .success_threshold(2)
        .half_open_max_calls(1)
        .build()
        .unwrap()
}

async fn shared(server: &RedisServer, name: &str, open: Duration) -> RedisCircuitBreaker {
    shared_with(server, name, open, FailurePolicy::FailOpen).await
}

async fn shared_with(
    server: &RedisServer,
    name: &str,
    open: Duration,
    policy: FailurePolicy,
) -> RedisCircuitBreaker {
    RedisCircuitBreaker::builder(local(name, open), &backend(server).await)
        .sync_interval(SYNC)
        .failure_policy(policy)
        .start()
        .await
        .unwrap()
}

async fn fail(breaker: &RedisCircuitBreaker) -> Result<(), Error<&'static str>> {
    breaker.call(|| async { Err::<(), _>("boom") }).await
}

async fn succeed(breaker: &RedisCircuitBreaker) -> Result<(), Error<&'static str>> {
    breaker.call(|| async { Ok::<(), &str>(()) }).await
}

/// Waits until `breaker` reports `state`, returning how long that took.
async fn until_state(
    breaker: &RedisCircuitBreaker,
    state: CircuitState,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    while breaker.state() != state {
        assert!(
            started.elapsed() < limit,
            "{} still {} after {limit:?}, expected {state}",
            breaker.name(),
            breaker.state()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_trip_on_one_instance_reaches_the_others_within_the_staleness_bound() {
    let server = RedisServer::start().await.unwrap();
    let a = shared(&server, "payments", Duration::from_secs(30)).await;
    let b = shared(&server, "payments", Duration::from_secs(30)).await;
    assert!(succeed(&b).await.is_ok());

    let _ = fail(&a).await;
    let _ = fail(&a).await;
    assert_eq!(
        a.state(),
        CircuitState::Open,
        "the tripping instance rejects at once"
    );
    let took = until_state(&b, CircuitState::Open, STALENESS).await;
    eprintln!("trip propagated in {took:?}");

    let rejected = succeed(&b).await.unwrap_err();
    assert_eq!(
        rejected.rejection().unwrap().reason(),
        RejectionReason::CircuitOpen
    );
    let shared = a.shared_state().await.unwrap();
    assert_eq!((shared.state, shared.version), (CircuitState::Open, 1));
    assert!(shared.open_remaining.unwrap() > Duration::from_secs(29));
    assert_eq!(b.metrics().applied, 1);
    assert_eq!(b.metrics().writes, 0, "b only followed");

    // The state key carries a TTL (24 h by default).
    let mut redis = backend(&server).await.connection();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(a.state_key())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(ttl > 23 * 3_600_000, "{ttl}");
    assert_eq!(a.state_key(), "resilience:cb:{payments}");

    // A reset on one instance closes the circuit everywhere.
    b.reset();
    until_state(&a, CircuitState::Closed, STALENESS).await;
    assert_eq!(a.shared_state().await.unwrap().state, CircuitState::Closed);
}

#[tokio::test]
async fn half_open_probes_are_limited_across_instances_and_close_for_everyone() {
    let server = RedisServer::start().await.unwrap();
    let open = Duration::from_millis(300);
    let a = shared(&server, "probes", open).await;
    let b = shared(&server, "probes", open).await;
    a.trip();
    until_state(&b, CircuitState::Open, STALENESS).await;
    until_state(&a, CircuitState::HalfOpen, Duration::from_secs(2)).await;
    until_state(&b, CircuitState::HalfOpen, Duration::from_secs(2)).await;

    // One probe at a time across the fleet: a holds it, b is refused.
    let probe = a.acquire().await.expect("the first probe is granted");
    assert!(probe.is_shared_probe());
    let refused = b.acquire().await.unwrap_err();
    assert_eq!(refused.reason(), RejectionReason::HalfOpenFull);
    assert_eq!(
        a.shared_state().await.unwrap().state,
        CircuitState::HalfOpen
    );

    // Its success gives the lease back; the second success, on b, closes the circuit.
    probe.success();
    let deadline = Instant::now() + Duration::from_secs(2);
    let second = loop {
        match b.acquire().await {
            Ok(permit) => break permit,
            Err(_) => {
                assert!(Instant::now() < deadline, "the lease comes back");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    assert!(second.is_shared_probe());
    second.success();
    until_state(&b, CircuitState::Closed, STALENESS).await;
    until_state(&a, CircuitState::Closed, STALENESS).await;
    let state = a.shared_state().await.unwrap();
    assert_eq!(state.state, CircuitState::Closed);
    assert_eq!(a.metrics().probes_granted + b.metrics().probes_granted, 2);
    assert!(b.metrics().probes_denied >= 1);
}

#[tokio::test]
async fn a_failed_probe_reopens_the_circuit_for_everyone() {
    let server = RedisServer::start().await.unwrap();
    let open = Duration::from_millis(300);
    let a = shared(&server, "reopen", open).await;
    let b = shared(&server, "reopen", open).await;
    a.trip();
    until_state(&a, CircuitState::HalfOpen, Duration::from_secs(2)).await;
    until_state(&b, CircuitState::HalfOpen, Duration::from_secs(2)).await;
    let before = a.shared_state().await.unwrap().version;
    assert!(
        fail(&b).await.unwrap_err().is_inner(),
        "b's probe ran and failed"
    );
    assert_eq!(b.state(), CircuitState::Open, "{:?}", b.metrics());
    // b writes the failure in the background, at once.
    let deadline = Instant::now() + STALENESS;
    let after = loop {
        let state = a.shared_state().await.unwrap();
        if state.state == CircuitState::Open {
            break state;
        }
        assert!(Instant::now() < deadline, "{state:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The probe was granted in a half-open period that started at `before` (the open
    // period ended on the server's clock); its failure opened the circuit once.
    assert!(after.version > before, "{before} -> {}", after.version);
    until_state(&a, CircuitState::Open, STALENESS).await;
}

#[tokio::test]
async fn a_new_instance_joining_an_open_circuit_starts_open_and_writes_nothing() {
    let server = RedisServer::start().await.unwrap();
    let a = shared(&server, "join", Duration::from_secs(30)).await;
    a.trip();
    let deadline = Instant::now() + STALENESS;
    while a.shared_state().await.unwrap().version == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let late = shared(&server, "join", Duration::from_secs(30)).await;
    assert_eq!(late.state(), CircuitState::Open, "open from its first call");
    assert!(succeed(&late).await.unwrap_err().is_rejected());
    tokio::time::sleep(SYNC * 3).await;
    let state = a.shared_state().await.unwrap();
    assert_eq!((state.state, state.version), (CircuitState::Open, 1));
    assert_eq!(late.metrics().writes, 0);

    // And a new instance of a closed circuit does not reset anything either.
    let closed = shared(&server, "other", Duration::from_secs(30)).await;
    assert_eq!(closed.shared_state().await.unwrap().version, 0);
}

#[tokio::test]
async fn concurrent_trips_make_one_transition() {
    let server = RedisServer::start().await.unwrap();
    let a = shared(&server, "race", Duration::from_secs(30)).await;
    let b = shared(&server, "race", Duration::from_secs(30)).await;
    a.trip();
    b.trip();
    tokio::time::sleep(SYNC * 4).await;
    let state = a.shared_state().await.unwrap();
    assert_eq!(
        (state.state, state.version),
        (CircuitState::Open, 1),
        "no last-writer-wins"
    );
    assert_eq!(a.metrics().conflicts + b.metrics().conflicts, 1);
}

async fn quorum_of_two(server: &RedisServer) -> RedisCircuitBreaker {
    RedisCircuitBreaker::builder(
        local("quorum", Duration::from_secs(30)),
        &backend(server).await,
    )
    .sync_interval(SYNC)
    .trip_quorum(2, Duration::from_secs(10))
    .start()
    .await
    .unwrap()
}

#[tokio::test]
async fn a_quorum_keeps_one_instance_from_opening_the_circuit_for_all() {
    let server = RedisServer::start().await.unwrap();
    let a = quorum_of_two(&server).await;
    let b = quorum_of_two(&server).await;
    a.trip();
    tokio::time::sleep(SYNC * 4).await;
    assert_eq!(a.state(), CircuitState::Open, "a keeps its own verdict");
    assert_eq!(
        b.state(),
        CircuitState::Closed,
        "one instance alone does not open it for all"
    );
    assert_eq!(a.shared_state().await.unwrap().state, CircuitState::Closed);
    b.trip();
    tokio::time::sleep(SYNC * 4).await;
    assert_eq!(a.shared_state().await.unwrap().state, CircuitState::Open);
}

#[tokio::test]
async fn during_an_outage_each_instance_follows_its_policy_and_resyncs_after() {
    let mut server = RedisServer::start().await.unwrap();
    let a = shared_with(
        &server,
        "outage",
        Duration::from_secs(30),
        FailurePolicy::FailOpen,
    )
    .await;
    let b = shared_with(
        &server,
        "outage",
        Duration::from_secs(30),
        FailurePolicy::FailClosed,
    )
    .await;
    assert!(succeed(&b).await.is_ok());

    server.stop().await.unwrap();
    // Each sync task finds out within one interval plus the call timeout.
    tokio::time::sleep(STALENESS).await;
    assert!(!b.metrics().backend_healthy);
    // Fail open: the local breaker decides alone, and can still trip.
    assert!(succeed(&a).await.is_ok());
    let _ = fail(&a).await;
    let _ = fail(&a).await;
    assert_eq!(a.state(), CircuitState::Open);
    // Fail closed: every call is rejected while Redis is down, at once.
    let started = Instant::now();
    assert!(succeed(&b).await.unwrap_err().is_rejected());
    assert!(started.elapsed() < Duration::from_millis(20));
    assert_eq!(b.metrics().rejected_unavailable, 1);

    // Redis comes back empty; a writes the trip it made meanwhile, and b follows.
    server.restart().await.unwrap();
    until_state(&b, CircuitState::Open, Duration::from_secs(5)).await;
    let state = b.shared_state().await.unwrap();
    assert_eq!(state.state, CircuitState::Open);
}
