//! Two "processes" (two connections) share one Redis rate limit, and keep limiting through a
//! Redis outage with the `Local` failure policy.
//!
//! Starts a private `redis-server` on a free loopback port (it must be on `PATH`):
//!
//! ```text
//! cargo run -p resilience-redis --example redis_rate_limit
//! ```

use std::time::Duration;

use resilience::rate_limit::RateLimiter;
use resilience::Rate;
use resilience_redis::{FailurePolicy, RedisBackend, RedisRateLimiter};
use resilience_testkit::RedisServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut server = RedisServer::start().await?;
    let mut limiters = Vec::new();
    for _ in 0..2 {
        let backend = RedisBackend::builder(server.url())
            .call_timeout(Duration::from_millis(50))
            .connect()
            .await?;
        let limiter = RedisRateLimiter::builder("api", &backend)
            .rate(Rate::per_minute(5))
            .failure_policy(FailurePolicy::Local)
            .build()?;
        limiters.push(limiter);
    }
    println!("keys look like {}", limiters[0].redis_key("ada"));

    // Five per minute in total, whichever instance serves the request.
    for i in 0..7 {
        let decision = limiters[i % 2].check("ada").await;
        println!(
            "instance {}: allowed={} remaining={} retry_after={:?}",
            i % 2,
            decision.is_allowed(),
            decision.remaining(),
            decision.retry_after()
        );
    }

    server.stop().await?;
    let during = limiters[0].check("bob").await;
    println!(
        "redis down: bob allowed={} (decided in memory)",
        during.is_allowed()
    );

    server.restart().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = limiters[0].check("bob").await;
    println!("redis back: bob allowed={}", after.is_allowed());
    println!("{:#?}", limiters[0].metrics());
    Ok(())
}
