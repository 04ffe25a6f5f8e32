//! The bulkhead through its public API, under paused time (and once on two threads): every
//! limit exactly, the three rejection reasons, counts that add up, exact waits, FIFO order,
//! cancellation, events, live resizing, the registry and config.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::bulkhead::{get_bulkhead, Bulkhead, BulkheadConfig, BulkheadMetrics};
use resilience::classify::Outcome;
use resilience::registry::{Registry, RegistryError};
use resilience::stage::{Stage, StagePermit};
use resilience::{Error, PatternKind, Rejection, RejectionReason};
use resilience_testkit::EventRecorder;
use tokio::task::JoinHandle;
use tokio::time::{advance, sleep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn bulkhead(max_concurrent: u32, max_waiting: u32, wait_timeout: Option<Duration>) -> Bulkhead {
    Bulkhead::from_config(
        "pool",
        BulkheadConfig {
            max_concurrent,
            max_waiting,
            wait_timeout,
        },
    )
    .unwrap()
}

/// Lets spawned tasks run until they block (paused time: no timer fires).
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// A task that takes a slot through `acquire` and holds it for `hold`.
fn hold_slot(bulkhead: &Bulkhead, hold: Duration) -> JoinHandle<Result<(), Rejection>> {
    let bulkhead = bulkhead.clone();
    tokio::spawn(async move {
        let permit = bulkhead.acquire().await?;
        sleep(hold).await;
        permit.success();
        Ok(())
    })
}

fn reason(result: Result<impl std::fmt::Debug, Rejection>) -> RejectionReason {
    result.unwrap_err().reason()
}

/// `total = accepted + rejected`, `accepted = successful + failed + ignored + active`.
fn assert_counts_add_up(metrics: &BulkheadMetrics) {
    assert_eq!(
        metrics.total_requests,
        metrics.accepted_requests + metrics.rejected_requests
    );
    assert_eq!(
        metrics.accepted_requests,
        metrics.successful_requests
            + metrics.failed_requests
            + metrics.ignored_requests
            + u64::from(metrics.current_active)
    );
    assert_eq!(
        metrics.rejected_requests,
        metrics.rejected_capacity_full
            + metrics.rejected_queue_full
            + metrics.rejected_wait_timeout
    );
}

#[tokio::test(start_paused = true)]
async fn admits_exactly_max_concurrent_then_rejects_capacity_full() {
    let bulkhead = bulkhead(3, 0, None);
    let permits: Vec<_> = (0..3).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert!(bulkhead.is_full());
    let error = bulkhead
        .call(|| async { Ok::<_, &str>("never runs") })
        .await
        .unwrap_err();
    let rejection = error.rejection().unwrap();
    assert_eq!(
        (
            rejection.pattern(),
            rejection.reason(),
            rejection.retry_after()
        ),
        (PatternKind::Bulkhead, RejectionReason::CapacityFull, None)
    );
    assert_eq!(rejection.to_string(), "bulkhead pool is at capacity");
    drop(permits);
    assert_eq!(bulkhead.available_slots(), 3);
    let metrics = bulkhead.metrics();
    assert_eq!(
        (
            metrics.total_requests,
            metrics.rejected_capacity_full,
            metrics.ignored_requests
        ),
        (4, 1, 3)
    );
    assert_eq!(metrics.peak_active, 3);
    assert_counts_add_up(&metrics);
}

#[tokio::test(start_paused = true)]
async fn the_three_reasons_are_kept_apart() {
    // One slot, one place in the queue, 100 ms of patience.
    let bulkhead = bulkhead(1, 1, Some(ms(100)));
    let running = bulkhead.try_acquire().unwrap();
    assert_eq!(
        reason(bulkhead.try_acquire()),
        RejectionReason::CapacityFull,
        "try_acquire never queues"
    );
    let queued = hold_slot(&bulkhead, ms(1));
    settle().await;
    assert_eq!(bulkhead.waiting(), 1);
    assert_eq!(reason(bulkhead.acquire().await), RejectionReason::QueueFull);
    advance(ms(100)).await;
    assert_eq!(reason(queued.await.unwrap()), RejectionReason::WaitTimeout);
    drop(running);
    let metrics = bulkhead.metrics();
    assert_eq!(
        (
            metrics.rejected_capacity_full,
            metrics.rejected_queue_full,
            metrics.rejected_wait_timeout
        ),
        (1, 1, 1)
    );
    // Counted once each (the seed counted a timed-out wait twice, bug B9).
    assert_eq!((metrics.total_requests, metrics.accepted_requests), (4, 1));
    assert_eq!(metrics.rejection_rate, 0.75);
    assert_counts_add_up(&metrics);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_can_neither_run_nor_queue_is_refused_at_once_for_its_reason() {
    let no_queue = bulkhead(1, 0, None);
    let _running = no_queue.try_acquire().unwrap();
    let refused = no_queue.call(|| async { Ok::<_, ()>(()) }).await;
    assert_eq!(
        refused.unwrap_err().rejection().map(Rejection::reason),
        Some(RejectionReason::CapacityFull)
    );

    let full_queue = bulkhead(1, 1, None);
    let _running = full_queue.try_acquire().unwrap();
    let _queued = hold_slot(&full_queue, ms(1));
    settle().await;
    let refused = full_queue.call(|| async { Ok::<_, ()>(()) }).await;
    assert_eq!(
        refused.unwrap_err().rejection().map(Rejection::reason),
        Some(RejectionReason::QueueFull)
    );
    assert_eq!(full_queue.waiting(), 1, "the queued call keeps its place");
    let metrics = full_queue.metrics();
    assert_eq!(metrics.rejected_queue_full, 1);
}

#[tokio::test(start_paused = true)]
async fn a_wait_is_rejected_exactly_at_the_wait_timeout() {
    let bulkhead = bulkhead(1, 5, Some(ms(100)));
    let running = bulkhead.try_acquire().unwrap();
    let waiter = hold_slot(&bulkhead, ms(1));
    settle().await;
    advance(ms(99)).await;
    settle().await;
    assert!(
        !waiter.is_finished(),
        "still waiting 1 ms before the timeout"
    );
    assert_eq!(bulkhead.waiting(), 1);
    advance(ms(1)).await;
    settle().await;
    assert!(waiter.is_finished(), "rejected at the timeout");
    assert_eq!(reason(waiter.await.unwrap()), RejectionReason::WaitTimeout);
    assert_eq!(bulkhead.waiting(), 0);
    drop(running);
}

#[tokio::test(start_paused = true)]
async fn a_slot_freed_at_the_last_moment_is_taken() {
    let bulkhead = bulkhead(1, 5, Some(ms(100)));
    let running = bulkhead.try_acquire().unwrap();
    let waiter = hold_slot(&bulkhead, ms(0));
    settle().await;
    advance(ms(99)).await;
    drop(running);
    waiter.await.unwrap().unwrap();
    let metrics = bulkhead.metrics();
    assert_eq!(metrics.peak_wait_time, ms(99));
    assert_eq!(metrics.rejected_wait_timeout, 0);

    // Freed at the very instant the wait expires: the slot wins over the timer.
    let running = bulkhead.try_acquire().unwrap();
    let waiter = hold_slot(&bulkhead, ms(0));
    settle().await;
    advance(ms(100)).await;
    drop(running);
    waiter.await.unwrap().unwrap();
    assert_eq!(bulkhead.metrics().peak_wait_time, ms(100));
}

#[tokio::test(start_paused = true)]
async fn a_slot_handed_over_after_the_deadline_is_passed_on() {
    use futures_util::FutureExt;
    let bulkhead = bulkhead(1, 1, Some(ms(10)));
    let running = bulkhead.try_acquire().unwrap();
    // A waiter whose task does not run again until well after its deadline.
    let mut late = std::pin::pin!(bulkhead.acquire());
    assert!(late.as_mut().now_or_never().is_none(), "queued");
    advance(ms(15)).await;
    drop(running); // handed to the late waiter's place in the queue
    let rejected = late.as_mut().now_or_never().unwrap().unwrap_err();
    assert_eq!(rejected.reason(), RejectionReason::WaitTimeout);
    assert_eq!(
        (
            bulkhead.available_slots(),
            bulkhead.active(),
            bulkhead.waiting()
        ),
        (1, 0, 0),
        "the slot went on instead of admitting a call 5 ms past its wait timeout"
    );
}

/// A wait dropped after a slot was handed to it, before it took the slot: the slot goes on
/// to the next waiter, and from there back to the free ones; none is lost.
#[tokio::test(start_paused = true)]
async fn a_wait_dropped_after_its_hand_over_passes_the_slot_on() {
    use futures_util::FutureExt;
    let bulkhead = bulkhead(1, 2, None);
    let running = bulkhead.try_acquire().unwrap();
    let mut first = Box::pin(bulkhead.acquire());
    let mut second = std::pin::pin!(bulkhead.acquire());
    assert!(first.as_mut().now_or_never().is_none(), "queued");
    assert!(second.as_mut().now_or_never().is_none(), "queued");
    assert_eq!(bulkhead.waiting(), 2);

    drop(running); // handed to the first waiter, which never runs again
    assert_eq!((bulkhead.waiting(), bulkhead.available_slots()), (1, 0));
    drop(first);
    let permit = second
        .as_mut()
        .now_or_never()
        .expect("the slot came on to the second waiter")
        .unwrap();
    assert_eq!((bulkhead.active(), bulkhead.waiting()), (1, 0));
    drop(permit);
    assert_eq!((bulkhead.active(), bulkhead.available_slots()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn peak_and_average_wait_are_exact() {
    let bulkhead = bulkhead(1, 10, None);
    let first = bulkhead.try_acquire().unwrap();
    // B waits 10 ms (until `first` goes), C waits 10 + 20 ms (B holds its slot 20 ms).
    let b = hold_slot(&bulkhead, ms(20));
    settle().await;
    let c = hold_slot(&bulkhead, ms(0));
    settle().await;
    advance(ms(10)).await;
    drop(first);
    settle().await;
    advance(ms(20)).await;
    b.await.unwrap().unwrap();
    c.await.unwrap().unwrap();
    let metrics = bulkhead.metrics();
    assert_eq!(metrics.accepted_requests, 3);
    assert_eq!(metrics.total_wait_time, ms(40));
    assert_eq!(metrics.peak_wait_time, ms(30));
    assert_eq!(
        metrics.average_wait_time,
        Duration::from_nanos(13_333_333),
        "40 ms over three accepted calls, the one that did not wait included"
    );
    assert_counts_add_up(&metrics);
}

#[tokio::test(start_paused = true)]
async fn queued_calls_are_admitted_in_arrival_order() {
    let bulkhead = bulkhead(2, 100, None);
    let order = Arc::new(Mutex::new(Vec::new()));
    let held: Vec<_> = (0..2).map(|_| bulkhead.try_acquire().unwrap()).collect();
    let mut tasks = Vec::new();
    for id in 0..50_u32 {
        let (shared, order) = (bulkhead.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            shared
                .call(|| async move {
                    order.lock().unwrap().push(id);
                    // Random-looking hold times, so slots free up out of order.
                    sleep(ms(u64::from(id * 7 % 5) + 1)).await;
                    Ok::<_, ()>(())
                })
                .await
        }));
        settle().await;
        assert_eq!(bulkhead.waiting(), id + 1, "task {id} is queued");
    }
    drop(held);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..50).collect::<Vec<_>>());
    assert_eq!(bulkhead.metrics().peak_active, 2);
}

#[tokio::test(start_paused = true)]
async fn newcomers_do_not_overtake_waiters() {
    let bulkhead = bulkhead(1, 10, None);
    let running = bulkhead.try_acquire().unwrap();
    let waiter = hold_slot(&bulkhead, ms(5));
    settle().await;
    drop(running);
    // The slot went straight to the waiter, before it even ran.
    assert_eq!(
        reason(bulkhead.try_acquire()),
        RejectionReason::CapacityFull
    );
    waiter.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_cancelled_tasks_leave_every_counter_at_zero() {
    const TASKS: u32 = 10_000;
    let bulkhead = bulkhead(8, 64, Some(ms(40)));
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut tasks = Vec::with_capacity(TASKS as usize);
    for _ in 0..TASKS {
        let bulkhead = bulkhead.clone();
        let work = ms(rng.u64(0..30));
        let fails = rng.u8(0..4) == 0;
        tasks.push(tokio::spawn(async move {
            bulkhead
                .call(|| async move {
                    sleep(work).await;
                    if fails {
                        Err("boom")
                    } else {
                        Ok(())
                    }
                })
                .await
        }));
        if rng.u8(0..3) == 0 {
            settle().await;
        }
        if rng.u8(0..8) == 0 {
            advance(ms(rng.u64(1..10))).await;
        }
        if rng.bool() {
            // Abort one of the recent tasks: not yet started, queued, running or done.
            let recent = rng.usize(0..tasks.len().min(32));
            tasks[tasks.len() - 1 - recent].abort();
        }
    }
    let (mut cancelled, mut rejected, mut ran) = (0, 0, 0);
    for task in tasks {
        match task.await {
            Err(join) if join.is_cancelled() => cancelled += 1,
            Err(join) => panic!("task panicked: {join}"),
            Ok(Err(Error::Rejected(_))) => rejected += 1,
            Ok(_) => ran += 1,
        }
    }
    assert!(
        cancelled > 1000 && rejected > 100 && ran > 1000,
        "{cancelled} {rejected} {ran}"
    );
    let metrics = bulkhead.metrics();
    assert_eq!(
        (
            metrics.current_active,
            metrics.current_waiting,
            metrics.available_slots
        ),
        (0, 0, 8)
    );
    assert_eq!(metrics.rejected_requests, rejected);
    assert_eq!(metrics.successful_requests + metrics.failed_requests, ran);
    assert_eq!(
        metrics.total_requests,
        u64::from(TASKS) - (cancelled - metrics.ignored_requests)
    );
    assert!(
        metrics.ignored_requests > 20,
        "cancelled while running: {metrics:?}"
    );
    assert!(
        metrics.peak_wait_time <= ms(40),
        "never admitted past the wait timeout"
    );
    assert_counts_add_up(&metrics);
    assert!(metrics.peak_active <= 8);
    // The whole capacity is usable again.
    let permits: Vec<_> = (0..8).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert!(bulkhead.try_acquire().is_err());
    drop(permits);
}

#[tokio::test(start_paused = true)]
async fn events_come_in_order_and_every_slot_is_released() {
    let bulkhead = bulkhead(1, 1, Some(ms(50)));
    let recorder = EventRecorder::attach(bulkhead.events());
    bulkhead.call(|| async { Ok::<_, ()>(()) }).await.unwrap();
    let _ = bulkhead.call(|| async { Err::<(), _>("failed") }).await;
    // A cancelled call releases too.
    let running = hold_slot(&bulkhead, ms(1_000));
    settle().await;
    let error = bulkhead
        .call(|| async { Ok::<_, ()>(()) })
        .await
        .unwrap_err();
    assert!(error.is_rejected(), "queued, then timed out");
    running.abort();
    settle().await;
    assert_eq!(
        recorder.names(),
        [
            "bulkhead_accepted",
            "bulkhead_released",
            "bulkhead_accepted",
            "bulkhead_released",
            "bulkhead_accepted",
            "bulkhead_rejected",
            "bulkhead_released",
        ]
    );
    let events = recorder.events();
    assert_eq!(events[5].metadata()["reason"], "wait_timeout");
    assert_eq!(
        events[6].metadata()["held"],
        "0.05",
        "held 50 ms before the abort"
    );
    let metrics = bulkhead.metrics();
    assert_eq!(
        (
            metrics.successful_requests,
            metrics.failed_requests,
            metrics.ignored_requests
        ),
        (1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_permit_reports_its_outcome_through_the_admission_trait() {
    async fn through<A: Stage>(admission: &A) -> A::Permit {
        admission.admit().await.unwrap()
    }
    let bulkhead = bulkhead(2, 0, None);
    let permit = through(&bulkhead).await;
    assert_eq!(bulkhead.active(), 1);
    assert!(permit.wants_outcome());
    permit.record(Outcome::Failure);
    through(&bulkhead).await.record(Outcome::Success);
    let metrics = bulkhead.metrics();
    assert_eq!(
        (
            metrics.current_active,
            metrics.failed_requests,
            metrics.successful_requests
        ),
        (0, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_admits_through_the_bulkhead_and_reports_outcomes() {
    use resilience::backpressure::Backpressure;
    use resilience::pipeline::Pipeline;
    let bulkhead = bulkhead(1, 0, None);
    let backpressure = Backpressure::builder("queue").build().unwrap();
    let pipeline = Pipeline::<u32, &str>::builder("jobs")
        .bulkhead((bulkhead.clone(), backpressure.clone()))
        .build()
        .unwrap();
    assert_eq!(pipeline.call(|| async { Ok(1) }).await.unwrap(), 1);
    let _ = pipeline.call(|| async { Err("boom") }).await;
    let held = bulkhead.try_acquire().unwrap();
    let error = pipeline.call(|| async { Ok(2) }).await.unwrap_err();
    assert_eq!(
        error.rejection().map(Rejection::reason),
        Some(RejectionReason::CapacityFull)
    );
    drop(held);
    let metrics = bulkhead.metrics();
    assert_eq!(
        (
            metrics.successful_requests,
            metrics.failed_requests,
            metrics.rejected_requests
        ),
        (1, 1, 1)
    );
    let backpressure = backpressure.metrics();
    assert_eq!(
        (backpressure.pending_count, backpressure.total_accepted),
        (0, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn execute_passes_errors_through_unnested() {
    let bulkhead = bulkhead(1, 0, None);
    let inner = bulkhead
        .execute(|| async { Err::<(), _>(Error::Inner("io")) })
        .await
        .unwrap_err();
    assert!(matches!(inner, Error::Inner("io")));
    let timeout = bulkhead
        .execute(|| async {
            Err::<(), Error<&str>>(Error::Timeout {
                elapsed: ms(5),
                limit: ms(5),
            })
        })
        .await
        .unwrap_err();
    assert!(timeout.is_timeout());
    let metrics = bulkhead.metrics();
    assert_eq!(
        (metrics.failed_requests, metrics.successful_requests),
        (2, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn growing_hands_slots_to_waiters_and_shrinking_takes_effect_as_calls_finish() {
    let bulkhead = bulkhead(1, 10, None);
    let first = bulkhead.try_acquire().unwrap();
    let waiters: Vec<_> = (0..2).map(|_| hold_slot(&bulkhead, ms(10))).collect();
    settle().await;
    bulkhead.set_max_concurrent(3).unwrap();
    settle().await;
    assert_eq!((bulkhead.active(), bulkhead.waiting()), (3, 0));

    bulkhead.set_max_concurrent(1).unwrap();
    assert_eq!(bulkhead.config().max_concurrent, 1);
    drop(first);
    advance(ms(10)).await;
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    // Two returning slots paid the debt; exactly one is left.
    assert_eq!(bulkhead.available_slots(), 1);
    let only = bulkhead.try_acquire().unwrap();
    assert!(bulkhead.try_acquire().is_err());
    drop(only);
    assert_eq!(bulkhead.metrics().utilization, 0.0);
    assert!(
        bulkhead.set_max_concurrent(0).is_err(),
        "validated like the builder"
    );
}

/// A grow larger than the queue serves every waiter first, in order, and frees the rest
/// together, up to the largest limit there is.
#[tokio::test(start_paused = true)]
async fn a_large_grow_serves_the_waiters_then_frees_the_rest() {
    let bulkhead = bulkhead(1, 10, None);
    let first = bulkhead.try_acquire().unwrap();
    let waiters: Vec<_> = (0..2).map(|_| hold_slot(&bulkhead, ms(10))).collect();
    settle().await;
    assert_eq!(bulkhead.waiting(), 2);

    bulkhead.set_max_concurrent(1_001).unwrap();
    settle().await;
    assert_eq!(
        (
            bulkhead.active(),
            bulkhead.waiting(),
            bulkhead.available_slots()
        ),
        (3, 0, 998)
    );

    let largest = 1 << 28;
    bulkhead.set_max_concurrent(largest).unwrap();
    assert_eq!(bulkhead.available_slots(), largest - 3);
    drop(first);
    advance(ms(10)).await;
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    assert_eq!(
        (bulkhead.active(), bulkhead.available_slots()),
        (0, largest)
    );
    assert!(bulkhead.set_max_concurrent(largest + 1).is_err());
}

#[tokio::test(start_paused = true)]
async fn utilization_is_a_ratio_and_reset_keeps_counts_consistent() {
    let bulkhead = bulkhead(4, 0, None);
    let permits: Vec<_> = (0..3).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert_eq!(bulkhead.metrics().utilization, 0.75);
    bulkhead.reset_metrics();
    let metrics = bulkhead.metrics();
    assert_eq!(
        (
            metrics.total_requests,
            metrics.accepted_requests,
            metrics.peak_active
        ),
        (3, 3, 3),
        "running calls are still accepted"
    );
    drop(permits);
    let metrics = bulkhead.metrics();
    assert_eq!((metrics.ignored_requests, metrics.utilization), (3, 0.0));
    assert_counts_add_up(&metrics);
}

#[test]
fn the_registry_finds_bulkheads_by_name_and_never_ignores_a_config() {
    let config = BulkheadConfig {
        max_concurrent: 2,
        ..BulkheadConfig::default()
    };
    let a = get_bulkhead("registry-test-db", config).unwrap();
    let b = get_bulkhead("registry-test-db", config).unwrap();
    let _permit = a.try_acquire().unwrap();
    assert_eq!(b.active(), 1, "same name, same slots");
    assert!(matches!(
        get_bulkhead("registry-test-db", BulkheadConfig::default()),
        Err(RegistryError::ConfigMismatch { .. })
    ));
    let registry = Registry::<Bulkhead>::new();
    registry
        .get_or_create("api", BulkheadConfig::default())
        .unwrap();
    assert_eq!(registry.metrics()["api"].max_concurrent, 10);
}

#[test]
fn invalid_configs_name_the_field() {
    let field = |result: Result<Bulkhead, resilience::ConfigError>| result.unwrap_err().field();
    assert_eq!(
        field(Bulkhead::builder("a").max_concurrent(0).build()),
        "max_concurrent"
    );
    assert_eq!(
        field(Bulkhead::builder("a").wait_timeout(Duration::ZERO).build()),
        "wait_timeout"
    );
    assert_eq!(field(Bulkhead::builder(" ").build()), "name");
    assert_eq!(
        field(Bulkhead::from_config(
            "a",
            BulkheadConfig {
                max_waiting: u32::MAX,
                ..BulkheadConfig::default()
            }
        )),
        "max_waiting"
    );
}

#[cfg(feature = "serde")]
#[test]
fn configs_deserialize_with_human_durations() {
    let config: BulkheadConfig = serde_json::from_str(
        r#"{"max_concurrent": 4, "max_waiting": 8, "wait_timeout": "1s 500ms"}"#,
    )
    .unwrap();
    assert_eq!(
        config,
        BulkheadConfig {
            max_concurrent: 4,
            max_waiting: 8,
            wait_timeout: Some(ms(1_500)),
        }
    );
    let seed_name: BulkheadConfig = serde_json::from_str(r#"{"timeout": "2s"}"#).unwrap();
    assert_eq!(seed_name.wait_timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        serde_json::from_str::<BulkheadConfig>("{}").unwrap(),
        BulkheadConfig::default()
    );
    assert!(serde_json::from_str::<BulkheadConfig>(r#"{"max_concurent": 4}"#).is_err());

    let bulkhead = bulkhead(2, 0, None);
    let json = serde_json::to_value(bulkhead.metrics()).unwrap();
    assert_eq!(json["utilization"], 0.0);
    assert_eq!(json["average_wait_time"], 0.0);
}

/// The tower contract, step by step with `tower-test`'s mock: `poll_ready` takes the slot
/// (waiting in the queue if need be), the response future holds it.
#[cfg(feature = "tower")]
mod layer {
    use super::*;
    use resilience::bulkhead::BulkheadLayer;
    use tower::Layer;
    use tower_test::assert_request_eq;
    use tower_test::mock::{self, Spawn};

    #[tokio::test(start_paused = true)]
    async fn the_slot_is_taken_in_poll_ready_and_held_by_the_response_future() {
        let bulkhead = bulkhead(1, 0, None);
        let (service, mut handle) = mock::pair::<&str, &str>();
        let mut service = Spawn::new(BulkheadLayer::new(bulkhead.clone()).layer(service));

        handle.allow(0);
        assert!(
            service.poll_ready().is_pending(),
            "the inner service is not ready"
        );
        assert_eq!(bulkhead.active(), 1, "but the slot is already taken");
        handle.allow(2);
        assert!(service.poll_ready().is_ready());
        let response = service.call("first");

        // The slot travels with the response: the next request is refused at once, without
        // reaching the inner service.
        assert!(service.poll_ready().is_ready());
        let error = service.call("second").await.unwrap_err();
        assert_eq!(
            error.rejection().map(Rejection::reason),
            Some(RejectionReason::CapacityFull)
        );
        assert_request_eq!(handle, "first").send_response("done");
        assert!(
            handle.poll_request().is_pending(),
            "the rejected request never arrived"
        );
        assert_eq!(response.await.unwrap(), "done");
        assert_eq!(bulkhead.active(), 0);
        assert_eq!(bulkhead.metrics().successful_requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn poll_ready_waits_in_the_queue_until_a_slot_frees_or_the_wait_times_out() {
        let bulkhead = bulkhead(1, 1, Some(ms(100)));
        let (service, mut handle) = mock::pair::<&str, &str>();
        let layer = BulkheadLayer::new(bulkhead.clone());
        let mut first = Spawn::new(layer.layer(service.clone()));
        let mut second = Spawn::new(layer.layer(service));
        handle.allow(10);

        assert!(first.poll_ready().is_ready());
        let response = first.call("a");
        assert!(second.poll_ready().is_pending(), "queued for the only slot");
        assert_eq!(bulkhead.waiting(), 1);
        assert_request_eq!(handle, "a").send_error("inner failed");
        assert!(response.await.unwrap_err().inner().is_some());
        assert!(second.is_woken(), "the freed slot wakes the queued service");
        assert!(second.poll_ready().is_ready());
        let response = second.call("b");
        assert_request_eq!(handle, "b").send_response("ok");
        assert_eq!(response.await.unwrap(), "ok");

        // Now with the slot held for longer than the wait timeout.
        assert!(first.poll_ready().is_ready());
        let held = first.call("c");
        assert!(second.poll_ready().is_pending());
        advance(ms(99)).await;
        assert!(second.poll_ready().is_pending(), "1 ms before the timeout");
        advance(ms(1)).await;
        assert!(
            second.poll_ready().is_ready(),
            "ready to hand out the rejection"
        );
        let error = second.call("d").await.unwrap_err();
        assert_eq!(
            error.rejection().map(Rejection::reason),
            Some(RejectionReason::WaitTimeout)
        );
        drop(held); // dropping the response future gives the slot back
        assert_eq!((bulkhead.active(), bulkhead.waiting()), (0, 0));
        let metrics = bulkhead.metrics();
        assert_eq!((metrics.failed_requests, metrics.ignored_requests), (1, 1));
        assert_counts_add_up(&metrics);
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_the_bulkhead_but_not_a_taken_slot() {
        let bulkhead = bulkhead(2, 0, None);
        let (service, _handle) = mock::pair::<&str, &str>();
        let mut original = BulkheadLayer::new(bulkhead.clone()).layer(service);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let _ = tower::Service::poll_ready(&mut original, &mut cx);
        assert_eq!(bulkhead.active(), 1);
        let clone = original.clone();
        assert_eq!(bulkhead.active(), 1, "the clone took no slot");
        drop(original);
        assert_eq!(
            bulkhead.active(),
            0,
            "dropping the service gives its slot back"
        );
        assert_eq!(clone.stage().name(), "pool");
        let _inner = clone.into_inner();
    }
}

/// Borrowed and owned permits, from waits cancelled at random points and from tasks aborted
/// while holding them: every slot and every place in the queue comes back exactly once.
#[tokio::test(start_paused = true)]
async fn borrowed_and_owned_permits_are_released_exactly_once_when_cancelled() {
    const TASKS: u32 = 1_000;
    let bulkhead = bulkhead(4, 32, Some(ms(40)));
    let mut rng = fastrand::Rng::with_seed(0xb0b);
    let mut tasks = Vec::with_capacity(TASKS as usize);
    for task in 0..TASKS {
        let bulkhead = bulkhead.clone();
        let hold = ms(rng.u64(0..30));
        tasks.push(tokio::spawn(async move {
            if task % 2 == 0 {
                let permit = bulkhead.acquire().await?;
                assert_eq!(permit.bulkhead().name(), "pool");
                sleep(hold).await;
                permit.success();
            } else {
                let permit = bulkhead.acquire_owned().await?;
                assert_eq!(permit.bulkhead().name(), "pool");
                // Outlives the borrow of the task's handle.
                drop(bulkhead);
                sleep(hold).await;
                permit.failure();
            }
            Ok::<_, Rejection>(())
        }));
    }
    for _ in 0..20 {
        advance(ms(5)).await;
        settle().await;
        for _ in 0..10 {
            tasks[rng.usize(0..tasks.len())].abort();
        }
    }
    advance(ms(1_000)).await;
    for task in tasks {
        let _ = task.await;
    }
    assert_eq!(bulkhead.active(), 0);
    assert_eq!(bulkhead.waiting(), 0);
    assert_eq!(bulkhead.available_slots(), 4);
    assert_counts_add_up(&bulkhead.metrics());
}

#[test]
fn a_borrowed_permit_names_its_bulkhead_for_as_long_as_the_borrow() {
    let bulkhead = bulkhead(1, 0, None);
    let bulkhead_of = {
        let permit = bulkhead.try_acquire().unwrap();
        let of = permit.bulkhead();
        assert_eq!(format!("{permit:?}"), r#"Permit { bulkhead: "pool" }"#);
        permit.success();
        of
    };
    assert_eq!(bulkhead_of.available_slots(), 1);
    let owned = bulkhead.try_acquire_owned().unwrap();
    assert_eq!(format!("{owned:?}"), r#"OwnedPermit { bulkhead: "pool" }"#);
    assert_eq!(owned.bulkhead().available_slots(), 0);
}

/// Tasks on two worker threads queue for slots held at first, or try for one beside them,
/// hold them across yields, and are aborted at random points (queued, holding a slot, done):
/// never more than the limit in use at once, and every slot and every place in the queue
/// comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_racing_for_slots_never_pass_the_limit_and_lose_nothing() {
    const TASKS: usize = 4_000;
    const LIMIT: u32 = 3;

    /// One slot in use as the tasks see it, counted until dropped (also when aborted).
    struct InUse(Arc<AtomicU32>);
    impl InUse {
        fn enter(count: &Arc<AtomicU32>) -> Self {
            let before = count.fetch_add(1, SeqCst);
            assert!(before < LIMIT, "{} slots in use", before + 1);
            Self(Arc::clone(count))
        }
    }
    impl Drop for InUse {
        fn drop(&mut self) {
            self.0.fetch_sub(1, SeqCst);
        }
    }

    let bulkhead = bulkhead(LIMIT, 10_000, None);
    let held: Vec<_> = (0..LIMIT)
        .map(|_| bulkhead.try_acquire_owned().unwrap())
        .collect();
    let in_use = Arc::new(AtomicU32::new(0));
    let mut rng = fastrand::Rng::with_seed(0x7ead);
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let (bulkhead, in_use) = (bulkhead.clone(), Arc::clone(&in_use));
        let yields = rng.u32(0..4);
        tasks.push(tokio::spawn(async move {
            let permit = if task % 3 == 0 {
                match bulkhead.try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(rejection) => {
                        assert_eq!(rejection.reason(), RejectionReason::CapacityFull);
                        return;
                    }
                }
            } else {
                bulkhead.acquire_owned().await.expect("the queue has room")
            };
            let in_use = InUse::enter(&in_use);
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            // Out of the count before the slot goes back, which another thread may take at
            // once (an aborted task drops the two in the same order).
            drop(in_use);
            permit.success();
        }));
        if rng.u8(0..4) == 0 {
            let recent = rng.usize(0..tasks.len().min(16));
            tasks[tasks.len() - 1 - recent].abort();
        }
    }
    // Every slot is held, so the tasks queue: give the slots back once some have.
    while bulkhead.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    drop(held);
    for task in tasks {
        if let Err(join) = task.await {
            if join.is_panic() {
                std::panic::resume_unwind(join.into_panic());
            }
        }
    }
    assert_eq!(
        (
            bulkhead.active(),
            bulkhead.waiting(),
            bulkhead.available_slots()
        ),
        (0, 0, LIMIT)
    );
    assert_counts_add_up(&bulkhead.metrics());
}
