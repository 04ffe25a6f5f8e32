//! Concurrency claims of the circuit breaker, with tests that fail if a claim is false:
//! at most N probes under a real multi-threaded stampede, no probe leaked by cancellation at
//! random points, no lost counter updates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::{Error, RejectionReason};
use tokio::sync::Notify;

/// Seed bug B3: with an async handler in the way, every one of 10 concurrent calls ran as a
/// probe. Here 1,000 tasks on two worker threads race for one probe slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_in_half_open_admit_exactly_one_probe() {
    let breaker = CircuitBreaker::builder("stampede")
        .open_duration(Duration::from_millis(1))
        .half_open_max_calls(1)
        .success_threshold(1)
        .build()
        .unwrap();
    breaker.trip();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let admitted = Arc::new(AtomicU64::new(0));
    let release = Arc::new(Notify::new());
    let start = Arc::new(tokio::sync::Barrier::new(1000));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (breaker, admitted, release, start) = (
                breaker.clone(),
                Arc::clone(&admitted),
                Arc::clone(&release),
                Arc::clone(&start),
            );
            tokio::spawn(async move {
                start.wait().await;
                breaker
                    .call(|| async {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        Ok::<_, ()>(())
                    })
                    .await
            })
        })
        .collect();

    // Wait until every task has either been admitted or rejected.
    while breaker.metrics().rejected_requests + admitted.load(Ordering::SeqCst) < 1000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 1);
    release.notify_waiters();

    let mut rejected = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => {}
            Err(Error::Rejected(rejection)) => {
                assert_eq!(rejection.reason(), RejectionReason::HalfOpenFull);
                rejected += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rejected, 999);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

/// Cancelling calls at seeded random points (before admission, while running, after the
/// outcome) never leaks a probe slot: afterwards every slot can be taken again.
#[tokio::test(start_paused = true)]
async fn cancelling_probes_at_random_points_leaks_nothing() {
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    let breaker = CircuitBreaker::builder("cancel")
        .failure_threshold(1)
        .half_open_max_calls(3)
        .success_threshold(1_000_000)
        .build()
        .unwrap();
    breaker.trip();
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);

    for _round in 0..200 {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let breaker = breaker.clone();
                let work = Duration::from_millis(rng.u64(0..20));
                tokio::spawn(async move {
                    breaker
                        .call(|| async move {
                            tokio::time::sleep(work).await;
                            Ok::<_, ()>(())
                        })
                        .await
                })
            })
            .collect();
        tokio::time::advance(Duration::from_millis(rng.u64(0..20))).await;
        for task in &tasks {
            if rng.bool() {
                task.abort();
            }
        }
        for task in tasks {
            let _ = task.await;
        }
        let metrics = breaker.metrics();
        assert_eq!(metrics.half_open_calls, 0, "a probe slot leaked");
        assert_eq!(metrics.state, CircuitState::HalfOpen);
    }
    let permits: Vec<_> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
    assert!(breaker.try_acquire().is_err());
    drop(permits);
}

/// Seed stress test (vacuous there): counters add up under concurrent success and failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_outcomes_lose_no_update() {
    let breaker = CircuitBreaker::builder("counts")
        .failure_threshold(u32::MAX)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|worker| {
            let breaker = breaker.clone();
            tokio::spawn(async move {
                for i in 0..2_000u32 {
                    let fail = (i + worker) % 5 == 0;
                    let _ = breaker
                        .call(|| async move {
                            if fail {
                                Err(())
                            } else {
                                Ok(())
                            }
                        })
                        .await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let metrics = breaker.metrics();
    assert_eq!(metrics.total_requests, 16_000);
    assert_eq!(metrics.failed_requests, 3_200);
    assert_eq!(metrics.successful_requests, 12_800);
    assert_eq!(metrics.state, CircuitState::Closed);
}

/// Successes are counted on per-thread stripes so that threads sharing a closed breaker do
/// not contend; the counts users read must still add up exactly, also across a failure that
/// restarts the consecutive count.
#[test]
fn successes_from_many_threads_add_up_exactly() {
    let breaker = CircuitBreaker::builder("counted")
        .failure_threshold(1_000)
        .build()
        .unwrap();
    let run = |breaker: &CircuitBreaker, calls: u64| {
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    for _ in 0..calls {
                        breaker.call_blocking(|| Ok::<_, ()>(())).unwrap();
                    }
                });
            }
        });
    };
    run(&breaker, 5_000);
    let metrics = breaker.metrics();
    assert_eq!(metrics.successful_requests, 30_000);
    assert_eq!(metrics.consecutive_successes, 30_000);
    assert_eq!(metrics.total_requests, 30_000);

    assert!(breaker.call_blocking(|| Err::<(), _>(())).is_err());
    run(&breaker, 1_000);
    let metrics = breaker.metrics();
    assert_eq!(metrics.successful_requests, 36_000);
    assert_eq!(metrics.failed_requests, 1);
    assert_eq!(metrics.consecutive_successes, 6_000);

    breaker.reset();
    assert_eq!(breaker.metrics().successful_requests, 0);
    assert_eq!(breaker.metrics().consecutive_successes, 0);
}
