//! AIMD's measurement window, shared by the threads that end calls without taking the
//! algorithm's lock.
//!
//! AIMD learns from nothing but the outcomes of a window of calls, which closes after
//! `measurement_window` counted calls or `measurement_interval` after its first one. So a call
//! that neither opens nor closes a window only adds its outcome to the window's counts: one
//! compare-exchange on one word, no lock, no latency. Opening a window (which records when)
//! and closing it (which moves the limit) take the lock, in the order the word fixes, so the
//! windows are those [`Aimd::update`](super::Aimd) would close given the calls one at a time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::classify::Outcome;

/// Bits of the word: the generation (bumped by every close, so a thread that read `opened`
/// for one window never counts into the next), the calls counted, the failures among them.
const FAILURE: u64 = 1;
const COUNT_SHIFT: u32 = 24;
const COUNT: u64 = 1 << COUNT_SHIFT;
const GENERATION: u64 = 1 << 48;
const FIELD: u64 = COUNT - 1;

/// Windows of more calls than the word's fields hold go through the algorithm's lock.
pub(super) const MAX_SAMPLES: u32 = 1 << COUNT_SHIFT;

fn count_of(word: u64) -> u64 {
    (word >> COUNT_SHIFT) & FIELD
}

fn failures_of(word: u64) -> u64 {
    word & FIELD
}

/// The empty window after `word`'s.
fn next(word: u64) -> u64 {
    (word & !(GENERATION - 1)).wrapping_add(GENERATION)
}

/// What `outcome` adds to the word.
fn addend(outcome: Outcome) -> u64 {
    match outcome {
        Outcome::Success => COUNT,
        Outcome::Failure => COUNT | FAILURE,
        Outcome::Ignored => 0,
    }
}

/// The counts of a closed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Closed {
    pub(super) successes: u32,
    pub(super) failures: u32,
}

#[derive(Debug, Default)]
pub(super) struct SharedWindow {
    word: AtomicU64,
    /// When the window's first call ended, in ticks of the limiter's clock: written under the
    /// lock before the word counts that call, so a thread that sees the count sees it.
    opened: AtomicU64,
    /// Calls per window; 0 while the limiter's algorithm is not one this window serves.
    samples: AtomicU32,
    /// How long a window stays open, in ticks.
    interval: AtomicU64,
}

impl SharedWindow {
    /// Whether calls are counted here (the algorithm is AIMD) rather than sampled.
    #[inline]
    pub(super) fn is_counting(&self) -> bool {
        self.samples.load(Ordering::Relaxed) != 0
    }

    /// Starts over with windows of `samples` calls (0: none counted here) lasting `interval`
    /// ticks. Under the algorithm's lock.
    pub(super) fn reset(&self, samples: u32, interval: u64) {
        self.samples.store(samples, Ordering::Relaxed);
        self.interval.store(interval, Ordering::Relaxed);
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| Some(next(word)));
    }

    /// Adds a call that ended at `now` with `outcome` when that neither opens nor closes the
    /// window (an ignored call: when no window is due). `false` when the lock is needed:
    /// [`add_locked`](Self::add_locked).
    #[inline]
    pub(super) fn try_add(&self, now: u64, outcome: Outcome) -> bool {
        let samples = u64::from(self.samples.load(Ordering::Relaxed));
        let interval = self.interval.load(Ordering::Relaxed);
        let addend = addend(outcome);
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let counted = count_of(word);
            if counted == 0 {
                // Nothing to close; a counted call opens the window.
                return addend == 0;
            }
            if (addend != 0 && counted + 1 >= samples)
                || now.saturating_sub(self.opened.load(Ordering::Acquire)) >= interval
            {
                return false;
            }
            if addend == 0 {
                return true;
            }
            match self.word.compare_exchange_weak(
                word,
                word + addend,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
    }

    /// Under the algorithm's lock: adds a call that ended at `now` with `outcome` (an ignored
    /// one only lets time pass, as a poll does), and closes the window if it is due. Returns
    /// the closed window's counts.
    pub(super) fn add_locked(&self, now: u64, outcome: Outcome) -> Option<Closed> {
        let samples = u64::from(self.samples.load(Ordering::Relaxed));
        let interval = self.interval.load(Ordering::Relaxed);
        let addend = addend(outcome);
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let added = word + addend;
            let counted = count_of(added);
            if counted == 0 {
                return None;
            }
            let opened = if count_of(word) == 0 {
                // Only a locked call opens a window, and threads without the lock leave an
                // empty one alone: nobody else writes the word until it counts this call.
                self.opened.store(now, Ordering::Relaxed);
                now
            } else {
                self.opened.load(Ordering::Relaxed)
            };
            let due = counted >= samples || now.saturating_sub(opened) >= interval;
            let new = if due { next(word) } else { added };
            match self
                .word
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return due.then(|| {
                        let failures = failures_of(added);
                        Closed {
                            successes: u32::try_from(counted - failures).unwrap_or(u32::MAX),
                            failures: u32::try_from(failures).unwrap_or(u32::MAX),
                        }
                    });
                }
                Err(actual) => word = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(samples: u32, interval: u64) -> SharedWindow {
        let window = SharedWindow::default();
        window.reset(samples, interval);
        window
    }

    /// Adds as the limiter does: without the lock when it can.
    fn add(window: &SharedWindow, now: u64, outcome: Outcome) -> Option<Closed> {
        if window.try_add(now, outcome) {
            None
        } else {
            window.add_locked(now, outcome)
        }
    }

    #[test]
    fn a_window_closes_after_its_count_with_its_failures() {
        let window = window(4, 1_000);
        assert_eq!(add(&window, 1, Outcome::Failure), None);
        assert_eq!(add(&window, 2, Outcome::Ignored), None);
        assert_eq!(add(&window, 3, Outcome::Success), None);
        assert_eq!(add(&window, 4, Outcome::Success), None);
        assert_eq!(
            add(&window, 5, Outcome::Failure),
            Some(Closed {
                successes: 2,
                failures: 2
            })
        );
        // The next window starts empty.
        assert_eq!(add(&window, 6, Outcome::Ignored), None);
        assert_eq!(count_of(window.word.load(Ordering::Relaxed)), 0);
    }

    #[test]
    fn a_window_closes_at_its_interval_after_its_first_call_and_never_empty() {
        let window = window(100, 1_000);
        assert_eq!(
            add(&window, 5_000, Outcome::Ignored),
            None,
            "nothing counted"
        );
        assert_eq!(add(&window, 10, Outcome::Success), None);
        assert_eq!(add(&window, 500, Outcome::Failure), None);
        assert_eq!(
            add(&window, 1_009, Outcome::Ignored),
            None,
            "one tick early"
        );
        assert_eq!(
            add(&window, 1_010, Outcome::Ignored),
            Some(Closed {
                successes: 1,
                failures: 1
            }),
            "a poll closes it"
        );
        assert_eq!(add(&window, 2_000, Outcome::Success), None);
        assert_eq!(
            add(&window, 3_000, Outcome::Success),
            Some(Closed {
                successes: 2,
                failures: 0
            }),
            "the call that finds it due is counted in it"
        );
    }

    #[test]
    fn a_window_of_one_closes_on_every_counted_call() {
        let window = window(1, 1_000);
        let closed = |successes, failures| {
            Some(Closed {
                successes,
                failures,
            })
        };
        assert_eq!(add(&window, 1, Outcome::Success), closed(1, 0));
        assert_eq!(add(&window, 2, Outcome::Ignored), None);
        assert_eq!(add(&window, 3, Outcome::Failure), closed(0, 1));
    }

    proptest::proptest! {
        /// Counted here and closed by [`Aimd::close_counted`], the windows move the limit
        /// exactly as [`Aimd::update`] and [`Aimd::poll`] do given the same calls.
        #[test]
        fn the_shared_window_moves_the_limit_as_aimd_does(
            samples in 1u32..8,
            interval in 1u64..50,
            calls in proptest::collection::vec((0u64..20, 0u8..4), 1..200),
        ) {
            use std::time::Duration;
            use tokio::time::Instant;
            use crate::adaptive::{Aimd, AimdConfig, LimitAlgorithm, Sample};

            let config = AimdConfig {
                initial_limit: 50,
                min_limit: 1,
                measurement_window: samples,
                measurement_interval: Duration::from_nanos(interval),
                ..AimdConfig::default()
            };
            let (mut reference, mut counted) = (Aimd::new(config.clone()), Aimd::new(config));
            let window = window(samples, interval);
            let epoch = Instant::now();
            let mut now = 0;
            for (elapsed, kind) in calls {
                now += elapsed;
                let at = epoch + Duration::from_nanos(now);
                let expected = match kind {
                    // A poll: time passes with no call.
                    3 => reference.poll(at),
                    _ => {
                        let outcome = [Outcome::Success, Outcome::Failure, Outcome::Ignored][usize::from(kind)];
                        reference.update(&Sample::new(at, Duration::ZERO, 1, outcome))
                    }
                };
                let outcome = [Outcome::Success, Outcome::Failure, Outcome::Ignored, Outcome::Ignored][usize::from(kind)];
                let limit = match add(&window, now, outcome) {
                    Some(closed) => counted.close_counted(closed.successes, closed.failures),
                    None => counted.limit(),
                };
                proptest::prop_assert_eq!(limit, expected);
            }
        }
    }

    #[test]
    fn threads_counting_at_once_lose_no_call_and_close_every_window_once() {
        use std::sync::{Arc, Mutex};
        let window = Arc::new(window(10, u64::MAX));
        let lock = Arc::new(Mutex::new((0u32, 0u32, 0u32)));
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let (window, lock) = (Arc::clone(&window), Arc::clone(&lock));
                std::thread::spawn(move || {
                    for i in 0..2_500 {
                        let outcome = if (i + thread) % 5 == 0 {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        };
                        if !window.try_add(1, outcome) {
                            let mut closes = lock.lock().unwrap();
                            if let Some(closed) = window.add_locked(1, outcome) {
                                assert_eq!(closed.successes + closed.failures, 10);
                                closes.0 += 1;
                                closes.1 += closed.successes;
                                closes.2 += closed.failures;
                            }
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(*lock.lock().unwrap(), (1_000, 8_000, 2_000));
    }
}
