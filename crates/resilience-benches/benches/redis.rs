//! Redis rate-limit decisions per second, ours against `redis-benchmark` running the same
//! script on the same server.
//!
//! ```text
//! cargo bench -p resilience-benches --bench redis
//! ```
//!
//! Not criterion: what matters here is throughput at a given concurrency (1 and 50 callers
//! in flight), which a timing loop measures directly. The bench starts a private
//! `redis-server` (`resilience-testkit`), then for each concurrency:
//!
//! * `ours`: a `RedisRateLimiter` (GCRA) on one `RedisBackend` (one multiplexed
//!   connection), `concurrency` tasks each calling `check` in a loop for `REDIS_BENCH_SECS`
//!   seconds (3 by default) on a two-worker Tokio runtime; decisions per second in total.
//! * `redis-benchmark`: `redis-benchmark -c <concurrency> -n <N> EVALSHA <sha> 1 <key>
//!   <interval_us> <burst>` after `SCRIPT LOAD` of the same `gcra.lua`: the server's ceiling
//!   for this script with `concurrency` connections, written in C, no client logic.
//!
//! Every decision is allowed (10⁹ per second, rounded to one per microsecond on the server)
//! so the script always takes its write path. Run outside `cargo bench` (no `--bench`
//! argument, as `cargo test --benches` does) it runs for 0.2 s as a smoke test.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::rate_limit::RateLimiter;
use resilience::Rate;
use resilience_redis::{redis, RedisBackend, RedisRateLimiter};
use resilience_testkit::RedisServer;
use tokio::time::Instant;

const GCRA_LUA: &str = include_str!("../../resilience-redis/src/scripts/gcra.lua");

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let seconds: f64 = match std::env::var("REDIS_BENCH_SECS") {
        Ok(value) => value.parse().expect("REDIS_BENCH_SECS is a number"),
        Err(_) if measuring => 3.0,
        Err(_) => 0.2,
    };
    let duration = Duration::from_secs_f64(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime
        .block_on(RedisServer::start())
        .expect("redis-server on PATH");
    let (limiter, sha) = runtime.block_on(async {
        let backend = RedisBackend::builder(server.url())
            .call_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("backend");
        let limiter = RedisRateLimiter::builder("bench", &backend)
            .rate(Rate::per_second(1_000_000_000))
            .build()
            .expect("limiter");
        let mut connection = backend.connection();
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(GCRA_LUA)
            .query_async(&mut connection)
            .await
            .expect("SCRIPT LOAD");
        (limiter, sha)
    });

    println!("redis rate-limit decisions per second ({seconds} s per run)");
    println!("{:<16} {:>11} {:>16}", "", "ours", "redis-benchmark");
    for concurrency in [1_usize, 50] {
        let ours = runtime.block_on(ours(&limiter, concurrency, duration));
        let requests = ((ours * seconds) as u64).max(1_000);
        let peer = redis_benchmark(server.port(), &sha, concurrency, requests);
        let peer = peer.map_or_else(|| "n/a".to_owned(), |rps| format!("{rps:.0}"));
        println!(
            "{:<16} {ours:>11.0} {peer:>16}",
            format!("concurrency {concurrency}")
        );
    }
    let metrics = limiter.metrics();
    assert_eq!(
        metrics.fallbacks_allowed, 0,
        "every decision came from Redis"
    );
    assert_eq!(
        metrics.total_rejected, 0,
        "every decision took the write path"
    );
}

/// `concurrency` tasks checking in a loop for `duration`; decisions per second.
async fn ours(limiter: &RedisRateLimiter, concurrency: usize, duration: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let limiter = limiter.clone();
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let key = format!("key-{task}");
                while Instant::now() < deadline {
                    let decision = limiter.check(&key).await;
                    assert!(decision.is_allowed());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("bench task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Runs `redis-benchmark` with the same script; requests per second, if it is installed.
fn redis_benchmark(port: u16, sha: &str, concurrency: usize, requests: u64) -> Option<f64> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-c",
            &concurrency.to_string(),
            "-n",
            &requests.to_string(),
            "-q",
        ])
        .args(["EVALSHA", sha, "1", "bench:{key}", "1", "1000000000"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // `-q` prints "<command>: <rps> requests per second, p50=..." (after \r progress lines).
    let line = text
        .rsplit('\r')
        .next()?
        .lines()
        .find(|l| l.contains("requests per second"))?;
    let (_, after) = line.split_once(": ")?;
    after.split_whitespace().next()?.parse().ok()
}
