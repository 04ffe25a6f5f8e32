//! AIMD's measurement window, shared by the threads that end calls without taking the
//! algorithm's lock.
//!
//! AIMD learns from nothing but the outcomes of a window of calls, which closes after
//! `measurement_window` counted calls or `measurement_interval` after its first one. So a call
//! adds its outcome to the window's counts with one atomic addition, whatever the window's
//! state, and takes the lock only when that addition opened the window (to record when),
//! made it full, or found its interval passed: then the window closes, under the lock, with
//! every call counted in it by then. Each call is counted in exactly one window and each
//! window closes once; calls that end while a window is being closed join it, so under
//! contention a window may hold a few calls more than `measurement_window`. One thread
//! sees the windows [`Aimd::update`](super::Aimd) would close given the same calls.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::classify::Outcome;

/// Bits of the word: the generation (bumped by every close, so that a call knows, under the
/// lock, whether the window it was counted in has closed since), the calls counted, the
/// failures among them.
const FAILURE: u64 = 1;
const COUNT_SHIFT: u32 = 24;
const COUNT: u64 = 1 << COUNT_SHIFT;
const GENERATION: u64 = 1 << 48;
const FIELD: u64 = COUNT - 1;

/// Windows of more calls than this go through the algorithm's lock: half of what the count
/// holds, so that calls joining a window while it closes never overflow it.
pub(super) const MAX_SAMPLES: u32 = 1 << (COUNT_SHIFT - 1);

/// `opened` before the window's first call has recorded when it ended.
const UNOPENED: u64 = u64::MAX;

fn count_of(word: u64) -> u64 {
    (word >> COUNT_SHIFT) & FIELD
}

fn failures_of(word: u64) -> u64 {
    word & FIELD
}

fn generation_of(word: u64) -> u64 {
    word / GENERATION
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

/// What a call that needs the lock tells [`SharedWindow::settle_locked`]: the window it was
/// counted in (or, for an ignored call, the one it found due) and whether it opened it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    generation: u64,
    opened: bool,
}

#[derive(Debug)]
pub(super) struct SharedWindow {
    /// The current window's generation and counts: every counted call adds to it.
    word: AtomicU64,
    /// When the current window's first call ended, in ticks of the limiter's clock
    /// ([`UNOPENED`] until that call has recorded it under the lock).
    opened: AtomicU64,
    /// Calls per window; 0 while the limiter's algorithm is not one this window serves.
    samples: AtomicU32,
    /// How long a window stays open, in ticks.
    interval: AtomicU64,
}

impl Default for SharedWindow {
    fn default() -> Self {
        Self {
            word: AtomicU64::new(0),
            opened: AtomicU64::new(UNOPENED),
            samples: AtomicU32::new(0),
            interval: AtomicU64::new(0),
        }
    }
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
        self.opened.store(UNOPENED, Ordering::Relaxed);
        // Calls counted before the reset are dropped with the old algorithm.
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| Some(next(word)));
    }

    /// Counts a call that ended at `now` with `outcome`. `None` when that is all; otherwise
    /// the caller takes the lock and hands the ticket to
    /// [`settle_locked`](Self::settle_locked): the call opened the window, filled it, or
    /// found its interval passed (an ignored call is not counted, but may find a window due,
    /// as a poll does).
    #[inline]
    pub(super) fn add(&self, now: u64, outcome: Outcome) -> Option<Ticket> {
        let addend = addend(outcome);
        let word = if addend == 0 {
            let word = self.word.load(Ordering::Acquire);
            if count_of(word) == 0 {
                // Nothing to close.
                return None;
            }
            word
        } else {
            let before = self.word.fetch_add(addend, Ordering::AcqRel);
            let counted = count_of(before);
            if counted == 0 {
                return Some(Ticket {
                    generation: generation_of(before),
                    opened: true,
                });
            }
            if counted + 1 == u64::from(self.samples.load(Ordering::Relaxed)) {
                return Some(Ticket {
                    generation: generation_of(before),
                    opened: false,
                });
            }
            before
        };
        let opened = self.opened.load(Ordering::Acquire);
        let interval = self.interval.load(Ordering::Relaxed);
        (opened != UNOPENED && now.saturating_sub(opened) >= interval).then_some(Ticket {
            generation: generation_of(word),
            opened: false,
        })
    }

    /// A poll's ticket: the current window, to close if its interval has passed.
    pub(super) fn poll_ticket(&self) -> Ticket {
        Ticket {
            generation: generation_of(self.word.load(Ordering::Acquire)),
            opened: false,
        }
    }

    /// Under the algorithm's lock: records when the window of `ticket` opened if its call
    /// opened it, and closes that window if it is still open and due at `now` (full, or its
    /// interval passed). Returns the closed window's counts.
    pub(super) fn settle_locked(&self, now: u64, ticket: Ticket) -> Option<Closed> {
        let mut word = self.word.load(Ordering::Acquire);
        if generation_of(word) != ticket.generation {
            // Closed since the call was counted in it, the call among its counts.
            return None;
        }
        let opened = if ticket.opened {
            self.opened.store(now, Ordering::Release);
            now
        } else {
            self.opened.load(Ordering::Relaxed)
        };
        let samples = u64::from(self.samples.load(Ordering::Relaxed));
        let interval = self.interval.load(Ordering::Relaxed);
        let counted = count_of(word);
        let due = counted >= samples
            || (opened != UNOPENED && counted > 0 && now.saturating_sub(opened) >= interval);
        if !due {
            return None;
        }
        // Before the generation moves on: a call counted in the next window never finds this
        // one's opening.
        self.opened.store(UNOPENED, Ordering::Relaxed);
        // Only calls add to the word meanwhile, and each joins the window being closed.
        loop {
            match self.word.compare_exchange_weak(
                word,
                next(word),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => word = actual,
            }
        }
        let (counted, failures) = (count_of(word), failures_of(word));
        Some(Closed {
            successes: u32::try_from(counted - failures).unwrap_or(u32::MAX),
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
        })
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

    /// Adds as the limiter does: settling under the lock when the addition asks for it.
    fn add(window: &SharedWindow, now: u64, outcome: Outcome) -> Option<Closed> {
        let ticket = window.add(now, outcome)?;
        window.settle_locked(now, ticket)
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

    /// One step of [`racing_calls_are_each_counted_once_and_windows_close_only_when_due`].
    #[derive(Debug, Clone)]
    enum Step {
        /// A thread's next call adds its outcome (its clock read `elapsed` after the last).
        Add { failed: bool, elapsed: u64 },
        /// The lock is taken for the oldest ticket still waiting, if any.
        Settle,
        /// The lock is taken for the newest ticket still waiting, if any.
        SettleNewest,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (any::<bool>(), 0u64..30).prop_map(|(failed, elapsed)| Step::Add { failed, elapsed }),
            1 => Just(Step::Settle),
            1 => Just(Step::SettleNewest),
        ]
    }

    proptest::proptest! {
        /// Calls racing each other: their additions and the locked sections their tickets
        /// ask for interleave in any order (an addition is one atomic operation, a section
        /// runs alone). Every call is counted in exactly one window; a window closes only
        /// once full or once its interval has passed since its first call; once every ticket
        /// has been settled, no full window is left open.
        #[test]
        fn racing_calls_are_each_counted_once_and_windows_close_only_when_due(
            samples in 1u32..6,
            interval in 1u64..60,
            steps in proptest::collection::vec(step(), 1..120),
        ) {
            let window = window(samples, interval);
            let mut waiting: std::collections::VecDeque<(u64, Ticket)> = Default::default();
            let (mut now, mut calls, mut failures) = (0u64, 0u64, 0u64);
            let (mut closed_calls, mut closed_failures) = (0u64, 0u64);
            // When the open window's first call ended, as the calls were added.
            let mut first: Option<u64> = None;
            let mut settle = |window: &SharedWindow, (at, ticket): (u64, Ticket), first: &mut Option<u64>| {
                let before = window.word.load(Ordering::Relaxed);
                if let Some(closed) = window.settle_locked(at, ticket) {
                    let counted = u64::from(closed.successes + closed.failures);
                    let full = counted >= u64::from(samples);
                    let passed = first.is_some_and(|first| at.saturating_sub(first) >= interval);
                    assert!(full || passed, "closed early: {closed:?} at {at}, first call at {first:?}");
                    assert_eq!(counted, count_of(before), "closed with every call counted in it");
                    closed_calls += counted;
                    closed_failures += u64::from(closed.failures);
                    *first = None;
                }
            };
            for step in steps {
                match step {
                    Step::Add { failed, elapsed } => {
                        now += elapsed;
                        let outcome = if failed { Outcome::Failure } else { Outcome::Success };
                        calls += 1;
                        failures += u64::from(failed);
                        if first.is_none() {
                            first = Some(now);
                        }
                        if let Some(ticket) = window.add(now, outcome) {
                            waiting.push_back((now, ticket));
                        }
                    }
                    Step::Settle => {
                        if let Some(waiting) = waiting.pop_front() {
                            settle(&window, waiting, &mut first);
                        }
                    }
                    Step::SettleNewest => {
                        if let Some(waiting) = waiting.pop_back() {
                            settle(&window, waiting, &mut first);
                        }
                    }
                }
            }
            while let Some(waiting) = waiting.pop_front() {
                settle(&window, waiting, &mut first);
            }
            let word = window.word.load(Ordering::Relaxed);
            proptest::prop_assert!(count_of(word) < u64::from(samples), "a full window left open");
            proptest::prop_assert_eq!(closed_calls + count_of(word), calls);
            proptest::prop_assert_eq!(closed_failures + failures_of(word), failures);
        }
    }

    #[test]
    fn threads_counting_at_once_lose_no_call_and_close_every_window_once() {
        use std::sync::{Arc, Mutex};
        const THREADS: u32 = 4;
        const CALLS: u32 = 2_500;
        let window = Arc::new(window(10, u64::MAX));
        // Windows closed, and the successes and failures counted in them.
        let lock = Arc::new(Mutex::new((0u32, 0u32, 0u32)));
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (window, lock) = (Arc::clone(&window), Arc::clone(&lock));
                std::thread::spawn(move || {
                    for i in 0..CALLS {
                        let outcome = if (i + thread) % 5 == 0 {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        };
                        if let Some(ticket) = window.add(1, outcome) {
                            let mut closes = lock.lock().unwrap();
                            if let Some(closed) = window.settle_locked(1, ticket) {
                                assert!(
                                    closed.successes + closed.failures >= 10,
                                    "a window closed before it was full: {closed:?}"
                                );
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
        let (windows, successes, failures) = *lock.lock().unwrap();
        // What the last window holds, still open.
        let word = window.word.load(Ordering::Relaxed);
        let (open, open_failures) = (count_of(word), failures_of(word));
        assert!(open < 10, "a full window was never closed: {open} calls");
        let open_failures = u32::try_from(open_failures).unwrap();
        let open_successes = u32::try_from(open).unwrap() - open_failures;
        assert_eq!(
            successes + open_successes,
            8_000,
            "every success counted once"
        );
        assert_eq!(
            failures + open_failures,
            2_000,
            "every failure counted once"
        );
        assert!((1..=1_000).contains(&windows), "{windows} windows");
    }
}
