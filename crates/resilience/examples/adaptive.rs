//! Adaptive concurrency with Vegas: a simulated dependency that serves 8 calls at once
//! without slowing down and queues beyond that. 64 callers hammer it; the limiter finds the
//! dependency's capacity from latency alone, and rejected callers back off.
//!
//! ```text
//! cargo run -p resilience --example adaptive
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::adaptive::{AdaptiveLimiter, VegasConfig};

/// The dependency: 20 ms per call up to 8 at once, proportionally slower beyond.
async fn dependency(busy: &AtomicU32) -> Result<(), std::io::Error> {
    let in_flight = busy.fetch_add(1, Ordering::SeqCst) + 1;
    let latency = Duration::from_millis(20) * in_flight.max(8) / 8;
    tokio::time::sleep(latency).await;
    busy.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limiter = AdaptiveLimiter::builder("dependency")
        .vegas(VegasConfig {
            initial_limit: 2,
            window: Duration::from_millis(200),
            ..VegasConfig::default()
        })
        .build()?;
    let busy = Arc::new(AtomicU32::new(0));

    for caller in 0..64 {
        let (limiter, busy) = (limiter.clone(), Arc::clone(&busy));
        tokio::spawn(async move {
            loop {
                if limiter.call(|| dependency(&busy)).await.is_err() {
                    // Rejected at the limit: back off a little, staggered per caller.
                    tokio::time::sleep(Duration::from_millis(5 + caller % 5)).await;
                }
            }
        });
    }

    // The clock is paused, so these 20 simulated seconds take no real time.
    for second in 1..=20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let metrics = limiter.metrics();
        println!(
            "t={second:>2}s limit {:>3}  in flight {:>3}  served {:>6}  rejected {:>6}",
            metrics.current_limit,
            metrics.active_count,
            metrics.success_count,
            metrics.rejected_count
        );
    }
    Ok(())
}
