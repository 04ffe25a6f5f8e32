//! `Flaky`'s script: exact sequences, seeded randomness, latency under paused time.

use std::future::poll_fn;
use std::time::Duration;

use resilience_testkit::{Flaky, FlakyError};
use tokio::time::Instant;
use tower_service::Service;

/// The pass/fail outcome of `n` calls, `true` for a pass.
async fn outcomes(flaky: &Flaky, n: usize) -> Vec<bool> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(flaky.call().await.is_ok());
    }
    out
}

#[tokio::test]
async fn fail_first_gives_the_exact_sequence() {
    let flaky = Flaky::builder().fail_first(3).build();
    for call in 1..=3 {
        assert_eq!(flaky.call().await, Err(FlakyError::new(call)));
    }
    for call in 4..=6 {
        assert_eq!(flaky.call().await, Ok(call));
    }
    assert_eq!(flaky.calls(), 6);
    assert_eq!(flaky.failures(), 3);
    assert_eq!(flaky.successes(), 3);
}

#[tokio::test]
async fn same_seed_same_sequence_different_seed_different_sequence() {
    let build = |seed| {
        Flaky::builder()
            .fail_with_probability(0.5)
            .seed(seed)
            .build()
    };
    let first = outcomes(&build(42), 100).await;
    let again = outcomes(&build(42), 100).await;
    let other = outcomes(&build(43), 100).await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    // A probability of one half really mixes passes and failures.
    assert!(first.contains(&true) && first.contains(&false));
}

#[tokio::test]
async fn probability_zero_never_fails_and_one_always_fails() {
    let never = Flaky::builder().fail_with_probability(0.0).seed(1).build();
    assert!(outcomes(&never, 100).await.iter().all(|&ok| ok));
    assert_eq!(never.failures(), 0);

    let always = Flaky::builder().fail_with_probability(1.0).seed(1).build();
    assert!(outcomes(&always, 100).await.iter().all(|&ok| !ok));
    assert_eq!(always.successes(), 0);
}

#[tokio::test]
#[should_panic(expected = "failure probability must be within 0.0..=1.0")]
async fn probability_out_of_range_panics() {
    let _ = Flaky::builder().fail_with_probability(1.5);
}

#[tokio::test(start_paused = true)]
async fn latency_is_exact_in_virtual_time() {
    let flaky = Flaky::builder().latency(Duration::from_millis(100)).build();
    let start = Instant::now();
    assert_eq!(flaky.call().await, Ok(1));
    assert_eq!(start.elapsed(), Duration::from_millis(100));

    flaky.set_latency(Duration::from_millis(250));
    let start = Instant::now();
    assert_eq!(flaky.call().await, Ok(2));
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_counts_as_started_only() {
    let flaky = Flaky::builder().latency(Duration::from_secs(1)).build();
    let in_flight = tokio::spawn({
        let flaky = flaky.clone();
        async move { flaky.call().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((flaky.calls(), flaky.successes()), (1, 0));
    assert_eq!(in_flight.await.unwrap(), Ok(1));
    assert_eq!((flaky.calls(), flaky.successes()), (1, 1));
}

#[tokio::test]
async fn set_failing_toggles_every_call() {
    let flaky = Flaky::builder().build();
    assert_eq!(flaky.call().await, Ok(1));
    flaky.set_failing(true);
    assert_eq!(flaky.call().await, Err(FlakyError::new(2)));
    assert_eq!(flaky.call().await, Err(FlakyError::new(3)));
    flaky.set_failing(false);
    assert_eq!(flaky.call().await, Ok(4));
    assert_eq!((flaky.failures(), flaky.successes()), (2, 2));
}

#[tokio::test]
async fn set_failing_does_not_shift_the_random_sequence() {
    let build = || Flaky::builder().fail_with_probability(0.5).seed(9).build();
    let reference = outcomes(&build(), 20).await;
    let toggled = build();
    toggled.set_failing(true);
    let _ = outcomes(&toggled, 10).await;
    toggled.set_failing(false);
    assert_eq!(outcomes(&toggled, 10).await, reference[10..]);
}

#[tokio::test]
async fn clones_share_the_counter_and_the_script() {
    let flaky = Flaky::builder().fail_first(1).build();
    let clone = flaky.clone();
    assert_eq!(clone.call().await, Err(FlakyError::new(1)));
    assert_eq!(flaky.call().await, Ok(2));
    clone.set_failing(true);
    assert_eq!(flaky.call().await, Err(FlakyError::new(3)));
    assert_eq!(clone.calls(), 3);
}

#[tokio::test]
async fn service_echoes_the_request_or_fails() {
    let mut svc = Flaky::builder().fail_first(1).build();
    poll_fn(|cx| Service::<&str>::poll_ready(&mut svc, cx))
        .await
        .unwrap();
    assert_eq!(
        Service::call(&mut svc, "hello").await,
        Err(FlakyError::new(1))
    );
    assert_eq!(Service::call(&mut svc, "hello").await, Ok("hello"));
    assert_eq!(svc.calls(), 2);
}

#[test]
fn error_displays_and_carries_the_call_number() {
    let err = FlakyError::new(7);
    assert_eq!(err.call(), 7);
    assert_eq!(err.to_string(), "flaky call 7 failed");
    let _: &dyn std::error::Error = &err;
}
