//! loom model of the throttle's credit: a refusal counted while another request sums the
//! window must take back the credit that request grants on the sums that missed it, run
//! through the real handle (its window and refusal counts come from loom under
//! `--cfg loom`, see `src/sync.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p resilience --release --test loom_throttle
//! ```
#![cfg(loom)]

use loom::thread;
use resilience::throttle::{AdaptiveThrottle, ThrottleConfig, MAX_WINDOW};

/// Three requests in flight when the model starts.
const IN_FLIGHT: usize = 3;

/// `k = 2`, judged from the first request, a window no test outlives. Seed 20: the draws of
/// the fourth and fifth requests are 0.36 and 0.10, below any probability the last request
/// can be drawn against (0.4 or 0.8).
fn throttle() -> AdaptiveThrottle {
    AdaptiveThrottle::from_config(
        "loom",
        ThrottleConfig {
            window: MAX_WINDOW,
            min_requests: 0,
            max_rejection_probability: 0.99,
            seed: Some(20),
            ..ThrottleConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn a_refusal_racing_a_grant_withdraws_it() {
    loom::model(|| {
        let throttle = throttle();
        // Counted as accepted while they wait for their answer.
        let permits: Vec<_> = (0..IN_FLIGHT)
            .map(|_| throttle.try_acquire_owned().unwrap())
            .collect();
        // Their refusals arrive while a fourth request is decided: it may sum the window
        // before some of them and grant credit for the requests after it.
        let refusals = thread::spawn(move || permits.into_iter().for_each(|p| p.failure()));
        let racing = {
            let throttle = throttle.clone();
            thread::spawn(move || {
                if let Ok(permit) = throttle.try_acquire() {
                    permit.success();
                }
            })
        };
        refusals.join().unwrap();
        racing.join().unwrap();
        // Every refusal is counted now: four or five requests, at most one accepted, so
        // the next one is drawn (at 0.4 or 0.8, and the draw is below both), never let
        // through on credit granted before a refusal.
        let metrics = throttle.metrics();
        assert_eq!(metrics.total_failures, IN_FLIGHT as u64);
        assert!(metrics.rejection_probability >= 0.4, "{metrics:?}");
        assert!(
            throttle.try_acquire().is_err(),
            "let through on credit granted before a refusal"
        );
    });
}
