//! The count-min sketch: a keyed sliding-window counter in fixed memory, shared by every key.
//!
//! The exact keyed store keeps one state per key, bounded by `max_keys`. The sketch keeps
//! none: `depth` rows of `width` cells, each cell counting (for the current window and the
//! one before) the requests allowed to every key that hashes to it. A key's count is the
//! smallest of its `depth` cells. Other keys only ever *add* to a cell, so the estimate is
//! never below the key's true count: collisions make the limiter stricter, never more
//! lenient. A key may be limited early, never late.
//!
//! How early, the count-min bound says: with `N` requests allowed in a window over all keys,
//! a key's estimate exceeds its true count by more than `e·N / width` with probability at
//! most `e^−depth` (Cormode and Muthukrishnan). With the default 1,024 × 4 cells (64 KiB),
//! that is 0.27 % of the window's traffic, exceeded for at most 1.8 % of keys; a well-behaved
//! key is wrongly limited only if that error reaches its unused budget.
//!
//! Each cell is one `AtomicU64` per window slot (two slots, adjacent, for the current and
//! previous window) holding the window's number (low 32 bits) beside its count, so a cell
//! moves on to a new window and starts again at one in a single compare-exchange, with no
//! reset racing the increments. Counts are read (`depth` × 2 loads), judged by the same
//! arithmetic as the exact sliding-window counter, and only an allowed request increments
//! its `depth` cells: a denial writes nothing. Two requests for one key racing through the
//! same instant may both pass on a count that misses the other's, so under contention a key
//! can exceed its limit by at most one request per thread racing on it. A check allocates
//! nothing, whatever the number of keys.
//!
//! The windows are those of the rate in force: a changed rate starts them afresh. Per-call
//! rates (`check_rate`), whose windows differ, are kept exactly, in a keyed store bounded by
//! `max_keys` created on first use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::sliding_window::{self, SlidingWindow, Window};
use super::store::{Ask, Counters, Store, FOLLOWS_CONFIGURED};
use super::{Decision, SketchSize};
use crate::tally::Tally;
use crate::Rate;

/// A keyed sliding-window counter in `width × depth` cells.
pub(crate) struct Sketch {
    width: u64,
    depth: u32,
    /// Row `r`, column `c`, slot `s` (window parity) at `(r * width + c) * 2 + s`.
    cells: Box<[AtomicU64]>,
    /// The number of the window the last check fell in: the checks of one window find
    /// theirs with a multiplication rather than a 64-bit division.
    last_window: AtomicU64,
    /// Allowed and rate-exceeded checks at the configured rate.
    tally: Tally,
    /// Budgets of per-call rates, kept exactly.
    per_call: OnceLock<Store<SlidingWindow>>,
    max_keys: usize,
}

const COUNT_BITS: u32 = 32;

fn pack(window: u64, count: u32) -> u64 {
    (window << COUNT_BITS) | u64::from(count)
}

/// The count a cell word holds for `window` (0 if it holds another).
fn count_in(word: u64, window: u64) -> u32 {
    if word >> COUNT_BITS == window & 0xFFFF_FFFF {
        word as u32
    } else {
        0
    }
}

/// The word after one more request in `window`: counted on, or started afresh.
fn bump(word: u64, window: u64) -> u64 {
    let window = window & 0xFFFF_FFFF;
    if word >> COUNT_BITS == window {
        pack(window, (word as u32).saturating_add(1))
    } else {
        pack(window, 1)
    }
}

impl Sketch {
    pub(crate) fn new(size: SketchSize, max_keys: usize) -> Self {
        let cells = size.width * size.depth * 2;
        Self {
            width: size.width as u64,
            depth: size.depth as u32,
            cells: (0..cells).map(|_| AtomicU64::new(0)).collect(),
            last_window: AtomicU64::new(0),
            tally: Tally::new(),
            per_call: OnceLock::new(),
            max_keys,
        }
    }

    /// The first cell (slot 0) of `hash` in row `row`: double hashing over the two halves of
    /// one 64-bit hash (Kirsch and Mitzenmacher) keeps the count-min bounds with one hash
    /// per key instead of `depth`.
    #[inline]
    fn cell(&self, hash: u64, row: u32) -> usize {
        let (h1, h2) = (hash as u32, (hash >> 32) as u32 | 1);
        let h = h1.wrapping_add(row.wrapping_mul(h2));
        let column = (u64::from(h) * self.width) >> 32;
        ((u64::from(row) * self.width + column) * 2) as usize
    }

    /// The number of the window of `width` holding `now`, and its start.
    #[inline]
    fn window(&self, now: u64, width: u64) -> (u64, u64) {
        let last = self.last_window.load(Ordering::Relaxed);
        // Whatever width the last check used, its number is taken only if it holds `now`.
        if let Some(start) = last.checked_mul(width) {
            if start <= now && now - start < width {
                return (last, start);
            }
        }
        let window = now / width;
        self.last_window.store(window, Ordering::Relaxed);
        (window, window * width)
    }

    /// The estimated counts of `hash` in the window holding `now` and the one before, and
    /// that window's number.
    #[inline(always)]
    fn estimate(&self, hash: u64, now: u64, rate: &Rate) -> (Window, u64) {
        let (window, start) = self.window(now, rate.window_nanos());
        let previous = window.wrapping_sub(1);
        let (mut current_min, mut previous_min) = (u32::MAX, u32::MAX);
        for row in 0..self.depth {
            let cell = self.cell(hash, row);
            let current = self.cells[cell + (window & 1) as usize].load(Ordering::Relaxed);
            let before = self.cells[cell + (previous & 1) as usize].load(Ordering::Relaxed);
            current_min = current_min.min(count_in(current, window));
            previous_min = previous_min.min(count_in(before, previous));
        }
        (
            Window::from_counts(start, previous_min, current_min),
            window,
        )
    }

    pub(crate) fn check(&self, hash: u64, ask: Ask<'_>) -> Decision {
        if hash & FOLLOWS_CONFIGURED == 0 {
            return self.per_call().check(hash, ask);
        }
        let (mut state, window) = self.estimate(hash, ask.now, ask.rate);
        let decision = sliding_window::decide(&mut state, ask.now, ask.rate);
        if decision.is_allowed() {
            // Every cell is incremented. The conservative update (raising each cell only to
            // the new estimate) is tighter alone, but two threads racing on one key would
            // both raise a cell to the same value and lose a count for good; increments
            // never lose one.
            for row in 0..self.depth {
                let slot = &self.cells[self.cell(hash, row) + (window & 1) as usize];
                let mut word = slot.load(Ordering::Relaxed);
                while let Err(actual) = slot.compare_exchange_weak(
                    word,
                    bump(word, window),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    word = actual;
                }
            }
        }
        if ask.counted {
            self.count(hash, &decision);
        }
        decision
    }

    pub(crate) fn peek(&self, hash: u64, now: u64, rate: &Rate) -> Decision {
        if hash & FOLLOWS_CONFIGURED == 0 {
            return self.per_call().peek(hash, now, rate);
        }
        let (mut state, _) = self.estimate(hash, now, rate);
        sliding_window::decide(&mut state, now, rate)
    }

    pub(crate) fn count(&self, hash: u64, decision: &Decision) {
        if hash & FOLLOWS_CONFIGURED == 0 {
            return self.per_call().count(hash, decision);
        }
        self.tally.count(decision.is_allowed());
    }

    /// States held: the sketch holds none, only the per-call budgets do.
    pub(crate) fn len(&self) -> usize {
        self.per_call.get().map_or(0, Store::len)
    }

    pub(crate) fn counters(&self) -> Counters {
        let mut counters = self.per_call.get().map(Store::counters).unwrap_or_default();
        let (allowed, rate_exceeded) = self.tally.totals();
        counters.allowed += allowed;
        counters.rate_exceeded += rate_exceeded;
        counters
    }

    fn per_call(&self) -> &Store<SlidingWindow> {
        self.per_call.get_or_init(|| Store::new(self.max_keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::state::Core;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_lone_key_is_counted_exactly_as_the_sliding_window_counts_it() {
        let sketch = Sketch::new(SketchSize::default(), 10);
        let rate = Rate::per_second(3);
        let mut exact = SlidingWindow::fresh(0, &rate);
        let key = 0x1234_5678_9ABC_DEF0 | FOLLOWS_CONFIGURED;
        for step in 0..200_u64 {
            let now = step * SECOND / 7;
            for _ in 0..step % 4 {
                assert_eq!(
                    sketch.check(key, Ask::counted_at(now, &rate)),
                    SlidingWindow::check(&mut exact, now, &rate),
                    "step {step}"
                );
            }
        }
    }

    proptest::proptest! {
        /// The window a check falls in is the one holding its instant, whatever the last
        /// check saw: an earlier or later window, another width (a changed rate), an instant
        /// behind the last one.
        #[test]
        fn the_window_is_the_one_holding_now_whatever_came_before(
            checks in proptest::collection::vec(
                (0_u64..u64::MAX, proptest::sample::select(vec![1_u64, 7, SECOND, 3 * SECOND, u64::MAX / 3])),
                1..50,
            ),
            step in 0_u64..4 * SECOND,
        ) {
            let sketch = Sketch::new(SketchSize { width: 1, depth: 1 }, 10);
            for (now, width) in checks {
                // Each instant also checked again a step later, as checks mostly come.
                for now in [now, now.saturating_add(step)] {
                    let window = now / width;
                    proptest::prop_assert_eq!(sketch.window(now, width), (window, window * width));
                }
            }
        }
    }

    #[test]
    fn cells_move_on_to_a_new_window_in_one_word() {
        let word = bump(0, 5);
        assert_eq!(count_in(word, 5), 1);
        assert_eq!(count_in(bump(word, 5), 5), 2);
        assert_eq!(count_in(word, 4), 0);
        assert_eq!(count_in(bump(word, 7), 7), 1);
        assert_eq!(count_in(bump(pack(9, u32::MAX), 9), 9), u32::MAX);
    }

    #[test]
    fn collisions_only_ever_make_it_stricter() {
        // One row of one cell: every key shares it.
        let sketch = Sketch::new(SketchSize { width: 1, depth: 1 }, 10);
        let rate = Rate::per_minute(10);
        for key in 0..6_u64 {
            assert!(sketch
                .check(key | FOLLOWS_CONFIGURED, Ask::counted_at(0, &rate))
                .is_allowed());
        }
        // A new key sees the six allowed to the others as its own.
        let decision = sketch.peek(99 | FOLLOWS_CONFIGURED, 0, &rate);
        assert_eq!(decision.remaining(), 3);
    }
}
