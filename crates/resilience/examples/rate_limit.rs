//! Rate limiting per client, and one budget for a whole process.
//!
//! A keyed limiter gives every client its own budget of 5 requests per second (burst 5):
//! a greedy client sending 20 requests a second spends its burst, then gets one request
//! every 200 ms, while a polite one is never refused. A direct limiter makes this process respect a
//! partner's limit of 2 requests per second, waiting for its turn with `acquire`.
//!
//! Run with: `cargo run -p resilience --example rate_limit`

use std::time::Duration;

use resilience::rate_limit::{DirectRateLimiter, LocalRateLimiter, RateLimiter};
use resilience::Rate;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_client = LocalRateLimiter::builder("api")
        .rate("5/second".parse()?)
        .build()?;

    // One simulated second: the greedy client asks every 50 ms, the polite one every 250 ms.
    let started = Instant::now();
    let (mut greedy, mut polite) = ((0, 0), (0, 0));
    for tick in 0..20 {
        let decision = per_client.check("greedy").await;
        if decision.is_allowed() {
            greedy.0 += 1;
        } else {
            greedy.1 += 1;
            if greedy.1 == 1 {
                println!(
                    "greedy refused at {:?}: retry after {:?}, budget whole in {:?}",
                    started.elapsed(),
                    decision.retry_after().unwrap_or_default(),
                    decision.reset_after(),
                );
            }
        }
        if tick % 5 == 0 && per_client.check("polite").await.is_allowed() {
            polite.0 += 1;
        } else if tick % 5 == 0 {
            polite.1 += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("greedy: {} allowed, {} refused", greedy.0, greedy.1);
    println!("polite: {} allowed, {} refused", polite.0, polite.1);

    // aioresilience's style: a rate per call, each (key, rate) pair with its own budget.
    let login = Rate::per_minute(3);
    let attempts: Vec<_> = (0..5)
        .map(|_| per_client.check_rate_limit("ada", login))
        .collect();
    println!("login attempts at 3/minute: {attempts:?}");

    // One budget for the whole process, waiting up to a second for each turn.
    let partner = DirectRateLimiter::builder("partner-api")
        .rate(Rate::per_second(2).with_burst(1))
        .max_wait(Duration::from_secs(1))
        .build()?;
    let started = Instant::now();
    for call in 1..=4 {
        partner.acquire("").await?;
        println!("partner call {call} at {:?}", started.elapsed());
    }

    let metrics = per_client.metrics();
    println!(
        "{}: {} checks, {} allowed, {} rejected, {} keys tracked (max {})",
        metrics.name,
        metrics.total_checks,
        metrics.total_allowed,
        metrics.total_rejected,
        metrics.active_limiters,
        metrics.max_keys,
    );
    Ok(())
}
