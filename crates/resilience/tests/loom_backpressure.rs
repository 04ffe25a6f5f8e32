//! loom models of the backpressure controller's word: admissions and releases that skip the
//! lock while backpressure is off, racing the ones that take it (switching on and off,
//! reconfiguration), run through the real handle (its word and its lock come from loom under
//! `--cfg loom`, see `src/sync.rs`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p resilience --release --test loom_backpressure
//! ```
//!
//! Every admission here is `try_acquire_owned`, which never waits, or the stream adapter's,
//! which waits without a timer, so no runtime or timer is involved.
#![cfg(loom)]

use std::task::{Context, Poll, Waker};

use futures_util::Stream;
use loom::thread;
use resilience::backpressure::{Backpressure, BackpressureConfig, OwnedPermit};

fn controller(max_pending: u32, high: u32, low: u32) -> Backpressure {
    Backpressure::builder("loom")
        .max_pending(max_pending)
        .water_marks(high, low)
        .build()
        .unwrap()
}

/// Nothing pending, nothing waiting, backpressure off, in the word and in the core alike.
fn assert_idle(controller: &Backpressure) {
    assert_eq!(controller.pending(), 0, "the word's pending count");
    assert!(!controller.should_apply_backpressure(), "the word's switch");
    let metrics = controller.metrics();
    assert_eq!(
        (
            metrics.pending_count,
            metrics.waiting_count,
            metrics.backpressure_active
        ),
        (0, 0, false),
        "the core"
    );
}

/// Two producers cross the high mark from one pending item and let go: one of them switches
/// backpressure on under the lock while the other may admit or release without it. However
/// they interleave, every decision is counted once and the controller ends idle, with its
/// marks still working.
#[test]
fn crossing_the_high_mark_from_both_sides() {
    loom::model(|| {
        let controller = controller(4, 2, 1);
        let first = controller.try_acquire_owned().unwrap();
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let controller = controller.clone();
                thread::spawn(move || drop(controller.try_acquire_owned()))
            })
            .collect();
        for producer in producers {
            producer.join().unwrap();
        }
        drop(first);

        assert_idle(&controller);
        let metrics = controller.metrics();
        assert_eq!(metrics.total_accepted + metrics.total_rejected, 3);
        assert!(metrics.total_accepted >= 2, "{metrics:?}");
        // The switch still follows the marks: on at two pending, off again at none.
        let held: Vec<OwnedPermit> = (0..2)
            .map(|_| controller.try_acquire_owned().unwrap())
            .collect();
        assert!(controller.should_apply_backpressure());
        drop(held);
        assert_idle(&controller);
    });
}

/// A lock-free admission prepared against the old high mark must not land after a
/// reconfiguration lowered it: with two items pending at a high mark of two, backpressure is
/// on whichever came first. (Without the word's generation, the admission's compare-exchange
/// succeeds on a stale mark and leaves two pending with backpressure off.)
#[test]
fn an_admission_racing_a_lower_high_mark_switches_on() {
    loom::model(|| {
        let controller = controller(4, 3, 1);
        let first = controller.try_acquire_owned().unwrap();
        let producer = {
            let controller = controller.clone();
            thread::spawn(move || controller.try_acquire_owned().unwrap())
        };
        let lowered = BackpressureConfig {
            high_water_mark: 2,
            ..controller.config()
        };
        controller.set_config(lowered).unwrap();
        let second = producer.join().unwrap();

        assert_eq!(controller.pending(), 2);
        assert!(controller.should_apply_backpressure());
        assert!(controller.metrics().backpressure_active);
        drop((first, second));
        assert_idle(&controller);
    });
}

/// Releases race each other across the low mark: the one that finds backpressure on takes
/// the lock and switches it off, the others may skip the lock only once it is off. No
/// release is lost, so the controller ends idle.
#[test]
fn releases_across_the_low_mark() {
    loom::model(|| {
        let controller = controller(4, 3, 1);
        let permits: Vec<OwnedPermit> = (0..3)
            .map(|_| controller.try_acquire_owned().unwrap())
            .collect();
        assert!(controller.should_apply_backpressure());
        let releases: Vec<_> = permits
            .into_iter()
            .map(|permit| thread::spawn(move || drop(permit)))
            .collect();
        for release in releases {
            release.join().unwrap();
        }
        assert_idle(&controller);
    });
}

/// A release that skips the lock (backpressure off) racing an arrival that takes it (the
/// arrival reaches the high mark): the locked section writes the word back when it ends, and
/// must not write over the release. (Were the release's compare-exchange allowed while the
/// word is locked, one item would stay pending for ever.)
#[test]
fn a_release_during_a_locked_arrival_is_not_lost() {
    loom::model(|| {
        let controller = controller(4, 3, 1);
        let first = controller.try_acquire_owned().unwrap();
        let second = controller.try_acquire_owned().unwrap();
        assert!(!controller.should_apply_backpressure());
        let release = thread::spawn(move || drop(second));
        let arrival = {
            let controller = controller.clone();
            thread::spawn(move || drop(controller.try_acquire_owned()))
        };
        release.join().unwrap();
        arrival.join().unwrap();
        drop(first);
        assert_idle(&controller);
    });
}

/// A waiter granted under the lock may run and finish before the section that granted it
/// ends: its release subtracts from the word while the word is locked, and then takes the
/// lock to let the core look at the count. Neither the grant nor the release is lost, and
/// the controller ends idle. The waiter is a stream adapter, which waits without a timer.
///
/// That the grant is counted in the word before the waiter is woken is not asserted here:
/// the waiter learns of its grant through tokio's channel, which loom does not see, so loom
/// would let the waiter read the word as it was before the grant. `tests/backpressure.rs`
/// asserts it on real threads (`waiters_granted_in_one_section_are_counted_before_they_run`).
#[test]
fn a_waiter_released_before_its_grant_is_over_is_counted() {
    loom::model(|| {
        let controller = controller(4, 1, 0);
        let held = controller.try_acquire_owned().unwrap();
        assert!(controller.should_apply_backpressure());
        let mut stream = Box::pin(controller.stream(futures_util::stream::iter([1])));
        let polled = stream
            .as_mut()
            .poll_next(&mut Context::from_waker(Waker::noop()));
        assert!(
            polled.is_pending(),
            "backpressure is on: the adapter queues"
        );
        assert_eq!(controller.waiting(), 1);

        let release = thread::spawn(move || drop(held));
        let consumer = thread::spawn(move || loop {
            match stream
                .as_mut()
                .poll_next(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(Some((_, permit))) => break drop(permit),
                Poll::Ready(None) => panic!("the item was lost"),
                Poll::Pending => thread::yield_now(),
            }
        });
        release.join().unwrap();
        consumer.join().unwrap();
        assert_idle(&controller);
    });
}
