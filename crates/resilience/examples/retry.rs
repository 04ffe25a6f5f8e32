//! Retry: a flaky upstream that fails its first two calls, called through a retry policy with
//! exponential backoff, printing each retry as it happens; then the same policy as tower
//! middleware, and a call that runs out of attempts.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p resilience --example retry
//! ```

use std::time::Duration;

use resilience::events::EventFilter;
use resilience::retry::{Backoff, Jitter, Retry, RetryEvent, RetryLayer};
use resilience::Error;
use resilience_testkit::Flaky;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let retry = Retry::builder("inventory")
        .max_attempts(4)
        .backoff(Backoff::exponential(Duration::from_millis(50), 2.0))
        .jitter(Jitter::Equal)
        .max_delay(Duration::from_secs(1))
        .build()?;

    retry.events().on(EventFilter::All, |event| {
        if let Some(RetryEvent::RetryAttempt {
            attempt,
            delay,
            error,
            ..
        }) = event.payload::<RetryEvent>()
        {
            println!("  attempt {attempt} failed ({error}), retrying in {delay:?}");
        }
    });

    println!("calling a flaky upstream directly:");
    let upstream = Flaky::builder().fail_first(2).build();
    let call_number = retry.call(|| upstream.call()).await?;
    println!("  succeeded on call {call_number}");

    println!("the same policy as tower middleware:");
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry.clone()))
        .service(Flaky::builder().fail_first(1).build());
    let echoed = service.oneshot("GET /stock/42").await?;
    println!("  echoed {echoed:?}");

    println!("an upstream that stays down:");
    let down = Flaky::builder().fail_first(u64::MAX).build();
    match retry.call(|| down.call()).await {
        Err(Error::RetryExhausted { attempts, last }) => {
            let last = last.map_or_else(String::new, |error| error.to_string());
            println!("  gave up after {attempts} attempts, last error: {last}");
        }
        other => println!("  unexpected: {other:?}"),
    }

    let metrics = retry.metrics();
    println!(
        "metrics: {} attempts, {} failed, {} exhausted, {:?} spent waiting",
        metrics.total_attempts,
        metrics.failed_attempts,
        metrics.retries_exhausted,
        metrics.total_delay
    );
    Ok(())
}
