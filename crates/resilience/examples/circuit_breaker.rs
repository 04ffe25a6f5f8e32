//! A circuit breaker in front of a dependency that goes down and comes back.
//!
//! The first calls fail; after three failures in a row the circuit opens and calls are
//! refused at once, each refusal saying how long until the next probe. Once the open time
//! has passed, one probe is let through; the dependency is back, the probe succeeds and the
//! circuit closes. Every transition is printed as it happens.
//!
//! Run with: `cargo run -p resilience --example circuit_breaker`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerEvent};
use resilience::Error;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let breaker = CircuitBreaker::builder("inventory")
        .failure_threshold(3)
        .open_duration(Duration::from_millis(500))
        .success_threshold(1)
        .build()?;
    breaker
        .events()
        .on(CircuitBreakerEvent::STATE_CHANGE, |event| {
            println!("  event: {event}")
        });

    // The dependency: down for now.
    let healthy = Arc::new(AtomicBool::new(false));
    let lookup = || {
        let healthy = Arc::clone(&healthy);
        async move {
            if healthy.load(Ordering::Relaxed) {
                Ok("42 in stock")
            } else {
                Err("connection refused")
            }
        }
    };

    for attempt in 1..=6 {
        match breaker.call(lookup).await {
            Ok(answer) => println!("call {attempt}: {answer}"),
            Err(Error::Inner(error)) => println!("call {attempt}: failed: {error}"),
            Err(Error::Rejected(rejection)) => println!(
                "call {attempt}: refused ({}), retry in {:?}",
                rejection.reason(),
                rejection.retry_after().unwrap_or_default()
            ),
            Err(other) => println!("call {attempt}: {other}"),
        }
    }

    // The dependency recovers; after the open time the next call is the probe.
    healthy.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = breaker
        .call(lookup)
        .await
        .map_err(|error| error.to_string())?;
    println!("after 500 ms: {answer}");
    println!("state: {}", breaker.state());
    let metrics = breaker.metrics();
    println!(
        "{} calls: {} succeeded, {} failed, {} refused",
        metrics.total_requests,
        metrics.successful_requests,
        metrics.failed_requests,
        metrics.rejected_requests,
    );
    Ok(())
}
