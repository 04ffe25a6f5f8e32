//! loom models of the bulkhead's slots: taking and giving back slots, the hand-off to a
//! queued call, the queue's place count and the debt of a live shrink, run through the real
//! handle (its counters and its config lock come from loom under `--cfg loom`, see
//! `src/sync.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p resilience --release --test loom_bulkhead
//! ```
//!
//! The slot word, the queue's lock and the debt are loom's here; only the one-shot channel
//! that hands a slot to a queued call is tokio's, which loom does not instrument: each of its
//! operations is one step, and whether a call was served is decided under the queue's lock,
//! which loom sees. No wait timeout is configured, so no timer or runtime is needed.
#![cfg(loom)]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use resilience::bulkhead::{Bulkhead, BulkheadConfig, Permit};
use resilience::{Rejection, RejectionReason};

fn bulkhead(max_concurrent: u32, max_waiting: u32) -> Bulkhead {
    Bulkhead::from_config(
        "loom",
        BulkheadConfig {
            max_concurrent,
            max_waiting,
            wait_timeout: None,
        },
    )
    .unwrap()
}

/// Drives `future` on a loom thread by polling it and yielding in between.
///
/// Not `loom::future::block_on`: its waker is a loom object, and tokio's channel clones the
/// waker inside its own (uninstrumented) state changes, where loom must not switch threads.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::yield_now();
    }
}

/// Counts the slots in use as the callers see them, asserting the limit on every entry.
struct InUse {
    now: AtomicUsize,
    limit: usize,
}

impl InUse {
    fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            now: AtomicUsize::new(0),
            limit,
        })
    }

    fn enter(&self) {
        let before = self.now.fetch_add(1, SeqCst);
        assert!(before < self.limit, "more than {} slots in use", self.limit);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

/// A call queued for the one slot, which `held` keeps: its wait, polled once.
fn queued(bulkhead: &Bulkhead) -> Pin<Box<impl Future<Output = Result<Permit<'_>, Rejection>>>> {
    let mut wait = Box::pin(bulkhead.acquire());
    let polled = wait.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(polled.is_pending(), "the slot is held: the call queues");
    assert_eq!(bulkhead.waiting(), 1);
    wait
}

/// Every slot back where it belongs: none held, none owed, nobody counted as waiting.
fn assert_settled(bulkhead: &Bulkhead, max_concurrent: u32) {
    assert_eq!(bulkhead.active(), 0, "a slot is still counted as held");
    assert_eq!(bulkhead.waiting(), 0, "a place in the queue leaked");
    assert_eq!(
        bulkhead.available_slots(),
        max_concurrent,
        "a slot was lost or given back twice"
    );
}

/// One slot, one queued caller, one caller that never queues: the holder's release hands the
/// slot to the queued caller or frees it for the other. Never two in the slot, and at the end
/// the slot is free exactly once.
#[test]
fn release_hands_the_slot_over_exactly_once() {
    loom::model(|| {
        let bulkhead = bulkhead(1, 1);
        let in_use = InUse::new(1);
        let held = bulkhead.try_acquire().unwrap();
        in_use.enter();

        let queued = {
            let (bulkhead, in_use) = (bulkhead.clone(), Arc::clone(&in_use));
            thread::spawn(move || {
                let permit = block_on(bulkhead.acquire()).expect("the queue has room");
                in_use.enter();
                in_use.leave();
                permit.success();
            })
        };
        let eager = {
            let (bulkhead, in_use) = (bulkhead.clone(), Arc::clone(&in_use));
            thread::spawn(move || match bulkhead.try_acquire() {
                Ok(permit) => {
                    in_use.enter();
                    in_use.leave();
                    drop(permit);
                }
                Err(rejection) => assert_eq!(rejection.reason(), RejectionReason::CapacityFull),
            })
        };
        in_use.leave();
        drop(held);
        queued.join().unwrap();
        eager.join().unwrap();

        assert_settled(&bulkhead, 1);
        let metrics = bulkhead.metrics();
        assert_eq!(metrics.successful_requests, 1);
        // The holder, the queued caller and maybe the eager one: each counted once.
        assert_eq!(
            metrics.accepted_requests,
            metrics.successful_requests + metrics.ignored_requests
        );
        assert_eq!(
            metrics.accepted_requests + metrics.rejected_requests,
            3,
            "{metrics:?}"
        );
    });
}

/// Two callers race for the one place in the queue while the slot is held: the place count
/// never passes `max_waiting`, the loser is refused as "queue full" (or finds the slot free),
/// and every place is given back.
#[test]
fn the_queue_never_holds_more_than_max_waiting() {
    loom::model(|| {
        let bulkhead = bulkhead(1, 1);
        let held = bulkhead.try_acquire().unwrap();
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let bulkhead = bulkhead.clone();
                thread::spawn(move || match block_on(bulkhead.acquire()) {
                    Ok(permit) => drop(permit),
                    Err(rejection) => assert_eq!(rejection.reason(), RejectionReason::QueueFull),
                })
            })
            .collect();
        assert!(bulkhead.waiting() <= 1, "two places in a queue of one");
        drop(held);
        for caller in callers {
            caller.join().unwrap();
        }
        assert_settled(&bulkhead, 1);
    });
}

/// Releases race a live shrink from two slots to one: each returning slot either goes back or
/// pays the debt, never both and never neither, so exactly one slot is free at the end.
#[test]
fn releases_racing_a_shrink_pay_the_debt_exactly() {
    loom::model(|| {
        let bulkhead = bulkhead(2, 0);
        let permits = [
            bulkhead.try_acquire_owned().unwrap(),
            bulkhead.try_acquire_owned().unwrap(),
        ];
        let releases: Vec<_> = permits
            .into_iter()
            .map(|permit| thread::spawn(move || drop(permit)))
            .collect();
        bulkhead.set_max_concurrent(1).unwrap();
        for release in releases {
            release.join().unwrap();
        }
        assert_settled(&bulkhead, 1);
        let only = bulkhead.try_acquire().expect("one slot is left");
        assert!(bulkhead.try_acquire().is_err(), "the shrink was lost");
        drop(only);
    });
}

/// A grow and a release race a shrink's debt: growing pays the debt first, a release pays
/// what is left, and the slots end exactly at the new limit.
#[test]
fn grow_and_release_racing_a_debt_end_at_the_limit() {
    loom::model(|| {
        let bulkhead = bulkhead(2, 0);
        let first = bulkhead.try_acquire_owned().unwrap();
        let second = bulkhead.try_acquire().unwrap();
        // Both slots are held, so the shrink is owed in full.
        bulkhead.set_max_concurrent(1).unwrap();
        let release = thread::spawn(move || drop(first));
        let grow = {
            let bulkhead = bulkhead.clone();
            thread::spawn(move || bulkhead.set_max_concurrent(3).unwrap())
        };
        release.join().unwrap();
        grow.join().unwrap();
        drop(second);
        assert_settled(&bulkhead, 3);
    });
}

/// A release races a queued call that gives up its place and a newcomer that waits. The
/// release frees the slot before it looks at the queue, so the slot is free for a moment
/// while a call waits: the newcomer queues behind it rather than taking the slot, and
/// whichever of them is still waiting when the release hands over is served. Nobody is
/// left waiting for a slot that is free.
#[test]
fn a_release_racing_a_leaving_waiter_reaches_the_next_caller() {
    loom::model(|| {
        let bulkhead = bulkhead(1, 2);
        let held = bulkhead.try_acquire_owned().unwrap();
        // Queued before the release starts, given up while it runs.
        let leaving = queued(&bulkhead);

        let release = thread::spawn(move || drop(held));
        let newcomer = {
            let bulkhead = bulkhead.clone();
            thread::spawn(move || {
                block_on(bulkhead.acquire())
                    .expect("the slot comes back to it")
                    .success();
            })
        };
        drop(leaving);
        release.join().unwrap();
        newcomer.join().unwrap();

        assert_settled(&bulkhead, 1);
        assert_eq!(bulkhead.metrics().successful_requests, 1);
    });
}

/// A release races a newcomer while a call waits: the slot is free for a moment before the
/// release hands it over, and the newcomer must not take it. The waiting call is served.
#[test]
fn a_newcomer_never_takes_a_slot_on_its_way_to_the_queue() {
    loom::model(|| {
        let bulkhead = bulkhead(1, 1);
        let held = bulkhead.try_acquire_owned().unwrap();
        let mut waiting = queued(&bulkhead);

        let release = thread::spawn(move || drop(held));
        let newcomer = {
            let bulkhead = bulkhead.clone();
            thread::spawn(move || match bulkhead.try_acquire() {
                Ok(_) => panic!("a newcomer took the slot of a waiting call"),
                Err(rejection) => assert_eq!(rejection.reason(), RejectionReason::CapacityFull),
            })
        };
        release.join().unwrap();
        newcomer.join().unwrap();

        match waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(permit) => permit.expect("served").success(),
            Poll::Pending => panic!("the released slot did not reach the waiting call"),
        }
        drop(waiting);
        assert_settled(&bulkhead, 1);
    });
}
