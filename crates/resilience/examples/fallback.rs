//! A fallback chain in front of a flaky price service, and a fallback for an open circuit.
//!
//! The chain tries a cache (which may miss), then a default price; the fallback receives the
//! error, never the operation's arguments. A second fallback answers only rejections, so an
//! open circuit degrades gracefully while real errors still reach the caller.
//!
//! Run with: `cargo run -p resilience --example fallback`

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use resilience::circuit_breaker::CircuitBreaker;
use resilience::fallback::{ErrorClass, Fallback};
use resilience::Error;

/// A pretend price service that is down.
async fn live_price(item: &str) -> Result<u32, io::Error> {
    Err(io::Error::other(format!(
        "price service unreachable while pricing {item}"
    )))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache: Arc<HashMap<&str, u32>> = Arc::new(HashMap::from([("apple", 120)]));

    for item in ["apple", "pear"] {
        let cached = Arc::clone(&cache);
        let prices = Fallback::builder("prices")
            .with(move |error: &Error<io::Error>| {
                println!("  primary failed: {error}");
                let missing = || io::Error::other(format!("{item} not cached"));
                cached.get(item).copied().ok_or_else(missing)
            })
            .value(100)
            .build()?;
        let price = prices.call(|| live_price(item)).await?;
        println!("{item}: {price} cents");
    }

    // Only rejections fall back: an open circuit serves a placeholder.
    let breaker = CircuitBreaker::builder("prices").build()?;
    let placeholder = Fallback::builder("price-placeholder")
        .fallback_on([ErrorClass::Rejected])
        .with(|error: &Error<io::Error>| {
            println!("  {error}");
            Ok(0)
        })
        .build()?;

    breaker.force_open();
    let price = placeholder
        .execute(|| breaker.call(|| live_price("plum")))
        .await?;
    println!("plum while the circuit is open: {price} (placeholder)");

    breaker.reset();
    match placeholder
        .execute(|| breaker.call(|| live_price("plum")))
        .await
    {
        Err(Error::Inner(error)) => println!("plum with the circuit closed: error \"{error}\""),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
