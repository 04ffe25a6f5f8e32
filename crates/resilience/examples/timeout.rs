//! A per-call timeout and a deadline shared by the steps of one request.
//!
//! A `Timeout` gives each call its own limit; a `Deadline` is one budget for several calls,
//! and inside its `scope` every timeout waits at most until the deadline. The slow call is
//! cancelled (its future dropped), and the step that would start after the deadline is
//! rejected without running.
//!
//! Run with: `cargo run -p resilience --example timeout`

use std::time::Duration;

use resilience::timeout::{Deadline, Timeout};
use resilience::Error;

/// A pretend upstream call that takes `latency`.
async fn fetch(step: &str, latency: Duration) -> Result<String, std::io::Error> {
    tokio::time::sleep(latency).await;
    Ok(format!("{step} done in {latency:?}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let timeout = Timeout::builder("upstream")
        .limit(Duration::from_millis(200))
        .build()?;

    // One call, within its limit and past it.
    println!(
        "{:?}",
        timeout
            .call(|| fetch("quick", Duration::from_millis(20)))
            .await
    );
    match timeout.call(|| fetch("slow", Duration::from_secs(5))).await {
        Err(Error::Timeout { elapsed, limit }) => {
            println!("slow call cancelled after {elapsed:?} (limit {limit:?})");
        }
        other => println!("unexpected: {other:?}"),
    }

    // Four steps of one request share a 250 ms budget.
    let deadline = Deadline::after(Duration::from_millis(250)).named("checkout");
    deadline
        .scope(async {
            for step in ["cart", "pricing", "payment", "receipt"] {
                let remaining = deadline.remaining();
                let result = timeout
                    .call(|| fetch(step, Duration::from_millis(120)))
                    .await;
                match result {
                    Ok(done) => println!("{done} ({remaining:?} were left)"),
                    Err(Error::Timeout { limit, .. }) => {
                        println!("{step}: out of time, it only had {limit:?}");
                    }
                    Err(Error::Rejected(rejection)) => println!("{step}: {rejection}"),
                    Err(other) => println!("{step}: {other}"),
                }
            }
        })
        .await;

    let metrics = timeout.metrics();
    println!(
        "{} calls: {} ok, {} timed out, {} rejected, average {:?}",
        metrics.total_executions,
        metrics.successful_executions,
        metrics.timed_out_executions,
        metrics.rejected_executions,
        metrics.average_execution_time,
    );
    Ok(())
}
