//! Backpressure through its public API, under paused time: both water marks exactly, FIFO
//! fairness (bug B11), the recheck against the high mark when waiters are released, timeouts,
//! cancellation races, events, the stream adapter, live config, the registry and config.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use resilience::backpressure::{Backpressure, BackpressureConfig, Permit};
use resilience::registry::Registry;
use resilience::stage::Stage;
use resilience::{Error, PatternKind, Rejection, RejectionReason};
use resilience_testkit::EventRecorder;
use tokio::task::JoinHandle;
use tokio::time::{advance, sleep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn controller(max_pending: u32, high: u32, low: u32) -> Backpressure {
    Backpressure::builder("ingest")
        .max_pending(max_pending)
        .water_marks(high, low)
        .build()
        .unwrap()
}

/// Lets spawned tasks run until they block (paused time: no timer fires).
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

fn take(controller: &Backpressure, n: u32) -> Vec<Permit<'_>> {
    (0..n).map(|_| controller.try_acquire().unwrap()).collect()
}

/// A producer that waits for admission (up to `timeout`), records its id, and holds its permit
/// until `hold` has passed.
fn producer(
    controller: &Backpressure,
    id: u32,
    timeout: Duration,
    admitted: &Arc<Mutex<Vec<u32>>>,
    hold: Duration,
) -> JoinHandle<Result<(), Rejection>> {
    let (controller, admitted) = (controller.clone(), Arc::clone(admitted));
    tokio::spawn(async move {
        let permit = controller.acquire_timeout(timeout).await?;
        admitted.lock().unwrap().push(id);
        sleep(hold).await;
        drop(permit);
        Ok(())
    })
}

#[tokio::test(start_paused = true)]
async fn turns_on_exactly_at_the_high_mark_and_off_exactly_at_the_low_mark() {
    let controller = controller(100, 80, 20);
    let recorder = EventRecorder::attach(controller.events());
    let mut permits = take(&controller, 79);
    assert!(
        !controller.should_apply_backpressure(),
        "off one below the high mark"
    );
    permits.extend(take(&controller, 1));
    assert!(
        controller.should_apply_backpressure(),
        "on at the high mark"
    );
    assert_eq!(recorder.names(), ["backpressure_high"]);
    assert_eq!(
        controller.try_acquire().unwrap_err().reason(),
        RejectionReason::Backpressure
    );
    // Hysteresis: still on all the way down to the low mark.
    permits.truncate(21);
    assert!(
        controller.should_apply_backpressure(),
        "on one above the low mark"
    );
    permits.truncate(20);
    assert!(
        !controller.should_apply_backpressure(),
        "off at the low mark"
    );
    assert_eq!(recorder.names(), ["backpressure_high", "backpressure_low"]);
    let events = recorder.events();
    assert_eq!(events[0].metadata()["pending"], "80");
    assert_eq!(events[1].metadata()["pending"], "20");
    assert_eq!(events[1].metadata()["low_water_mark"], "20");
    drop(permits);
    let metrics = controller.metrics();
    assert_eq!(
        (
            metrics.pending_count,
            metrics.total_accepted,
            metrics.total_rejected
        ),
        (0, 80, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn max_pending_bounds_pending_plus_waiting() {
    let controller = controller(4, 2, 0);
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let permits = take(&controller, 2);
    let waiters: Vec<_> = (0..2)
        .map(|id| producer(&controller, id, ms(1_000), &admitted, ms(0)))
        .collect();
    settle().await;
    assert_eq!((controller.pending(), controller.waiting()), (2, 2));
    assert!(controller.is_overloaded());
    assert_eq!(controller.metrics().utilization, 1.0);
    let rejection = controller.acquire().await.unwrap_err();
    assert_eq!(
        (
            rejection.pattern(),
            rejection.reason(),
            rejection.retry_after()
        ),
        (
            PatternKind::Backpressure,
            RejectionReason::Backpressure,
            None
        )
    );
    assert_eq!(
        rejection.to_string(),
        "backpressure ingest is applying backpressure"
    );
    drop(permits);
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    assert!(!controller.is_overloaded());
    assert_eq!(controller.metrics().rejected_backpressure, 1);
}

#[tokio::test(start_paused = true)]
async fn a_wait_is_rejected_exactly_at_its_timeout() {
    let controller = controller(10, 2, 0);
    let _permits = take(&controller, 2);
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let waiter = producer(&controller, 0, ms(250), &admitted, ms(0));
    settle().await;
    advance(ms(249)).await;
    settle().await;
    assert!(
        !waiter.is_finished(),
        "still waiting 1 ms before the timeout"
    );
    advance(ms(1)).await;
    settle().await;
    assert!(waiter.is_finished());
    let rejection = waiter.await.unwrap().unwrap_err();
    assert_eq!(rejection.reason(), RejectionReason::WaitTimeout);
    assert_eq!(
        rejection.to_string(),
        "backpressure ingest timed out waiting for a slot"
    );
    let metrics = controller.metrics();
    assert_eq!(
        (metrics.waiting_count, metrics.rejected_wait_timeout),
        (0, 1)
    );
    // A zero timeout never waits.
    assert_eq!(
        controller
            .acquire_timeout(Duration::ZERO)
            .await
            .unwrap_err()
            .reason(),
        RejectionReason::Backpressure
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_wait_is_five_seconds() {
    let controller = controller(10, 1, 0);
    assert_eq!(controller.config().wait_timeout, Duration::from_secs(5));
    let _permit = controller.try_acquire().unwrap();
    let started = tokio::time::Instant::now();
    let rejection = controller.acquire().await.unwrap_err();
    assert_eq!(rejection.reason(), RejectionReason::WaitTimeout);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn newcomers_never_overtake_waiters() {
    // Bug B11: the seed admitted newcomers between the marks while earlier waiters waited.
    let controller = controller(100, 4, 1);
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let mut permits = take(&controller, 4);
    let early = producer(&controller, 0, ms(1_000), &admitted, ms(1_000));
    settle().await;
    permits.truncate(2); // pending 2: between the marks, backpressure still on
    settle().await;
    assert!(admitted.lock().unwrap().is_empty());
    assert_eq!(
        controller.try_acquire().unwrap_err().reason(),
        RejectionReason::Backpressure,
        "a newcomer does not slip in between the marks"
    );
    let late = producer(&controller, 1, ms(1_000), &admitted, ms(1_000));
    settle().await;
    assert_eq!(
        controller.waiting(),
        2,
        "the newcomer queued behind the waiter"
    );
    permits.truncate(1); // the low mark: both admitted, in arrival order
    settle().await;
    assert_eq!(*admitted.lock().unwrap(), [0, 1]);
    drop(permits);
    advance(ms(1_000)).await;
    early.await.unwrap().unwrap();
    late.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiters_released_at_the_low_mark_are_rechecked_against_the_high_mark() {
    let controller = controller(100, 4, 2);
    let recorder = EventRecorder::attach(controller.events());
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let mut permits = take(&controller, 4);
    let waiters: Vec<_> = (0..5)
        .map(|id| producer(&controller, id, ms(10_000), &admitted, ms(100)))
        .collect();
    settle().await;
    assert_eq!(controller.waiting(), 5);
    permits.truncate(2);
    settle().await;
    // Two admitted (pending back at the high mark), not all five (the seed's thundering herd).
    assert_eq!(*admitted.lock().unwrap(), [0, 1]);
    assert_eq!((controller.pending(), controller.waiting()), (4, 3));
    assert_eq!(
        recorder.names(),
        ["backpressure_high", "backpressure_low", "backpressure_high"]
    );
    // The last two items done: down to the low mark again, and again only two go.
    drop(permits);
    settle().await;
    assert_eq!(*admitted.lock().unwrap(), [0, 1, 2, 3]);
    assert_eq!((controller.pending(), controller.waiting()), (4, 1));
    advance(ms(100)).await;
    settle().await;
    assert_eq!(*admitted.lock().unwrap(), [0, 1, 2, 3, 4]);
    advance(ms(100)).await;
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    assert_eq!(controller.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_in_arrival_order_under_contention() {
    let controller = controller(1_000, 3, 0);
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let permits = take(&controller, 3);
    let mut rng = fastrand::Rng::with_seed(11);
    let mut waiters = Vec::new();
    for id in 0..60 {
        let hold = ms(rng.u64(1..20));
        waiters.push(producer(&controller, id, ms(60_000), &admitted, hold));
        settle().await;
        assert_eq!(controller.waiting(), id + 1);
    }
    drop(permits);
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    assert_eq!(*admitted.lock().unwrap(), (0..60).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_grant_to_a_waiter_cancelled_at_that_moment_is_handed_on() {
    let controller = controller(100, 2, 1);
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let mut permits = take(&controller, 2);
    let first = producer(&controller, 0, ms(1_000), &admitted, ms(0));
    let second = producer(&controller, 1, ms(1_000), &admitted, ms(0));
    settle().await;
    // Down to the low mark: the first waiter is granted (pending back at 2, on again) ...
    permits.truncate(1);
    assert_eq!((controller.pending(), controller.waiting()), (2, 1));
    // ... and cancelled before it could run. Its slot goes on to the second waiter.
    first.abort();
    settle().await;
    assert!(first.await.unwrap_err().is_cancelled());
    second.await.unwrap().unwrap();
    assert_eq!(*admitted.lock().unwrap(), [1]);
    drop(permits);
    assert_eq!((controller.pending(), controller.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_grant_at_the_instant_of_the_timeout_is_taken() {
    let controller = controller(100, 1, 0);
    let permit = controller.try_acquire().unwrap();
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let waiter = producer(&controller, 0, ms(100), &admitted, ms(0));
    settle().await;
    advance(ms(100)).await; // the timer is due, and the slot frees at the same instant
    drop(permit);
    waiter.await.unwrap().unwrap();
    assert_eq!(controller.metrics().rejected_wait_timeout, 0);
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_cancelled_tasks_leave_every_counter_at_zero() {
    const TASKS: usize = 10_000;
    let controller = controller(200, 32, 8);
    let mut rng = fastrand::Rng::with_seed(0xbac4);
    let mut tasks: Vec<JoinHandle<Result<(), Error<()>>>> = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let (controller, work) = (controller.clone(), ms(rng.u64(0..30)));
        let timeout = ms(rng.u64(0..50));
        tasks.push(tokio::spawn(async move {
            let _permit = controller.acquire_timeout(timeout).await?;
            sleep(work).await;
            Ok(())
        }));
        if rng.u8(0..3) == 0 {
            settle().await;
        }
        if rng.u8(0..8) == 0 {
            advance(ms(rng.u64(1..10))).await;
        }
        if rng.bool() {
            let recent = rng.usize(0..tasks.len().min(64));
            tasks[tasks.len() - 1 - recent].abort();
        }
    }
    let (mut cancelled, mut rejected, mut done) = (0_u64, 0_u64, 0_u64);
    for task in tasks {
        match task.await {
            Err(join) if join.is_cancelled() => cancelled += 1,
            Err(join) => panic!("task panicked: {join}"),
            Ok(Err(_)) => rejected += 1,
            Ok(Ok(())) => done += 1,
        }
    }
    assert!(
        cancelled > 1000 && rejected > 100 && done > 1000,
        "{cancelled} {rejected} {done}"
    );
    let metrics = controller.metrics();
    assert_eq!(
        (
            metrics.pending_count,
            metrics.waiting_count,
            metrics.backpressure_active
        ),
        (0, 0, false)
    );
    assert_eq!(metrics.total_rejected, rejected);
    assert!(metrics.total_accepted >= done);
    // Full capacity: admitted at once up to the high mark.
    let permits = take(&controller, 32);
    assert!(controller.should_apply_backpressure());
    drop(permits);
    assert!(!controller.should_apply_backpressure());
}

/// Admissions and releases without the lock (backpressure off, the high mark not reached)
/// race the locked ones (switches, waiters, timeouts, reconfiguration) on four threads: the
/// counts add up and nothing is left held or queued.
#[test]
fn lock_free_and_locked_paths_agree_across_threads() {
    use std::sync::atomic::AtomicU64;
    let controller = controller(24, 8, 2);
    let admitted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4_u32)
        .map(|thread| {
            let (controller, admitted, refused) = (
                controller.clone(),
                Arc::clone(&admitted),
                Arc::clone(&refused),
            );
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                let mut held = Vec::new();
                for i in 0..20_000_u32 {
                    let got = if i % 7 == thread {
                        runtime.block_on(controller.acquire_timeout(Duration::from_micros(20)))
                    } else {
                        controller.try_acquire_owned()
                    };
                    match got {
                        Ok(permit) => {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            held.push(permit);
                        }
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Up to 11 held by one thread, past the high mark on its own: refusals
                    // come however the threads happen to interleave on a busy machine.
                    if held.len() > (i % 12) as usize {
                        held.clear();
                    }
                    if thread == 0 && i % 500 == 0 {
                        let high = if i % 1000 == 0 { 6 } else { 8 };
                        let config = BackpressureConfig {
                            high_water_mark: high,
                            ..controller.config()
                        };
                        controller.set_config(config).unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let metrics = controller.metrics();
    assert_eq!(
        (
            metrics.pending_count,
            metrics.waiting_count,
            metrics.backpressure_active
        ),
        (0, 0, false)
    );
    let (admitted, refused) = (
        admitted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    assert!(admitted > 10_000 && refused > 100, "{admitted} {refused}");
    assert_eq!(
        (metrics.total_accepted, metrics.total_rejected),
        (admitted, refused)
    );
    // The marks still hold: admitted at once up to the high mark, then on.
    let permits = take(&controller, 8);
    assert!(controller.should_apply_backpressure());
    drop(permits);
    assert!(!controller.should_apply_backpressure());
}

/// A release that switches backpressure off grants the waiters in one locked section, and
/// each granted waiter may run on the other worker before that section ends. Each finds
/// itself counted in `pending` as soon as it runs, and the count ends at zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_granted_in_one_section_are_counted_before_they_run() {
    const HELD: u32 = 64;
    const WAITERS: u32 = 2_000;
    let controller = controller(HELD + WAITERS, HELD, 0);
    let held: Vec<_> = (0..HELD)
        .map(|_| controller.try_acquire_owned().unwrap())
        .collect();
    assert!(controller.should_apply_backpressure());
    let uncounted = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (controller, uncounted) = (controller.clone(), Arc::clone(&uncounted));
            tokio::spawn(async move {
                let permit = controller.acquire_timeout(Duration::MAX).await.unwrap();
                if controller.pending() == 0 {
                    uncounted.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            })
        })
        .collect();
    while controller.waiting() < WAITERS {
        tokio::task::yield_now().await;
    }
    // The last of these releases switches off at the low mark and grants every waiter
    // (pending stays below the high mark), waking them while it still holds the lock.
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(
        uncounted.load(Ordering::Relaxed),
        0,
        "a granted waiter ran uncounted"
    );
    assert_eq!((controller.pending(), controller.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn call_execute_and_the_admission_trait_hold_a_slot_while_running() {
    let controller = controller(10, 5, 0);
    let seen = controller
        .call(|| {
            let controller = controller.clone();
            async move { Ok::<_, ()>(controller.pending()) }
        })
        .await
        .unwrap();
    assert_eq!(seen, 1);
    let error = controller
        .execute(|| async { Err::<(), _>(Error::Inner("io")) })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Inner("io")), "not nested");
    let permit = Stage::admit(&controller).await.unwrap();
    assert_eq!(controller.pending(), 1);
    drop(permit);
    assert_eq!(controller.pending(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_stream_adapter_stops_pulling_while_backpressure_is_on() {
    let controller = controller(100, 3, 1);
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let source = futures_util::stream::iter(0..10).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let mut items = Box::pin(controller.stream(source));
    let mut held = Vec::new();
    for expected in 0..3 {
        let (item, permit) = items.next().await.unwrap();
        assert_eq!(item, expected);
        held.push(permit);
    }
    assert!(controller.should_apply_backpressure());
    // On: the next poll waits in the queue and leaves the source alone.
    let waiting = tokio::time::timeout(ms(1_000), items.next()).await;
    assert!(waiting.is_err());
    assert_eq!(pulled.load(Ordering::SeqCst), 3, "nothing pulled while on");
    assert_eq!(controller.waiting(), 1);
    // The consumer holding a permit keeps its slot; releasing to the low mark lets it go on.
    held.truncate(1);
    let (item, permit) = items.next().await.unwrap();
    assert_eq!((item, controller.pending()), (3, 2));
    drop(permit);
    drop(held);
    let rest: Vec<_> = items.by_ref().map(|(item, _permit)| item).collect().await;
    assert_eq!(rest, [4, 5, 6, 7, 8, 9]);
    assert!(items.next().await.is_none());
    assert_eq!((controller.pending(), controller.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn an_item_pulled_as_backpressure_turns_on_waits_in_the_adapter() {
    use futures_util::FutureExt;
    let controller = controller(100, 2, 0);
    let others = Arc::new(Mutex::new(Vec::new()));
    let polls = Arc::new(AtomicUsize::new(0));
    let (filler, taken, counted) = (controller.clone(), Arc::clone(&others), Arc::clone(&polls));
    let source = futures_util::stream::poll_fn(move |_| {
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            // Other producers fill the controller while this item is being produced.
            let owned = (0..2).map(|_| filler.try_acquire_owned().unwrap());
            taken.lock().unwrap().extend(owned);
        }
        std::task::Poll::Ready(Some("late"))
    });
    let mut items = Box::pin(controller.stream(source));
    assert!(
        items.next().now_or_never().is_none(),
        "the item waits for admission"
    );
    assert_eq!((polls.load(Ordering::SeqCst), controller.waiting()), (1, 1));
    assert!(items.next().now_or_never().is_none());
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "no further pull while it waits"
    );
    others.lock().unwrap().clear();
    let (item, _permit) = items.next().now_or_never().flatten().unwrap();
    assert_eq!((item, controller.pending()), ("late", 1));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_stream_gives_back_its_reserved_slot() {
    let controller = controller(100, 1, 0);
    let blocker = controller.try_acquire().unwrap();
    let mut items = Box::pin(controller.stream(futures_util::stream::pending::<u32>()));
    assert!(futures_util::FutureExt::now_or_never(items.next()).is_none());
    assert_eq!(controller.waiting(), 1, "queued behind the backpressure");
    drop(blocker);
    assert!(futures_util::FutureExt::now_or_never(items.next()).is_none());
    assert_eq!(controller.pending(), 1, "a slot reserved for the next item");
    drop(items);
    assert_eq!((controller.pending(), controller.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn set_config_moves_the_switch_and_admits_waiters() {
    let controller = controller(100, 4, 0);
    let recorder = EventRecorder::attach(controller.events());
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let permits = take(&controller, 4);
    let waiter = producer(&controller, 7, ms(1_000), &admitted, ms(0));
    settle().await;
    // Raising both marks: off at once (pending 4 <= 5) and the waiter is admitted.
    controller
        .set_config(BackpressureConfig {
            high_water_mark: 10,
            low_water_mark: 5,
            ..controller.config()
        })
        .unwrap();
    waiter.await.unwrap().unwrap();
    assert_eq!(recorder.names(), ["backpressure_high", "backpressure_low"]);
    let invalid = BackpressureConfig {
        low_water_mark: 11,
        ..controller.config()
    };
    assert_eq!(
        controller.set_config(invalid).unwrap_err().field(),
        "low_water_mark"
    );
    drop(permits);
}

#[test]
fn registry_and_validation() {
    let registry = Registry::<Backpressure>::new();
    let config = BackpressureConfig {
        max_pending: 10,
        high_water_mark: 8,
        low_water_mark: 2,
        ..BackpressureConfig::default()
    };
    let a = registry.get_or_create("queue", config).unwrap();
    let b = registry.get_or_create("queue", config).unwrap();
    let _permit = a.try_acquire().unwrap();
    assert_eq!(b.pending(), 1);
    assert_eq!(registry.metrics()["queue"].pending_count, 1);
    assert_eq!(registry.metrics()["queue"].utilization, 0.1);

    let field = |result: Result<Backpressure, resilience::ConfigError>| result.unwrap_err().field();
    assert_eq!(
        field(Backpressure::builder("q").max_pending(0).build()),
        "max_pending"
    );
    assert_eq!(
        field(
            Backpressure::builder("q")
                .max_pending(5)
                .water_marks(6, 1)
                .build()
        ),
        "high_water_mark"
    );
    assert_eq!(
        field(Backpressure::builder("q").water_marks(5, 6).build()),
        "low_water_mark"
    );
    assert_eq!(
        field(
            Backpressure::builder("q")
                .high_water_mark(0)
                .low_water_mark(0)
                .build()
        ),
        "high_water_mark"
    );
    assert_eq!(field(Backpressure::builder("").build()), "name");
}

#[cfg(feature = "serde")]
#[test]
fn configs_deserialize_with_human_durations() {
    let config: BackpressureConfig = serde_json::from_str(
        r#"{"max_pending": 50, "high_water_mark": 40, "low_water_mark": 10, "wait_timeout": "250ms"}"#,
    )
    .unwrap();
    assert_eq!(
        config,
        BackpressureConfig {
            max_pending: 50,
            high_water_mark: 40,
            low_water_mark: 10,
            wait_timeout: ms(250),
        }
    );
    let seed_name: BackpressureConfig = serde_json::from_str(r#"{"timeout": "1s"}"#).unwrap();
    assert_eq!(seed_name.wait_timeout, Duration::from_secs(1));
    assert!(serde_json::from_str::<BackpressureConfig>(r#"{"high_watermark": 1}"#).is_err());
    let json = serde_json::to_value(controller(10, 5, 1).metrics()).unwrap();
    assert_eq!(json["backpressure_active"], false);
    assert_eq!(json["utilization"], 0.0);
}

/// The tower contract with `tower-test`'s mock: admission in `poll_ready` (waiting while
/// backpressure is on), the permit held by the response future.
#[cfg(feature = "tower")]
mod layer {
    use super::*;
    use resilience::backpressure::BackpressureLayer;
    use tower::Layer;
    use tower_test::assert_request_eq;
    use tower_test::mock::{self, Spawn};

    #[tokio::test(start_paused = true)]
    async fn each_request_is_pending_until_its_response_is_ready() {
        let controller = Backpressure::builder("edge")
            .max_pending(10)
            .water_marks(2, 0)
            .wait_timeout(ms(100))
            .build()
            .unwrap();
        let (service, mut handle) = mock::pair::<&str, &str>();
        let layer = BackpressureLayer::new(controller.clone());
        let mut a = Spawn::new(layer.layer(service.clone()));
        let mut b = Spawn::new(layer.layer(service));
        handle.allow(10);

        assert!(a.poll_ready().is_ready());
        let first = a.call("1");
        assert!(a.poll_ready().is_ready());
        let second = a.call("2");
        assert!(
            controller.should_apply_backpressure(),
            "two requests pending"
        );
        assert!(
            b.poll_ready().is_pending(),
            "waits while backpressure is on"
        );
        assert_request_eq!(handle, "1").send_response("one");
        assert_eq!(first.await.unwrap(), "one");
        assert!(b.poll_ready().is_pending(), "between the marks: still on");
        assert_request_eq!(handle, "2").send_response("two");
        assert_eq!(second.await.unwrap(), "two");
        assert!(b.is_woken());
        assert!(b.poll_ready().is_ready(), "admitted at the low mark");
        let third = b.call("3");
        assert_eq!(controller.pending(), 1);
        assert_request_eq!(handle, "3").send_response("three");
        assert_eq!(third.await.unwrap(), "three");

        // A wait that lasts the whole wait timeout is rejected, exactly at it.
        let blockers = take(&controller, 2);
        assert!(b.poll_ready().is_pending());
        advance(ms(99)).await;
        assert!(b.poll_ready().is_pending());
        advance(ms(1)).await;
        assert!(b.poll_ready().is_ready());
        let error = b.call("4").await.unwrap_err();
        assert_eq!(
            error.rejection().map(Rejection::reason),
            Some(RejectionReason::WaitTimeout)
        );
        assert!(
            handle.poll_request().is_pending(),
            "the rejected request never arrived"
        );
        drop(blockers);
        assert_eq!((controller.pending(), controller.waiting()), (0, 0));
    }
}
