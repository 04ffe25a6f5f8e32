//! The shared circuit breaker when Redis loses data or hangs: three instances (three clients,
//! as three processes would be) on a real `redis-server` with a replica, in real time.
//!
//! The bound under test, from the module docs: once the shared state is open, every instance
//! rejects within `sync_interval` + the backend's call timeout, whatever Redis lost before.
//! The waits below are generous (a loaded two-core machine), polling up to a deadline; a
//! broken breaker fails them by a whole open period (30 s), not by milliseconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::RejectionReason;
use resilience_redis::{RedisBackend, RedisCircuitBreaker};
use resilience_testkit::{eventually, RedisServer};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const SYNC: Duration = Duration::from_millis(50);
const CALL_TIMEOUT: Duration = Duration::from_millis(300);
/// The documented bound (`sync_interval` + call timeout) with room for a busy machine.
const BOUND: Duration = Duration::from_millis(50 + 300 + 1_650);
/// How long each phase keeps calling after the bound, to catch an instance that admits.
const WATCH: Duration = Duration::from_millis(1_000);
const OPEN: Duration = Duration::from_secs(30);

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
        .success_threshold(1)
        .half_open_max_calls(1)
        .build()
        .unwrap()
}

async fn shared(server: &RedisServer, name: &str, open: Duration) -> RedisCircuitBreaker {
    RedisCircuitBreaker::builder(local(name, open), &backend(server).await)
        .sync_interval(SYNC)
        .start()
        .await
        .unwrap()
}

/// The state hash as Redis holds it: (state, version, epoch), read over its own connection.
async fn record(monitor: &RedisBackend, key: &str) -> (String, u64, String) {
    let mut connection = monitor.connection();
    let (state, version, epoch): (Option<String>, Option<u64>, Option<String>) =
        redis::cmd("HMGET")
            .arg(key)
            .arg("state")
            .arg("version")
            .arg("epoch")
            .query_async(&mut connection)
            .await
            .unwrap_or((None, None, None));
    (
        state.unwrap_or_else(|| "closed".into()),
        version.unwrap_or(0),
        epoch.unwrap_or_default(),
    )
}

/// Three instances under steady load, each call's start time kept when it was admitted.
struct Fleet {
    breakers: Vec<RedisCircuitBreaker>,
    admitted: Arc<Mutex<Vec<(usize, Instant)>>>,
    load: Vec<JoinHandle<()>>,
}

impl Fleet {
    async fn start(server: &RedisServer, name: &str) -> Self {
        let mut breakers = Vec::new();
        for _ in 0..3 {
            breakers.push(shared(server, name, OPEN).await);
        }
        let admitted = Arc::new(Mutex::new(Vec::new()));
        let load = breakers
            .iter()
            .enumerate()
            .map(|(index, breaker)| {
                let breaker = breaker.clone();
                let admitted = Arc::clone(&admitted);
                tokio::spawn(async move {
                    loop {
                        // The start time: an admission decided late (a busy machine) still
                        // counts from when the call came, so it never looks later than it was.
                        let started = Instant::now();
                        if let Ok(permit) = breaker.acquire().await {
                            admitted.lock().unwrap().push((index, started));
                            // Ignored: the load itself must not move any detector.
                            permit.ignore();
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Self {
            breakers,
            admitted,
            load,
        }
    }

    fn states(&self) -> Vec<CircuitState> {
        self.breakers
            .iter()
            .map(RedisCircuitBreaker::state)
            .collect()
    }

    async fn all(&self, state: CircuitState, limit: Duration, what: &str) {
        let what = format!("{what}: every instance {state}");
        eventually(limit, &what, || self.states().iter().all(|s| *s == state)).await;
    }

    /// Admissions that started in `[from, to)`, per instance.
    fn admitted_between(&self, from: Instant, to: Instant) -> [usize; 3] {
        let mut counts = [0; 3];
        for (index, at) in self.admitted.lock().unwrap().iter() {
            if *at >= from && *at < to {
                counts[*index] += 1;
            }
        }
        counts
    }

    /// Opens and closes the shared circuit `times` times, so every instance knows a version
    /// well above 1 in the current lifetime of the record.
    async fn churn(&self, times: usize) {
        for _ in 0..times {
            self.breakers[0].trip();
            self.all(CircuitState::Open, BOUND, "churn open").await;
            self.breakers[1].reset();
            self.all(CircuitState::Closed, BOUND, "churn closed").await;
        }
    }

    /// Waits for Redis to hold an open circuit, then checks the bound: every instance open
    /// within it, and no call admitted from then on while the shared state stays open.
    async fn assert_bound_after_open(&self, monitor: &RedisBackend, phase: &str) {
        let key = self.breakers[0].state_key().to_owned();
        let deadline = Instant::now() + BOUND * 3;
        let opened = loop {
            if record(monitor, &key).await.0 == "open" {
                break Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{phase}: Redis never held the trip"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.all(CircuitState::Open, BOUND, phase).await;
        tokio::time::sleep(WATCH).await;
        let end = Instant::now();
        let (state, _, _) = record(monitor, &key).await;
        assert_eq!(state, "open", "{phase}: the shared circuit stayed open");
        assert_eq!(
            self.admitted_between(opened + BOUND, end),
            [0, 0, 0],
            "{phase}: calls admitted while the shared circuit was open; states {:?}",
            self.states()
        );
        // Honest retry-after: the shared time left, never more than the open duration.
        for breaker in &self.breakers {
            let rejection = breaker.acquire().await.unwrap_err();
            assert_eq!(rejection.reason(), RejectionReason::CircuitOpen);
            assert!(rejection.retry_after().unwrap() <= OPEN, "{rejection:?}");
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for task in &self.load {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_instance_admits_after_the_shared_circuit_opened_whatever_redis_lost() {
    let mut primary = RedisServer::start().await.unwrap();
    let replica = RedisServer::start_replica_of(&primary).await.unwrap();
    let monitor = backend(&primary).await;
    let fleet = Fleet::start(&primary, "lost").await;
    let [a, b, c] = [&fleet.breakers[0], &fleet.breakers[1], &fleet.breakers[2]];
    let key = a.state_key().to_owned();

    // 1. A restart without persistence: every instance knows version 4 of a record that
    // Redis forgets. `a` trips while Redis is down and writes its trip when Redis is back,
    // as version 1 of a new lifetime; `b` and `c` must follow it although 1 < 4.
    fleet.churn(2).await;
    assert_eq!(record(&monitor, &key).await.1, 4);
    primary.stop().await.unwrap();
    eventually(BOUND, "a finds Redis down", || !a.metrics().backend_healthy).await;
    a.trip();
    primary.restart().await.unwrap();
    fleet.assert_bound_after_open(&monitor, "restart").await;
    let (_, version, first_epoch) = record(&monitor, &key).await;
    assert_eq!(version, 1, "the trip is the new lifetime's first version");
    let epoch = u64::from_str_radix(&first_epoch, 16).unwrap();
    for breaker in &fleet.breakers {
        let metrics = breaker.metrics();
        assert_eq!((metrics.shared_epoch, metrics.shared_version), (epoch, 1));
    }

    // 2. FLUSHALL: the same, without an outage in between.
    c.reset();
    fleet.all(CircuitState::Closed, BOUND, "closed again").await;
    fleet.churn(2).await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut monitor.connection())
        .await
        .unwrap();
    c.trip();
    fleet.assert_bound_after_open(&monitor, "flushall").await;
    let (_, _, second_epoch) = record(&monitor, &key).await;
    assert_ne!(first_epoch, second_epoch);

    // 3. A failover to a lagging replica: the replica stops following (promoted) while the
    // record is closed, the primary moves on, then the primary's clients find the
    // replica's older data set behind the same address. `b` trips on that older record,
    // making a version every instance has already seen with another state.
    a.reset();
    fleet
        .all(CircuitState::Closed, BOUND, "closed before the failover")
        .await;
    let closed = record(&monitor, &key).await;
    let replica_view = backend(&replica).await;
    // The replica reconnects to the restarted primary by itself (about once a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    while record(&replica_view, &key).await != closed {
        assert!(
            Instant::now() < deadline,
            "the replica never caught up: {:?} != {closed:?}",
            record(&replica_view, &key).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    replica.promote().await.unwrap();
    fleet.churn(1).await;
    let ahead = record(&monitor, &key).await;
    assert!(ahead.1 > closed.1);
    primary.replicate(&replica).await.unwrap();
    primary.promote().await.unwrap();
    // The clients now find the replica's older record. Not compared to `closed` exactly: the
    // fleet keeps calling, and on a loaded machine an instance may already have written on
    // the older record by the time it is read here.
    let lagging = record(&monitor, &key).await;
    assert!(
        lagging.1 < ahead.1 || lagging.2 != ahead.2,
        "the lagging data set: {lagging:?} after {ahead:?}"
    );
    b.trip();
    fleet.assert_bound_after_open(&monitor, "failover").await;
}

/// Two instances whose shared circuit is half-open, with one probe at a time fleet-wide and
/// a lease far longer than any wait below, so a leaked lease shows.
async fn half_open_pair(server: &RedisServer, name: &str) -> [RedisCircuitBreaker; 2] {
    let open = Duration::from_millis(200);
    let mut pair = Vec::new();
    for _ in 0..2 {
        pair.push(
            RedisCircuitBreaker::builder(local(name, open), &backend(server).await)
                .sync_interval(SYNC)
                .probe_lease(Duration::from_secs(60))
                .start()
                .await
                .unwrap(),
        );
    }
    pair[0].trip();
    for breaker in &pair {
        eventually(BOUND, "half-open", || {
            breaker.state() == CircuitState::HalfOpen
        })
        .await;
    }
    [pair.remove(0), pair.remove(0)]
}

/// Asks `breaker` for a probe until one is granted (the lease came back) or `limit` passes.
async fn probe_granted_within(breaker: &RedisCircuitBreaker, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(permit) = breaker.acquire().await {
            let shared = permit.is_shared_probe();
            permit.ignore();
            if shared {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_probe_whose_caller_gave_up_on_a_hung_redis_neither_leaks_its_lease_nor_runs_locally() {
    let server = RedisServer::start().await.unwrap();
    let [a, b] = half_open_pair(&server, "hung").await;

    // Redis hangs while `a` asks for a probe: the request is sent, the answer never comes
    // before the caller's own deadline.
    server.pause().unwrap();
    let asked = tokio::time::timeout(Duration::from_millis(100), a.acquire()).await;
    assert!(asked.is_err(), "the caller gave up first");
    // And one whose answer times out in the backend: no local probe instead, since Redis
    // could not say how many run elsewhere.
    let timed_out = a.acquire().await;
    assert_eq!(
        timed_out.unwrap_err().reason(),
        RejectionReason::HalfOpenFull,
        "no probe beyond the fleet's limit"
    );
    server.resume().unwrap();

    // The script ran when Redis woke up and granted the abandoned request a lease; it was
    // given back, so `b` probes long before the 60 s lease would expire.
    assert!(
        probe_granted_within(&b, BOUND * 3).await,
        "the abandoned lease still blocks probing: {:?}",
        b.metrics()
    );
}

#[test]
fn a_probe_dropped_outside_any_runtime_gives_its_lease_back() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (_server, [a, b], permit) = runtime.block_on(async {
        let server = RedisServer::start().await.unwrap();
        let [a, b] = half_open_pair(&server, "no-runtime").await;
        let permit = a.acquire().await.unwrap();
        assert!(permit.is_shared_probe());
        (server, [a, b], permit)
    });
    // Dropped on a thread that has no runtime to spawn the release on.
    std::thread::spawn(move || drop(permit)).join().unwrap();
    runtime.block_on(async {
        assert!(
            probe_granted_within(&b, BOUND * 3).await,
            "the lease leaked: {:?}",
            b.metrics()
        );
    });
    drop((a, b));
}

#[tokio::test]
async fn an_adopted_open_circuit_rejects_with_the_shared_time_left() {
    let server = RedisServer::start().await.unwrap();
    // `a` opens for 30 s; `b`'s own open duration would be 10 minutes.
    let a = shared(&server, "retry-after", OPEN).await;
    let b = shared(&server, "retry-after", Duration::from_secs(600)).await;
    a.trip();
    eventually(BOUND, "b follows", || b.state() == CircuitState::Open).await;
    let rejection = b.acquire().await.unwrap_err();
    let retry_after = rejection.retry_after().unwrap();
    assert!(retry_after <= OPEN, "{retry_after:?}");
    assert!(retry_after > OPEN - BOUND * 2, "{retry_after:?}");
    // Following another instance's trip is not a trip of b's own: its backoff does not grow.
    assert_eq!(b.local().metrics().trips, 0);

    // A new instance joining later gets the time left too.
    let late = shared(&server, "retry-after", Duration::from_secs(600)).await;
    let retry_after = late.acquire().await.unwrap_err().retry_after().unwrap();
    assert!(retry_after <= OPEN, "{retry_after:?}");
}

#[tokio::test]
async fn while_redis_hangs_each_instance_follows_its_policy_and_resyncs_after() {
    let server = RedisServer::start().await.unwrap();
    let a = shared(&server, "frozen", OPEN).await;
    let b = RedisCircuitBreaker::builder(local("frozen", OPEN), &backend(&server).await)
        .sync_interval(SYNC)
        .failure_policy(resilience_redis::FailurePolicy::FailClosed)
        .start()
        .await
        .unwrap();
    assert!(b.acquire().await.is_ok());

    // Hung, not gone: connections stay open and requests are never answered, so each
    // instance learns it from its call timeout.
    server.pause().unwrap();
    eventually(BOUND * 2, "both find Redis hung", || {
        !a.metrics().backend_healthy && !b.metrics().backend_healthy
    })
    .await;
    // Fail open: the local breaker decides alone, and can still trip.
    assert!(a.acquire().await.is_ok());
    a.trip();
    // Fail closed: rejected at once, without waiting on the hung server.
    let started = Instant::now();
    assert!(b.acquire().await.is_err());
    assert!(started.elapsed() < CALL_TIMEOUT, "{:?}", started.elapsed());

    // Redis wakes up with its data: a writes the trip it made meanwhile, and b follows.
    server.resume().unwrap();
    eventually(BOUND * 3, "b follows a's trip", || {
        b.state() == CircuitState::Open
    })
    .await;
    assert_eq!(b.shared_state().await.unwrap().state, CircuitState::Open);
}
