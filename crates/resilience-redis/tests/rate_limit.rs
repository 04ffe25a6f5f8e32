//! Redis rate limiters against a real `redis-server` (one per test), in real time.

use std::time::Duration;

use futures_util::future::join_all;
use resilience::rate_limit::{Algorithm, Decision, RateLimiter};
use resilience::{ConfigProblem, Rate};
use resilience_redis::{FailurePolicy, RedisBackend, RedisRateLimiter};
use resilience_testkit::RedisServer;
use tokio::time::Instant;

const ALGORITHMS: [Algorithm; 2] = [Algorithm::Gcra, Algorithm::SlidingLog];

/// A generous call timeout for the tests that count exact allowances: on a busy two-core CI
/// machine a 50 ms timeout could fire spuriously and hand the decision to the policy.
const PATIENT: Duration = Duration::from_secs(2);

async fn server_and_backend() -> (RedisServer, RedisBackend) {
    let server = RedisServer::start().await.expect("redis-server starts");
    let backend = backend(&server, PATIENT).await;
    (server, backend)
}

async fn backend(server: &RedisServer, call_timeout: Duration) -> RedisBackend {
    let backend = RedisBackend::builder(server.url())
        .call_timeout(call_timeout)
        .health_check_interval(Duration::from_millis(50))
        .connect()
        .await
        .expect("valid url");
    assert!(backend.is_healthy(), "the server answers");
    backend
}

fn limiter(
    backend: &RedisBackend,
    name: &str,
    rate: Rate,
    algorithm: Algorithm,
) -> RedisRateLimiter {
    RedisRateLimiter::builder(name, backend)
        .rate(rate)
        .algorithm(algorithm)
        .build()
        .expect("valid config")
}

async fn count_allowed(limiter: &RedisRateLimiter, key: &str, times: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..times {
        allowed += usize::from(limiter.check(key).await.is_allowed());
    }
    allowed
}

async fn command<T: redis::FromRedisValue>(backend: &RedisBackend, cmd: &redis::Cmd) -> T {
    let mut connection = backend.connection();
    cmd.query_async(&mut connection)
        .await
        .expect("command succeeds")
}

#[tokio::test]
async fn a_burst_is_allowed_exactly_at_each_algorithm() {
    let (_server, backend) = server_and_backend().await;
    for algorithm in ALGORITHMS {
        let limiter = limiter(&backend, "burst", Rate::per_second(3), algorithm);
        let decisions: Vec<Decision> = join_all((0..5).map(|_| limiter.check("ada"))).await;
        let mut remaining: Vec<u32> = decisions
            .iter()
            .filter(|d| d.is_allowed())
            .map(Decision::remaining)
            .collect();
        remaining.sort_unstable();
        assert_eq!(remaining, [0, 1, 2], "{algorithm}");
        let denied = decisions.iter().find(|d| !d.is_allowed()).unwrap();
        assert_eq!(denied.limit(), 3);
        let retry = denied.retry_after().expect("a denial says when to retry");
        assert!(
            retry > Duration::from_millis(200) && retry <= Duration::from_micros(1_000_000),
            "{algorithm}: {retry:?}"
        );

        // A larger burst than the count, and a burst of one.
        let bursty = limiter_with(
            &backend,
            "bursty",
            Rate::per_second(10).with_burst(25),
            algorithm,
        );
        assert_eq!(count_allowed(&bursty, "ada", 40).await, 25, "{algorithm}");
        let single = limiter_with(
            &backend,
            "single",
            Rate::per_minute(60).with_burst(1),
            algorithm,
        );
        assert_eq!(count_allowed(&single, "ada", 5).await, 1, "{algorithm}");
        // Other keys have budgets of their own.
        assert_eq!(count_allowed(&limiter, "bob", 5).await, 3, "{algorithm}");
    }
}

fn limiter_with(
    backend: &RedisBackend,
    name: &str,
    rate: Rate,
    algorithm: Algorithm,
) -> RedisRateLimiter {
    limiter(backend, &format!("{name}-{algorithm}"), rate, algorithm)
}

#[tokio::test]
async fn six_requests_in_one_millisecond_at_three_per_second_allow_exactly_three() {
    let (_server, backend) = server_and_backend().await;
    for algorithm in ALGORITHMS {
        let limiter = limiter(&backend, "six", Rate::per_second(3), algorithm);
        // One connection manager, six concurrent scripts: Redis runs them back to back,
        // well within one millisecond.
        let decisions = join_all((0..6).map(|_| limiter.check("ada"))).await;
        let allowed = decisions.iter().filter(|d| d.is_allowed()).count();
        assert_eq!(allowed, 3, "{algorithm}");
        if algorithm == Algorithm::SlidingLog {
            let entries: usize =
                command(&backend, redis::cmd("ZCARD").arg(limiter.redis_key("ada"))).await;
            assert_eq!(
                entries, 3,
                "each allowed request is its own entry; denials are not recorded"
            );
        }
        assert_eq!(limiter.metrics().fallbacks_allowed, 0);
    }
}

/// 50 requests per second at 5/second for two seconds: about 5 per second get through, not 5
/// in total (the seed recorded denials and locked the client out, bug B14).
async fn persistent_client(algorithm: Algorithm) {
    let (_server, backend) = server_and_backend().await;
    let limiter = limiter(&backend, "persistent", Rate::per_second(5), algorithm);
    let started = Instant::now();
    let mut per_half_second = [0_u32; 4];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..100 {
        tick.tick().await;
        let at = started.elapsed();
        if limiter.check("client").await.is_allowed() {
            let slot = ((at.as_millis() / 500) as usize).min(3);
            per_half_second[slot] += 1;
        }
    }
    let total: u32 = per_half_second.iter().sum();
    let elapsed = started.elapsed();
    // GCRA: the burst of 5, then one every 200 ms (about 14 in 2 s); the sliding log: 5
    // per one-second window (10 in 2 s). Real time on a busy machine: allow some slack.
    let expected = match algorithm {
        Algorithm::Gcra => 12..=17,
        _ => 9..=12,
    };
    assert!(
        expected.contains(&total),
        "{algorithm}: {total} allowed in {elapsed:?}: {per_half_second:?}"
    );
    assert!(
        per_half_second[2] + per_half_second[3] >= 4,
        "{algorithm}: still served in the second second: {per_half_second:?}"
    );
}

#[tokio::test]
async fn a_persistent_client_gets_its_rate_with_gcra() {
    persistent_client(Algorithm::Gcra).await;
}

#[tokio::test]
async fn a_persistent_client_gets_its_rate_with_the_sliding_log() {
    persistent_client(Algorithm::SlidingLog).await;
}

#[tokio::test]
async fn two_instances_on_separate_connections_share_one_budget_exactly() {
    let server = RedisServer::start().await.unwrap();
    let (first, second) = (
        backend(&server, PATIENT).await,
        backend(&server, PATIENT).await,
    );
    for algorithm in ALGORITHMS {
        let a = limiter(&first, "shared", Rate::per_minute(10), algorithm);
        let b = limiter(&second, "shared", Rate::per_minute(10), algorithm);
        // Taking turns: each sees the other's spending.
        for _ in 0..3 {
            assert!(a.check("ada").await.is_allowed());
            assert!(b.check("ada").await.is_allowed());
        }
        let remaining = a.check("ada").await.remaining();
        assert_eq!(remaining, 3, "{algorithm}: 7 of 10 spent");
        // Racing: exactly the 3 left are allowed, between both.
        let both = join_all((0..10).flat_map(|_| [a.check("ada"), b.check("ada")])).await;
        assert_eq!(
            both.iter().filter(|d| d.is_allowed()).count(),
            3,
            "{algorithm}"
        );
        let by_a = a.metrics().total_allowed;
        let by_b = b.metrics().total_allowed;
        assert_eq!(by_a + by_b, 10, "{algorithm}");
    }
}

#[tokio::test]
async fn keys_have_the_documented_shape_and_expire() {
    let (_server, backend) = server_and_backend().await;
    let gcra = limiter(&backend, "api", Rate::per_minute(60), Algorithm::Gcra);
    let log = limiter(&backend, "api", Rate::per_minute(60), Algorithm::SlidingLog);
    assert_eq!(gcra.redis_key("ada"), "resilience:gcra:api:{ada}");
    assert_eq!(
        log.redis_key("10.0.0.1:443"),
        "resilience:sliding_log:api:{10.0.0.1%3A443}"
    );
    assert_eq!(
        gcra.redis_key_for_rate("ada", Rate::per_second(5)),
        "resilience:gcra:api:{ada}:5/1s"
    );

    gcra.check("ada").await;
    log.check("10.0.0.1:443").await;
    gcra.check_rate("ada", Rate::per_second(5)).await;
    let mut keys: Vec<String> = command(&backend, redis::cmd("KEYS").arg("*")).await;
    keys.sort();
    assert_eq!(
        keys,
        [
            "resilience:gcra:api:{ada}",
            "resilience:gcra:api:{ada}:5/1s",
            "resilience:sliding_log:api:{10.0.0.1%3A443}",
        ]
    );
    for key in &keys {
        let ttl: i64 = command(&backend, redis::cmd("PTTL").arg(key)).await;
        assert!(ttl > 0 && ttl <= 60_000, "{key} expires ({ttl} ms)");
    }
    // GCRA's key lives until the budget is whole: one interval after one request.
    let ttl: i64 = command(
        &backend,
        redis::cmd("PTTL").arg("resilience:gcra:api:{ada}:5/1s"),
    )
    .await;
    assert!(ttl <= 200, "{ttl}");

    // A long key is hashed into a bounded name.
    let long = "x".repeat(10_000);
    gcra.check(&long).await;
    let hashed = gcra.redis_key(&long);
    assert!(hashed.len() < 70, "{hashed}");
    let exists: i64 = command(&backend, redis::cmd("EXISTS").arg(&hashed)).await;
    assert_eq!(exists, 1);

    #[cfg(feature = "serde")]
    {
        let json = serde_json::to_value(gcra.metrics()).unwrap();
        assert_eq!(json["type"], "redis");
        assert_eq!(json["failure_policy"], "fail_open");
        assert_eq!(json["total_checks"], 3);
    }
}

#[tokio::test]
async fn limiters_rates_and_look_alike_keys_never_share_a_budget() {
    let (_server, backend) = server_and_backend().await;
    let rate = Rate::per_minute(2);
    let a = limiter(&backend, "a", rate, Algorithm::Gcra);
    let b = limiter(&backend, "b", rate, Algorithm::Gcra);
    let colon = limiter(&backend, "a:b", rate, Algorithm::Gcra);
    assert_eq!(count_allowed(&a, "k", 3).await, 2);
    assert_eq!(count_allowed(&b, "k", 3).await, 2);
    assert_eq!(count_allowed(&colon, "k", 3).await, 2);
    // Keys that would collide unescaped.
    assert_eq!(count_allowed(&a, "b:k", 3).await, 2);
    assert_eq!(count_allowed(&a, "k}", 3).await, 2);
    assert_eq!(count_allowed(&a, "%6B", 3).await, 2);
    // Each (key, rate) pair has its own budget, apart from `check`'s.
    for per_call in [
        Rate::per_minute(2),
        Rate::per_hour(2),
        Rate::per_minute(2).with_burst(1),
    ] {
        let allowed = join_all((0..3).map(|_| a.check_rate("k", per_call))).await;
        assert_eq!(
            allowed.iter().filter(|d| d.is_allowed()).count(),
            per_call.burst() as usize
        );
    }
}

#[tokio::test]
async fn acquire_waits_for_the_budget_within_max_wait() {
    let (_server, backend) = server_and_backend().await;
    let limiter = RedisRateLimiter::builder("acquire", &backend)
        .rate(Rate::per_second(4).with_burst(1))
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(limiter.check("ada").await.is_allowed());
    let started = Instant::now();
    limiter.acquire("ada").await.expect("fits within max_wait");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(900),
        "{waited:?}"
    );

    let impatient = RedisRateLimiter::builder("impatient", &backend)
        .rate(Rate::per_minute(1))
        .build()
        .unwrap();
    impatient.acquire("ada").await.unwrap();
    let rejection = impatient.acquire("ada").await.unwrap_err();
    assert_eq!(rejection.name(), "impatient");
    assert!(rejection.retry_after().unwrap() > Duration::from_secs(50));
}

#[tokio::test]
async fn a_script_flush_is_survived() {
    let (_server, backend) = server_and_backend().await;
    for algorithm in ALGORITHMS {
        let limiter = limiter(&backend, "flush", Rate::per_minute(3), algorithm);
        assert_eq!(count_allowed(&limiter, "ada", 2).await, 2);
        let _: () = command(&backend, &redis::cmd("SCRIPT").arg("FLUSH").to_owned()).await;
        // NOSCRIPT, then the script is loaded and run again in the same call; the budget
        // carried on.
        assert_eq!(count_allowed(&limiter, "ada", 2).await, 1, "{algorithm}");
        let metrics = limiter.metrics();
        assert_eq!(
            (metrics.backend_errors, metrics.timeouts),
            (0, 0),
            "{algorithm}"
        );
        assert_eq!(metrics.fallbacks_allowed, 0, "{algorithm}");
    }
}

#[tokio::test]
async fn each_failure_policy_applies_during_an_outage_and_redis_takes_over_again() {
    let mut server = RedisServer::start().await.unwrap();
    let call_timeout = Duration::from_millis(100);
    let backend = backend(&server, call_timeout).await;
    let build = |name: &str, policy| {
        RedisRateLimiter::builder(name, &backend)
            .rate(Rate::per_minute(2))
            .failure_policy(policy)
            .build()
            .unwrap()
    };
    let open = build("open", FailurePolicy::FailOpen);
    let closed = build("closed", FailurePolicy::FailClosed);
    let local = build("local", FailurePolicy::Local);
    for limiter in [&open, &closed, &local] {
        assert_eq!(count_allowed(limiter, "ada", 3).await, 2, "{limiter:?}");
    }
    let outage = resilience_testkit::EventRecorder::attach_filtered(
        closed.events(),
        resilience::rate_limit::RateLimiterEvent::RATE_LIMIT_BACKEND_UNAVAILABLE,
    );

    server.stop().await.unwrap();
    // The first call finds out, within the call timeout (plus scheduling slack), unless the
    // lost connection told the backend first.
    let started = Instant::now();
    assert!(open.check("ada").await.is_allowed(), "fail open allows");
    assert!(
        started.elapsed() < call_timeout + Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert!(!backend.is_healthy());
    // From then on the policy applies at once, without calling Redis.
    let started = Instant::now();
    let unmetered = open.check("ada").await;
    assert!(unmetered.is_allowed());
    // Nothing is known of ada's budget: no remaining is invented.
    assert!(!unmetered.budget_known());
    assert_eq!(unmetered.remaining(), 0);
    let denied = closed.check("ada").await;
    assert!(!denied.is_allowed(), "fail closed denies");
    assert_eq!(
        denied.denial(),
        Some(resilience::rate_limit::Denial::BackendUnavailable),
        "not a rate limit: the backend is down"
    );
    assert!(!denied.budget_known());
    assert_eq!(denied.retry_after(), None);
    assert_eq!(
        closed.rejection(&denied).reason(),
        resilience::RejectionReason::BackendUnavailable
    );
    // The local fallback enforces the limit in memory: 2 allowed, then denied.
    let local_allowed = count_allowed(&local, "ada", 4).await;
    assert_eq!(local_allowed, 2);
    assert!(
        started.elapsed() < Duration::from_millis(20),
        "{:?}",
        started.elapsed()
    );

    let metrics = open.metrics();
    assert!(
        metrics.timeouts + metrics.backend_errors <= 1,
        "{metrics:?}"
    );
    assert_eq!(metrics.fallbacks_allowed, 2);
    assert!(!metrics.backend_healthy);
    assert_eq!(closed.metrics().fallbacks_denied, 1);
    assert_eq!(local.metrics().fallbacks_local, 4);
    let reported = outage.events();
    assert_eq!(
        reported.len(),
        1,
        "one event per decision made by the policy"
    );
    assert_eq!(reported[0].metadata()["policy"], "fail_closed");

    server.restart().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !backend.is_healthy() {
        assert!(Instant::now() < deadline, "the backend recovers by itself");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Redis decides again (the restarted server is empty, and has no scripts loaded).
    assert_eq!(
        count_allowed(&closed, "ada", 3).await,
        2,
        "fail closed allows again"
    );
    assert_eq!(count_allowed(&local, "bob", 3).await, 2);
    assert_eq!(closed.metrics().fallbacks_denied, 1, "decided by Redis");
    assert_eq!(local.metrics().fallbacks_local, 4, "decided by Redis");
    assert_eq!(backend.outages(), 1);
    assert_eq!(
        outage.events().len(),
        1,
        "no outage event once Redis decides again"
    );
}

#[tokio::test]
async fn a_backend_that_never_answered_starts_unhealthy_and_fails_over() {
    let mut server = RedisServer::start().await.unwrap();
    server.stop().await.unwrap();
    let backend = RedisBackend::builder(server.url())
        .call_timeout(Duration::from_millis(50))
        .connect_timeout(Duration::from_millis(200))
        .health_check_interval(Duration::from_millis(50))
        .connect()
        .await
        .expect("an unreachable server is not an error at start-up");
    assert!(!backend.is_healthy());
    assert!(backend.ping().await.is_err());
    let limiter = RedisRateLimiter::builder("late", &backend)
        .rate(Rate::per_second(1))
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    assert!(!limiter.check("ada").await.is_allowed());

    server.restart().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !limiter.check("ada").await.is_allowed() {
        assert!(
            Instant::now() < deadline,
            "switches to Redis once it answers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(backend.is_healthy());
}

#[tokio::test]
async fn bad_configs_fail_at_build_naming_the_field() {
    let (_server, backend) = server_and_backend().await;
    let missing = RedisRateLimiter::builder("x", &backend)
        .build()
        .unwrap_err();
    assert_eq!(missing.field(), "rate");
    let algorithm = RedisRateLimiter::builder("x", &backend)
        .rate(Rate::per_second(1))
        .algorithm(Algorithm::TokenBucket)
        .build()
        .unwrap_err();
    assert_eq!(algorithm.field(), "algorithm");
    let prefix = RedisRateLimiter::builder("x", &backend)
        .rate(Rate::per_second(1))
        .prefix("a{b}")
        .build()
        .unwrap_err();
    assert_eq!(prefix.field(), "prefix");
    let name = RedisRateLimiter::builder("  ", &backend)
        .rate(Rate::per_second(1))
        .build()
        .unwrap_err();
    assert_eq!(name.field(), "name");
    assert_eq!(name.problem(), &ConfigProblem::Empty);
    let burst = RedisRateLimiter::builder("x", &backend)
        .rate(Rate::per_second(1))
        .burst(0)
        .build()
        .unwrap_err();
    assert_eq!(burst.field(), "burst");
    assert!(RedisBackend::connect("not a url").await.is_err());
}

/// Redis decisions report through the same events as the in-memory limiters.
#[tokio::test]
async fn decisions_emit_rate_limit_events() {
    let (_server, backend) = server_and_backend().await;
    let limiter = limiter(&backend, "events", Rate::per_minute(1), Algorithm::Gcra);
    let recorder = resilience_testkit::EventRecorder::attach(limiter.events());
    assert!(limiter.check("ada").await.is_allowed());
    assert!(!limiter.check("ada").await.is_allowed());
    assert_eq!(
        recorder.names(),
        ["rate_limit_passed", "rate_limit_exceeded"]
    );
    let exceeded = &recorder.events()[1];
    assert_eq!(exceeded.metadata()["key"], "ada");
    assert_eq!(exceeded.metadata()["rate"], "1/minute");
}
