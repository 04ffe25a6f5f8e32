//! A bulkhead around a slow resource: 2 calls at a time, 3 more may queue for 300 ms.
//!
//! Ten requests arrive at once. Two run, three queue in arrival order, and the other five are
//! turned away at once because the queue is full; of the queued ones, those still waiting
//! after 300 ms give up. Each outcome comes back with its own typed reason, and the metrics
//! add up.
//!
//! Run with: `cargo run -p resilience --example bulkhead`

use std::time::Duration;

use resilience::bulkhead::Bulkhead;
use resilience::Error;

/// A pretend report generator that takes 200 ms.
async fn render(id: u32) -> Result<String, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(format!("report {id}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bulkhead = Bulkhead::builder("reports")
        .max_concurrent(2)
        .max_waiting(3)
        .wait_timeout(Duration::from_millis(300))
        .build()?;
    bulkhead.events().on_named("bulkhead_rejected", |event| {
        println!("  event: {event}");
    })?;

    let requests: Vec<_> = (0..10)
        .map(|id| {
            let bulkhead = bulkhead.clone();
            tokio::spawn(async move { (id, bulkhead.call(|| render(id)).await) })
        })
        .collect();
    for request in requests {
        match request.await? {
            (_, Ok(report)) => println!("{report} done"),
            (id, Err(Error::Rejected(rejection))) => {
                println!("request {id}: {} ({})", rejection, rejection.reason());
            }
            (id, Err(other)) => println!("request {id}: {other}"),
        }
    }

    let metrics = bulkhead.metrics();
    println!(
        "{} requests: {} accepted ({} ok), {} rejected ({} queue full, {} wait timeout); \
         peak {} active, average wait {:?}",
        metrics.total_requests,
        metrics.accepted_requests,
        metrics.successful_requests,
        metrics.rejected_requests,
        metrics.rejected_queue_full,
        metrics.rejected_wait_timeout,
        metrics.peak_active,
        metrics.average_wait_time,
    );
    Ok(())
}
