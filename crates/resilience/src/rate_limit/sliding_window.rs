//! Sliding-window counter: two counters per key, the previous window weighted by overlap.
//!
//! Time is cut into fixed windows of `W` (the rate's period when its burst equals its count;
//! `period * burst / count` otherwise, so the sustained rate is kept). A key counts the
//! requests allowed in the current window and in the one before. A request at offset `e`
//! into the current window sees an estimate of the last `W`:
//!
//! ```text
//! previous * (W - e) / W + current
//! ```
//!
//! which assumes the previous window's requests were spread evenly. The request is allowed
//! only if the estimate *including it* stays within the limit, so the estimate never exceeds
//! the limit (Cloudflare's variant allows while the estimate is below the limit, which can
//! overshoot by one). Integer arithmetic on `u128`, scaled by `W`, keeps every boundary and
//! every `retry_after` exact. Two counters per key, whatever the limit: the cheap alternative
//! to the exact sliding log, at the cost of being approximate (and slightly conservative for
//! a steady stream). A key with nothing counted in either window is idle.

use super::state::Core;
use super::{Decision, Denial};
use crate::Rate;

/// The sliding-window-counter core.
#[derive(Debug)]
pub(crate) struct SlidingWindow;

/// One key's two counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    /// Start of the current window: a multiple of the window length since the epoch.
    start: u64,
    previous: u32,
    current: u32,
    idle_at: u64,
}

impl Window {
    /// The window starting at `start` with these counts, as the count-min sketch estimates
    /// them for a key (`check` works out `idle_at` before it uses it).
    pub(crate) fn from_counts(start: u64, previous: u32, current: u32) -> Self {
        Self {
            start,
            previous,
            current,
            idle_at: start,
        }
    }

    /// Moves the window forward to the one holding `now`.
    fn roll(&mut self, now: u64, width: u64) {
        let start = now - now % width;
        if start > self.start {
            self.previous = if start - self.start == width {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.start = start;
        }
    }

    /// When the counters stop mattering: both windows in the past.
    fn settle(&mut self, width: u64) {
        self.idle_at = if self.current > 0 {
            self.start.saturating_add(width.saturating_mul(2))
        } else if self.previous > 0 {
            self.start.saturating_add(width)
        } else {
            self.start
        };
    }
}

/// Decides one request at `now` on counts whose current window is the one holding `now`
/// (rolled to it, or estimated for it by the count-min sketch), counting it if allowed.
#[inline]
pub(crate) fn decide(window: &mut Window, now: u64, rate: &Rate) -> Decision {
    let width = rate.window_nanos();
    let limit = rate.burst();
    let (w, elapsed) = (u128::from(width), u128::from(now - window.start));
    let budget = u128::from(limit) * w;
    let (previous, current) = (u128::from(window.previous), u128::from(window.current));
    let weighted = previous * (w - elapsed);
    if weighted + (current + 1) * w <= budget {
        window.current += 1;
        window.settle(width);
        // Whole requests still fitting besides this one, ⌊spare / W⌋: the time to spare,
        // scaled by W, divided out only if someone asks (in 64 bits whenever it fits them,
        // which it does unless limit · W passes 2^64: this path is the hot one).
        let spare = budget - weighted - (current + 1) * w;
        let reset_after = window.idle_at - now;
        match u64::try_from(spare) {
            Ok(spare) => Decision::allow_spare(limit, spare, width, reset_after),
            Err(_) => Decision::allow(
                limit,
                u32::try_from(spare / w).unwrap_or(u32::MAX),
                reset_after,
            ),
        }
    } else {
        window.settle(width);
        let retry_at = if current < u128::from(limit) {
            // This window still has room once enough of the previous one has slid out:
            // the smallest offset `e` with `previous * (W - e) <= (limit - current - 1) * W`.
            let slack = (u128::from(limit) - current - 1) * w / previous;
            window.start + (w - slack.min(w)) as u64
        } else {
            // Only in the next window, as `current` becomes the weighted one.
            let slack = (u128::from(limit) - 1) * w / current;
            window
                .start
                .saturating_add(width)
                .saturating_add((w - slack.min(w)) as u64)
        };
        Decision::deny(
            Denial::RateExceeded,
            limit,
            window.idle_at.saturating_sub(now),
            retry_at - now,
        )
    }
}

impl Core for SlidingWindow {
    type State = Window;

    fn fresh(now: u64, rate: &Rate) -> Window {
        let width = rate.window_nanos();
        let start = now - now % width;
        Window {
            start,
            previous: 0,
            current: 0,
            idle_at: start,
        }
    }

    fn check(window: &mut Window, now: u64, rate: &Rate) -> Decision {
        let now = now.max(window.start);
        window.roll(now, rate.window_nanos());
        decide(window, now, rate)
    }

    /// The counters stop mattering once both windows are past, counted in `rate`'s window
    /// too (a longer window keeps them). With a changed window `start` is no longer aligned
    /// to it; `start + 2 * width` still ensures the next check rolls both counters out.
    fn idle_at(window: &Window, rate: Option<&Rate>) -> u64 {
        let at_rate = rate.map_or(0, |rate| {
            let mut at_rate = window.clone();
            at_rate.settle(rate.window_nanos());
            at_rate.idle_at
        });
        window.idle_at.max(at_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECOND: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn allowed(window: &mut Window, now: u64, rate: &Rate) -> bool {
        SlidingWindow::check(window, now, rate).is_allowed()
    }

    #[test]
    fn a_burst_of_three_at_three_per_second() {
        let rate = Rate::per_second(3);
        let mut window = SlidingWindow::fresh(0, &rate);
        let remaining: Vec<_> = (0..3)
            .map(|_| SlidingWindow::check(&mut window, 0, &rate).remaining())
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        // All three are in the current window: the next fits only in the next one, once a
        // third of the previous has slid out: at 1 s + 1/3 s, rounded up to the nanosecond.
        let denied = SlidingWindow::check(&mut window, 0, &rate);
        assert_eq!(
            denied,
            Decision::denied(
                Denial::RateExceeded,
                3,
                Duration::from_secs(2),
                Some(Duration::from_nanos(1_333_333_334)),
            )
        );
        assert!(!allowed(&mut window, 1_333_333_333, &rate));
        assert!(allowed(&mut window, 1_333_333_334, &rate));
        assert!(!allowed(&mut window, 1_333_333_334, &rate));
    }

    #[test]
    fn six_in_one_instant_allow_exactly_three() {
        let rate = Rate::per_second(3);
        let mut window = SlidingWindow::fresh(0, &rate);
        let count = (0..6)
            .filter(|_| allowed(&mut window, 250 * MS, &rate))
            .count();
        assert_eq!(count, 3);
    }

    #[test]
    fn the_previous_window_fades_out_exactly() {
        let rate = Rate::per_second(10);
        let mut window = SlidingWindow::fresh(0, &rate);
        for _ in 0..10 {
            assert!(allowed(&mut window, 900 * MS, &rate));
        }
        // 1.5 s: previous 10 weighted by half = 5, so 5 more fit, the 6th waits until the
        // weight drops to 4: at 1.6 s.
        for _ in 0..5 {
            assert!(allowed(&mut window, 1_500 * MS, &rate));
        }
        let denied = SlidingWindow::check(&mut window, 1_500 * MS, &rate);
        assert_eq!(denied.retry_after(), Some(Duration::from_millis(100)));
        assert_eq!(denied.reset_after(), Duration::from_millis(1_500));
        let next = SlidingWindow::check(&mut window, 1_600 * MS, &rate);
        assert!(next.is_allowed());
        assert_eq!(next.remaining(), 0);
    }

    #[test]
    fn a_steady_stream_gets_four_to_five_per_second_at_five_per_second() {
        let rate = Rate::per_second(5);
        let mut window = SlidingWindow::fresh(0, &rate);
        let mut per_second = [0_u32; 10];
        for i in 0..500 {
            if allowed(&mut window, i * 20 * MS, &rate) {
                per_second[(i / 50) as usize] += 1;
            }
        }
        assert_eq!(per_second[0], 5);
        assert!(
            per_second.iter().all(|&n| (4..=5).contains(&n)),
            "{per_second:?}"
        );
        // Never more than the limit in any sliding second.
        assert_eq!(per_second.iter().sum::<u32>(), 41);
    }

    #[test]
    fn a_long_gap_forgets_both_windows() {
        let rate = Rate::per_second(2);
        let mut window = SlidingWindow::fresh(0, &rate);
        allowed(&mut window, 0, &rate);
        allowed(&mut window, 0, &rate);
        assert_eq!(SlidingWindow::idle_at(&window, Some(&rate)), 2 * SECOND);
        let mut fresh = SlidingWindow::fresh(2 * SECOND, &rate);
        assert_eq!(
            SlidingWindow::check(&mut window, 2 * SECOND, &rate),
            SlidingWindow::check(&mut fresh, 2 * SECOND, &rate)
        );
    }

    #[test]
    fn a_burst_stretches_the_window() {
        let rate = Rate::per_second(2).with_burst(4);
        let mut window = SlidingWindow::fresh(0, &rate);
        let count = (0..10).filter(|_| allowed(&mut window, 0, &rate)).count();
        assert_eq!(count, 4);
        assert_eq!(
            SlidingWindow::check(&mut window, 0, &rate).reset_after(),
            Duration::from_secs(4)
        );
    }
}
