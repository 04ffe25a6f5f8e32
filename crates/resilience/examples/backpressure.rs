//! Backpressure between a fast producer and a slow consumer, through the stream adapter.
//!
//! The producer offers 40 jobs as a stream. The adapter admits jobs freely until 8 are
//! pending (the high water mark), then stops pulling from the producer until the consumers
//! have brought the backlog down to 2 (the low water mark). Each job travels with its permit,
//! so a job stays pending until its worker drops the permit.
//!
//! Run with: `cargo run -p resilience --example backpressure`

use std::time::Duration;

use futures_util::StreamExt;
use resilience::backpressure::Backpressure;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backpressure = Backpressure::builder("jobs")
        .max_pending(16)
        .water_marks(8, 2)
        .build()?;
    backpressure
        .events()
        .on_named("*", |event| println!("  event: {event}"))?;

    let jobs = futures_util::stream::iter(1..=40_u32);
    let mut admitted = backpressure.stream(jobs);
    let mut workers = Vec::new();
    while let Some((job, permit)) = admitted.next().await {
        // Four workers' worth of throughput: each job takes 50 ms.
        workers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50 + u64::from(job % 4) * 10)).await;
            drop(permit); // the job is done: one less pending
            job
        }));
        if job % 8 == 0 {
            println!("job {job} admitted, {} pending", backpressure.pending());
        }
    }
    for worker in workers {
        worker.await?;
    }

    let metrics = backpressure.metrics();
    println!(
        "{} jobs admitted, {} pending, backpressure {}",
        metrics.total_accepted,
        metrics.pending_count,
        if metrics.backpressure_active {
            "on"
        } else {
            "off"
        },
    );
    Ok(())
}
