//! Redis rate-limit decisions per second and their latency, ours against `redis-benchmark`
//! running the same script on the same server, one node against a three-primary cluster,
//! and how fast a breaker trip reaches the other instances.
//!
//! ```text
//! cargo bench -p resilience-benches --bench redis
//! ```
//!
//! Not criterion: what matters here is throughput at a given concurrency (1 and 50 callers
//! in flight), which a timing loop measures directly. The bench starts a private
//! `redis-server` and a private Redis Cluster (three primaries without replicas, so that
//! the servers do only the clients' work; `resilience-testkit`), then:
//!
//! * `ours`: a `RedisRateLimiter` (GCRA) on one `RedisBackend` (one multiplexed
//!   connection, or one per cluster node), `concurrency` tasks each calling `check` in a
//!   loop over 10 000 keys for `REDIS_BENCH_SECS` seconds (3 by default) on a two-worker
//!   Tokio runtime; decisions per second in total, and the latency of every decision.
//! * `redis-benchmark`: `redis-benchmark -c <concurrency> -n <N> --csv EVALSHA <sha> 1
//!   <key> <interval_us> <burst>` after `SCRIPT LOAD` of the same `gcra.lua`, against the
//!   same server: its ceiling for this script with `concurrency` connections, written in C,
//!   no client logic; its requests per second and p50/p99 latency.
//! * propagation: three `RedisCircuitBreaker`s on three backends (as three processes would
//!   have) share one breaker with a one-minute poll; one trips, and we time until another
//!   opens (its `circuit_opened` event, so nothing spins while waiting), 200 times.
//!
//! Every decision is allowed (10⁹ per second, rounded to one per microsecond on the server)
//! so the script always takes its write path. Run outside `cargo bench` (no `--bench`
//! argument, as `cargo test --benches` does) it runs for 0.2 s per measurement and 10
//! trips as a smoke test.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerEvent, CircuitState};
use resilience::rate_limit::RateLimiter;
use resilience::Rate;
use resilience_redis::{redis, RedisBackend, RedisCircuitBreaker, RedisRateLimiter};
use resilience_testkit::{RedisCluster, RedisServer};
use tokio::time::Instant;

const GCRA_LUA: &str = include_str!("../../resilience-redis/src/scripts/gcra.lua");
const KEYS: usize = 10_000;

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let seconds: f64 = match std::env::var("REDIS_BENCH_SECS") {
        Ok(value) => value.parse().expect("REDIS_BENCH_SECS is a number"),
        Err(_) if measuring => 3.0,
        Err(_) => 0.2,
    };
    let trips = if measuring { 200 } else { 10 };
    let duration = Duration::from_secs_f64(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime
        .block_on(RedisServer::start())
        .expect("redis-server on PATH");
    let cluster = runtime
        .block_on(RedisCluster::start_primaries_only())
        .expect("a local Redis Cluster");
    let (single, sha) = runtime.block_on(async {
        let backend = connect(RedisBackend::builder(server.url())).await;
        let mut connection = backend.connection();
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(GCRA_LUA)
            .query_async(&mut connection)
            .await
            .expect("SCRIPT LOAD");
        (limiter(&backend), sha)
    });
    let clustered =
        runtime.block_on(async { limiter(&connect(RedisBackend::cluster(cluster.urls())).await) });

    println!("redis rate-limit decisions per second, GCRA over {KEYS} keys ({seconds} s per run)");
    println!(
        "{:<16} {:>14} {:>16} {:>18}",
        "", "ours, 1 node", "redis-benchmark", "ours, 3 primaries"
    );
    let mut latencies = None;
    for concurrency in [1_usize, 50] {
        let (ours, mut samples) = runtime.block_on(run(&single, concurrency, duration));
        let requests = ((ours * seconds) as u64).max(1_000);
        let peer = redis_benchmark(server.port(), &sha, concurrency, requests);
        let (on_cluster, _) = runtime.block_on(run(&clustered, concurrency, duration));
        let peer_rps = peer
            .as_ref()
            .map_or_else(|| "n/a".to_owned(), |peer| format!("{:.0}", peer.rps));
        println!(
            "{:<16} {ours:>14.0} {peer_rps:>16} {on_cluster:>18.0}   (cluster / 1 node: {:.2})",
            format!("concurrency {concurrency}"),
            on_cluster / ours
        );
        if concurrency == 1 {
            samples.sort_unstable();
            latencies = Some((percentile(&samples, 0.5), percentile(&samples, 0.99), peer));
        }
    }
    if let Some((p50, p99, peer)) = latencies {
        println!("decision latency at concurrency 1, 1 node:");
        println!("  ours             p50 {p50:>9.3?}  p99 {p99:>9.3?}");
        if let Some(peer) = peer {
            println!(
                "  redis-benchmark  p50 {:>9.3?}  p99 {:>9.3?}  (EVALSHA, its own client)",
                peer.p50, peer.p99
            );
        }
    }
    let mut delays = runtime.block_on(propagation(&server, trips));
    delays.sort_unstable();
    println!(
        "breaker trip reaching another instance by pub/sub ({trips} trips, 1 node): \
         p50 {:.3?}  p99 {:.3?}  max {:.3?}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or_default()
    );
    for limiter in [&single, &clustered] {
        let metrics = limiter.metrics();
        assert_eq!(metrics.backend_errors, 0, "every decision came from Redis");
        assert_eq!(
            metrics.total_rejected, 0,
            "every decision took the write path"
        );
    }
}

async fn connect(builder: resilience_redis::RedisBackendBuilder) -> RedisBackend {
    builder
        .call_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("backend")
}

fn limiter(backend: &RedisBackend) -> RedisRateLimiter {
    RedisRateLimiter::builder("bench", backend)
        .rate(Rate::per_second(1_000_000_000))
        .build()
        .expect("limiter")
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted[index]
}

/// `concurrency` tasks checking in a loop for `duration`; decisions per second, and the
/// latency of each decision.
async fn run(
    limiter: &RedisRateLimiter,
    concurrency: usize,
    duration: Duration,
) -> (f64, Vec<Duration>) {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let limiter = limiter.clone();
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let keys: Vec<String> = (task..KEYS)
                    .step_by(concurrency)
                    .map(|key| format!("key-{key}"))
                    .collect();
                let mut latencies = Vec::new();
                for key in keys.iter().cycle() {
                    let asked = Instant::now();
                    if asked >= deadline {
                        break;
                    }
                    let decision = limiter.check(key).await;
                    latencies.push(asked.elapsed());
                    assert!(decision.is_allowed());
                    done.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("bench task"));
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    (rate, latencies)
}

/// How long after one instance trips another rejects, `trips` times.
async fn propagation(server: &RedisServer, trips: usize) -> Vec<Duration> {
    let mut instances = Vec::new();
    for _ in 0..3 {
        let local = CircuitBreaker::builder("bench")
            .open_duration(Duration::from_secs(600))
            .build()
            .expect("breaker");
        let backend = connect(RedisBackend::builder(server.url())).await;
        let breaker = RedisCircuitBreaker::builder(local, &backend)
            .sync_interval(Duration::from_secs(60))
            .start()
            .await
            .expect("shared breaker");
        instances.push(breaker);
    }
    let until = |state: CircuitState| {
        let instances = instances.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while instances.iter().any(|breaker| breaker.state() != state) {
                assert!(Instant::now() < deadline, "no propagation");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    // Each instance reports when its local breaker opens: the moment it starts rejecting.
    let (opened, mut openings) = tokio::sync::mpsc::unbounded_channel();
    for (index, breaker) in instances.iter().enumerate() {
        let opened = opened.clone();
        breaker
            .local()
            .events()
            .on(CircuitBreakerEvent::CIRCUIT_OPENED, move |_| {
                let _ = opened.send((index, Instant::now()));
            });
    }
    let mut delays = Vec::with_capacity(trips);
    for trip in 0..trips {
        let (tripping, watched) = (trip % 3, (trip + 1) % 3);
        let tripped = Instant::now();
        instances[tripping].trip();
        let at = loop {
            let next = tokio::time::timeout(Duration::from_secs(10), openings.recv());
            match next.await.expect("no propagation").expect("listeners") {
                (index, at) if index == watched => break at,
                _ => {}
            }
        };
        delays.push(at - tripped);
        until(CircuitState::Open).await;
        instances[tripping].reset();
        until(CircuitState::Closed).await;
        while openings.try_recv().is_ok() {}
    }
    delays
}

/// What `redis-benchmark` measured.
struct Peer {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `redis-benchmark` with the same script, if it is installed.
fn redis_benchmark(port: u16, sha: &str, concurrency: usize, requests: u64) -> Option<Peer> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &concurrency.to_string()])
        .args([
            "-n",
            &requests.to_string(),
            "-r",
            &KEYS.to_string(),
            "--csv",
        ])
        .args([
            "EVALSHA",
            sha,
            "1",
            "bench:{__rand_int__}",
            "1",
            "1000000000",
        ])
        .output()
        .ok()?;
    parse_csv(&String::from_utf8_lossy(&output.stdout))
}

/// `--csv` prints a header and one row: "test","rps","avg_latency_ms","min_latency_ms",
/// "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms".
fn parse_csv(text: &str) -> Option<Peer> {
    let mut lines = text.lines().filter(|line| line.starts_with('"'));
    let header: Vec<&str> = lines
        .next()?
        .split(',')
        .map(|f| f.trim_matches('"'))
        .collect();
    // The test name contains no comma (EVALSHA, its hash and plain arguments).
    let row: Vec<&str> = lines
        .next()?
        .split(',')
        .map(|f| f.trim_matches('"'))
        .collect();
    let field = |name: &str| -> Option<f64> {
        let index = header.iter().position(|h| *h == name)?;
        row.get(index)?.parse().ok()
    };
    let millis = |ms: f64| Duration::from_secs_f64(ms / 1_000.0);
    Some(Peer {
        rps: field("rps")?,
        p50: millis(field("p50_latency_ms")?),
        p99: millis(field("p99_latency_ms")?),
    })
}
