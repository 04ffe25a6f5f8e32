//! A counter that threads bump without sharing a cache line: one stripe per thread (threads
//! take stripes in turn), summed when read. A hot path that counts every call with one
//! shared atomic makes every core wait for that line; with stripes, two threads counting
//! the same instance never touch the same line.

use std::cell::Cell;

use crate::sync::atomic::{AtomicU64, Ordering};

/// Stripes per counter: enough for the threads of a small server to count apart, small
/// enough (128 bytes each) that an instance per key stays cheap. One under loom: the stripe
/// a thread counts on never changes what is read, and more would only widen the models.
const STRIPES: usize = if cfg!(loom) { 1 } else { 4 };

/// One cache line (two on CPUs that fetch lines in pairs), so neighbours never share it.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A monotonic count, exact when read (the sum of its stripes), contention-free when added to
/// from different threads.
#[derive(Default)]
pub(crate) struct StripedCounter {
    stripes: [Padded; STRIPES],
}

impl StripedCounter {
    /// Adds one, on this thread's stripe.
    #[inline]
    pub(crate) fn increment(&self) {
        self.stripes[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count: every increment that happened before this read, and perhaps some racing it.
    pub(crate) fn sum(&self) -> u64 {
        self.stripes.iter().fold(0, |sum, stripe| {
            sum.wrapping_add(stripe.0.load(Ordering::Relaxed))
        })
    }

    /// Back to zero (an increment racing the reset may survive it, as with one atomic).
    pub(crate) fn reset(&self) {
        for stripe in &self.stripes {
            stripe.0.store(0, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for StripedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.sum().fmt(f)
    }
}

/// This thread's stripe: threads take stripes round-robin on first use, so two threads
/// always count on different stripes.
#[inline]
fn stripe() -> usize {
    // std's thread-local even under loom: which stripe a thread uses never matters for
    // what a counter reads.
    std::thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|stripe| {
        let mut index = stripe.get();
        if index == usize::MAX {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES;
            stripe.set(index);
        }
        index
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_every_increment_of_every_thread() {
        let counter = Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counter.increment();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.sum(), 60_000);
        counter.reset();
        assert_eq!(counter.sum(), 0);
    }

    #[test]
    fn stripes_do_not_share_a_line() {
        assert!(std::mem::align_of::<Padded>() >= 64);
        assert_eq!(std::mem::size_of::<StripedCounter>(), STRIPES * 128);
    }
}
