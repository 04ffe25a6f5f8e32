//! Calls admitted by lease (`Stage::lease`): the stage hears the end of every call exactly
//! once, with its outcome, and a call dropped at any point ends its lease as ignored.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use resilience::adaptive::AdaptiveLimiter;
use resilience::backpressure::Backpressure;
use resilience::bulkhead::Bulkhead;
use resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use resilience::classify::Outcome;
use resilience::load_shed::{LoadShedder, Priority};
use resilience::stage::{self, Admit, LeaseToken, Leased, Stage};
use resilience::{Error, PatternKind};

/// Leases every call with a fresh tag and records how each lease ended.
#[derive(Clone, Default)]
struct Ledger {
    next: Arc<AtomicU64>,
    ended: Arc<Mutex<Vec<(u64, Outcome)>>>,
    limit: Option<Duration>,
}

impl Ledger {
    fn ended(&self) -> Vec<(u64, Outcome)> {
        self.ended.lock().unwrap().clone()
    }
}

impl Stage for Ledger {
    type Permit = ();

    fn admit(&self) -> Admit<()> {
        Admit::admitted(())
    }

    fn name(&self) -> &str {
        "ledger"
    }

    fn pattern(&self) -> PatternKind {
        PatternKind::Custom("ledger")
    }

    fn call_limit(&self) -> Option<Duration> {
        self.limit
    }

    fn lease(&self) -> Leased<()> {
        let tag = self.next.fetch_add(1, Ordering::Relaxed);
        Leased::Token(LeaseToken::new(tag).wanting_outcome())
    }

    fn end_lease(&self, token: LeaseToken, outcome: Outcome) {
        self.ended.lock().unwrap().push((token.tag(), outcome));
    }
}

fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn every_lease_ends_once_with_its_outcome() {
    let ledger = Ledger::default();
    let ok = stage::call(&ledger, || async { Ok::<_, ()>(1) }).await;
    assert!(matches!(ok, Ok(1)));
    let failed = stage::call(&ledger, || async { Err::<u32, _>("down") }).await;
    assert!(matches!(failed, Err(Error::Inner("down"))));
    assert_eq!(
        ledger.ended(),
        [(0, Outcome::Success), (1, Outcome::Failure)]
    );
}

#[test]
fn a_call_dropped_while_running_ends_its_lease_as_ignored() {
    let ledger = Ledger::default();
    {
        let mut call = pin!(stage::call(
            &ledger,
            std::future::pending::<Result<u32, ()>>
        ));
        assert!(poll_once(call.as_mut()).is_pending());
        assert!(ledger.ended().is_empty(), "still running");
    }
    assert_eq!(ledger.ended(), [(0, Outcome::Ignored)]);

    // Dropped before its first poll: nothing was admitted, nothing to end.
    drop(stage::call(&ledger, || async { Ok::<_, ()>(1) }));
    assert_eq!(ledger.ended().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_over_the_limit_ends_its_lease_as_a_failure() {
    let ledger = Ledger {
        limit: Some(Duration::from_millis(10)),
        ..Ledger::default()
    };
    let late = stage::call(&ledger, || async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, ()>(1)
    })
    .await;
    assert!(matches!(late, Err(Error::Timeout { .. })));
    assert_eq!(ledger.ended(), [(0, Outcome::Failure)]);
}

#[test]
fn a_cancelled_bulkhead_call_gives_its_slot_back() {
    let bulkhead = Bulkhead::builder("lease")
        .max_concurrent(1)
        .build()
        .unwrap();
    {
        let mut call = pin!(bulkhead.call(std::future::pending::<Result<u32, ()>>));
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(bulkhead.available_slots(), 0);
    }
    assert_eq!(bulkhead.available_slots(), 1);
}

#[test]
fn a_backpressure_call_holds_its_place_until_it_ends_or_is_cancelled() {
    let controller = Backpressure::builder("lease").build().unwrap();
    {
        let mut call = pin!(controller.call(std::future::pending::<Result<u32, ()>>));
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(controller.pending(), 1);
    }
    assert_eq!(
        controller.pending(),
        0,
        "a cancelled call gives its place back"
    );
    let mut call = pin!(controller.call(|| async { Ok::<_, ()>(7) }));
    assert!(matches!(poll_once(call.as_mut()), Poll::Ready(Ok(7))));
    assert_eq!(
        controller.pending(),
        0,
        "a finished call gives its place back"
    );
    assert_eq!(controller.metrics().total_accepted, 2);
}

#[test]
fn a_load_shedder_call_holds_its_slot_until_it_ends_or_is_cancelled() {
    let shedder = LoadShedder::builder("lease").build().unwrap();
    let prioritized = shedder.prioritized(Priority::High);
    {
        let mut call =
            pin!(shedder.call(Priority::Normal, std::future::pending::<Result<u32, ()>>));
        let mut high = pin!(stage::call(
            &prioritized,
            std::future::pending::<Result<u32, ()>>
        ));
        assert!(poll_once(call.as_mut()).is_pending());
        assert!(poll_once(high.as_mut()).is_pending());
        assert_eq!(shedder.metrics().active_requests, 2);
    }
    assert_eq!(
        shedder.metrics().active_requests,
        0,
        "cancelled calls give their slots back"
    );
    let mut call = pin!(shedder.call(Priority::Normal, || async { Ok::<_, ()>(7) }));
    assert!(matches!(poll_once(call.as_mut()), Poll::Ready(Ok(7))));
    assert_eq!(
        shedder.metrics().active_requests,
        0,
        "a finished call gives its slot back"
    );
}

#[test]
fn an_adaptive_call_holds_its_slot_and_reports_how_it_went() {
    let limiter = AdaptiveLimiter::builder("lease").build().unwrap();
    {
        let mut call = pin!(limiter.call(std::future::pending::<Result<u32, ()>>));
        assert!(poll_once(call.as_mut()).is_pending());
        assert_eq!(limiter.in_flight(), 1);
    }
    assert_eq!(
        limiter.in_flight(),
        0,
        "a cancelled call gives its slot back"
    );
    let mut ok = pin!(limiter.call(|| async { Ok::<_, ()>(7) }));
    assert!(matches!(poll_once(ok.as_mut()), Poll::Ready(Ok(7))));
    let mut failed = pin!(limiter.call(|| async { Err::<u32, _>(()) }));
    assert!(poll_once(failed.as_mut()).is_ready());
    assert_eq!(limiter.in_flight(), 0);
    let metrics = limiter.metrics();
    assert_eq!(
        (
            metrics.success_count,
            metrics.failure_count,
            metrics.ignored_count
        ),
        (1, 1, 1),
        "each call's outcome reaches the limit: {metrics:?}"
    );
}

#[test]
fn a_cancelled_half_open_probe_gives_its_slot_back() {
    let breaker = CircuitBreaker::builder("lease")
        .half_open_max_calls(1)
        .build()
        .unwrap();
    breaker.open_for(Duration::ZERO);
    {
        let mut probe = pin!(breaker.call(std::future::pending::<Result<u32, ()>>));
        assert!(poll_once(probe.as_mut()).is_pending());
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert!(
            breaker.try_acquire().is_err(),
            "the one probe slot is taken"
        );
    }
    let permit = breaker.try_acquire().expect("the probe slot came back");
    permit.success();
}

/// Records, when dropped, how many slots its bulkhead had free at that moment.
struct SlotsWhenDropped {
    bulkhead: Bulkhead,
    seen: Arc<Mutex<Option<u32>>>,
}

impl Drop for SlotsWhenDropped {
    fn drop(&mut self) {
        *self.seen.lock().unwrap() = Some(self.bulkhead.available_slots());
    }
}

/// Through the tower layer, an operation cut off by the stage's call limit is dropped while
/// its slot is still taken: the slot is never free while the work it guarded exists.
#[cfg(feature = "tower")]
#[tokio::test(start_paused = true)]
async fn a_timed_out_layer_call_drops_its_operation_before_freeing_the_slot() {
    use tower::{service_fn, Layer, ServiceExt};

    let bulkhead = Bulkhead::builder("one").max_concurrent(1).build().unwrap();
    let breaker = CircuitBreaker::builder("limited")
        .timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(None));
    let service = {
        let (bulkhead, seen) = (bulkhead.clone(), Arc::clone(&seen));
        service_fn(move |()| {
            let guard = SlotsWhenDropped {
                bulkhead: bulkhead.clone(),
                seen: Arc::clone(&seen),
            };
            async move {
                let _guard = guard;
                std::future::pending::<Result<(), std::io::Error>>().await
            }
        })
    };
    let layered = stage::StageLayer::new((bulkhead.clone(), breaker)).layer(service);

    let result = layered.oneshot(()).await;

    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert_eq!(
        *seen.lock().unwrap(),
        Some(0),
        "the slot was free before the operation was dropped"
    );
    assert_eq!(
        bulkhead.available_slots(),
        1,
        "the slot is given back after the timeout"
    );
}
