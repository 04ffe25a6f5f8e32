//! Load shedding by priority: a burst of requests against a shedder with 10 slots and a small
//! queue. Low-priority requests are shed first (above 60 % utilisation), critical ones wait
//! in the FIFO queue for a slot, and the metrics add up at the end.
//!
//! ```text
//! cargo run -p resilience --example load_shed
//! ```

use std::time::Duration;

use resilience::load_shed::{LoadShedder, Priority};
use resilience::{Error, RejectionReason};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shedder = LoadShedder::builder("api")
        .max_requests(10)
        .max_queue_depth(5)
        .wait_timeout(Duration::from_millis(200))
        .build()?;

    // 40 requests arrive at once, cycling through the priorities; each takes 50 ms.
    let mut tasks = Vec::new();
    for id in 0..40 {
        let priority = ["critical", "high", "normal", "low"][id % 4].parse::<Priority>()?;
        let shedder = shedder.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = shedder
                .call(priority, || async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::io::Error>(())
                })
                .await;
            (priority, outcome)
        }));
    }

    let mut served = [0u32; 4];
    let mut shed = [0u32; 4];
    for task in tasks {
        let (priority, outcome) = task.await?;
        let index = Priority::ALL
            .iter()
            .position(|p| *p == priority)
            .unwrap_or(0);
        match outcome {
            Ok(()) => served[index] += 1,
            Err(Error::Rejected(rejection)) => {
                shed[index] += 1;
                if rejection.reason() == RejectionReason::WaitTimeout {
                    println!("a {priority} request waited too long");
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
    for (index, priority) in Priority::ALL.iter().enumerate() {
        println!(
            "{priority:>8}: served {:>2}, shed {:>2}",
            served[index], shed[index]
        );
    }
    let metrics = shedder.metrics();
    println!(
        "total accepted {}, shed {}, active now {}, queued now {}",
        metrics.total_accepted, metrics.total_shed, metrics.active_requests, metrics.queue_depth
    );
    Ok(())
}
