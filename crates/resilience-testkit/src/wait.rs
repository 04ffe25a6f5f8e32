//! Waiting in real time for something a real server does by itself (a failover, a
//! propagated state, a metric), bounded so that a broken implementation fails the test
//! instead of hanging it.
//!
//! The bound is generous on purpose: a loaded machine must pass, and a condition that never
//! holds fails all the same.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(5);

/// Waits until `condition` holds, looking every few milliseconds; panics with `what` once
/// `limit` has passed without it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let done = Arc::new(AtomicBool::new(false));
/// let flag = Arc::clone(&done);
/// tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
/// resilience_testkit::eventually(Duration::from_secs(10), "the task ran", || {
///     done.load(Ordering::SeqCst)
/// })
/// .await;
/// # }
/// ```
pub async fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    eventually_async(limit, what, || std::future::ready(condition())).await;
}

/// Like [`eventually`], for a condition that has to ask something over the network.
pub async fn eventually_async<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}
