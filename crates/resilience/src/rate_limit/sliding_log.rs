//! Sliding-window log: the exact instants of the requests allowed in the last window.
//!
//! A request at `now` is allowed if fewer than `limit` allowed requests lie in the window
//! `(now - W, now]` (`W` is the rate's period when its burst equals its count). It is the
//! exact answer to "at most N in any window of W": every allowed request is its own entry, so
//! requests in the same instant never collapse into one, and denied requests are *not* recorded, so
//! a client that keeps retrying is not locked out for ever. The price is memory: up to `limit`
//! timestamps per key (8 bytes each), so prefer it for small limits. A log whose newest entry is a
//! whole window old is idle.

use std::collections::VecDeque;

use super::state::Core;
use super::{Decision, Denial};
use crate::Rate;

/// The sliding-log core.
#[derive(Debug)]
pub(crate) struct SlidingLog;

/// One key's log of allowed requests, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Log {
    times: VecDeque<u64>,
    idle_at: u64,
}

impl Core for SlidingLog {
    type State = Log;

    fn fresh(_now: u64, _rate: &Rate) -> Log {
        Log::default()
    }

    fn check(log: &mut Log, now: u64, rate: &Rate) -> Decision {
        let width = rate.window_nanos();
        let limit = rate.burst();
        // Keep the log sorted even if this thread read the clock before the last writer.
        let now = log.times.back().map_or(now, |&newest| now.max(newest));
        while let Some(&oldest) = log.times.front() {
            if oldest.saturating_add(width) > now {
                break;
            }
            log.times.pop_front();
        }
        let held = log.times.len();
        if held < limit as usize {
            log.times.push_back(now);
            log.idle_at = now.saturating_add(width);
            let remaining = limit as usize - held - 1;
            Decision::allow(limit, remaining as u32, width)
        } else {
            // Held entries are within the window, so `oldest + W > now`; the first of them
            // to slide out makes room.
            let oldest = log.times[held - limit as usize];
            // Recomputed at this rate: after the rate changed, the window (and the instant
            // the newest entry slides out) is not the one `idle_at` was last set with.
            let newest = log.times[held - 1];
            log.idle_at = newest.saturating_add(width);
            Decision::deny(
                Denial::RateExceeded,
                limit,
                log.idle_at - now,
                oldest.saturating_add(width) - now,
            )
        }
    }

    /// The newest request slides out of `rate`'s window too: a longer window keeps it.
    fn idle_at(log: &Log, rate: Option<&Rate>) -> u64 {
        let newest = match (log.times.back(), rate) {
            (Some(&newest), Some(rate)) => newest.saturating_add(rate.window_nanos()),
            _ => 0,
        };
        log.idle_at.max(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECOND: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn allowed(log: &mut Log, now: u64, rate: &Rate) -> bool {
        SlidingLog::check(log, now, rate).is_allowed()
    }

    #[test]
    fn a_burst_of_three_at_three_per_second() {
        let rate = Rate::per_second(3);
        let mut log = SlidingLog::fresh(0, &rate);
        let remaining: Vec<_> = (0..3)
            .map(|_| SlidingLog::check(&mut log, 10, &rate).remaining())
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let denied = SlidingLog::check(&mut log, 10, &rate);
        assert_eq!(
            denied,
            Decision::denied(
                Denial::RateExceeded,
                3,
                Duration::from_secs(1),
                Some(Duration::from_secs(1)),
            )
        );
        assert!(!allowed(&mut log, 10 + SECOND - 1, &rate));
        // All three entries slide out together: three fit again.
        let count = (0..5)
            .filter(|_| allowed(&mut log, 10 + SECOND, &rate))
            .count();
        assert_eq!(count, 3);
    }

    #[test]
    fn six_in_one_instant_allow_exactly_three_and_each_is_its_own_entry() {
        // The seed's Redis log keyed entries by millisecond, so same-instant requests
        // collapsed and 4 of 6 got through (bug B14).
        let rate = Rate::per_second(3);
        let mut log = SlidingLog::fresh(0, &rate);
        let count = (0..6).filter(|_| allowed(&mut log, 5 * MS, &rate)).count();
        assert_eq!(count, 3);
        assert_eq!(log.times.len(), 3);
    }

    #[test]
    fn denied_requests_are_not_recorded() {
        // 50 requests per second at 5/second: the seed's log recorded the denials too and
        // let 5 through in total; here it is exactly 5 per second.
        let rate = Rate::per_second(5);
        let mut log = SlidingLog::fresh(0, &rate);
        let mut per_second = [0_u32; 10];
        for i in 0..500 {
            if allowed(&mut log, i * 20 * MS, &rate) {
                per_second[(i / 50) as usize] += 1;
            }
        }
        assert_eq!(per_second, [5; 10]);
        assert!(log.times.len() <= 5);
    }

    #[test]
    fn retry_after_waits_for_the_oldest_entry() {
        let rate = Rate::per_second(2);
        let mut log = SlidingLog::fresh(0, &rate);
        assert!(allowed(&mut log, 0, &rate));
        assert!(allowed(&mut log, 400 * MS, &rate));
        let denied = SlidingLog::check(&mut log, 700 * MS, &rate);
        assert_eq!(denied.retry_after(), Some(Duration::from_millis(300)));
        assert_eq!(denied.reset_after(), Duration::from_millis(700));
        let next = SlidingLog::check(&mut log, SECOND, &rate);
        assert_eq!(next, Decision::allowed(2, 0, Duration::from_secs(1)));
    }

    #[test]
    fn a_log_a_window_old_is_idle() {
        let rate = Rate::per_second(2);
        let mut log = SlidingLog::fresh(0, &rate);
        allowed(&mut log, 0, &rate);
        allowed(&mut log, 300 * MS, &rate);
        assert_eq!(SlidingLog::idle_at(&log, Some(&rate)), 1_300 * MS);
        let mut fresh = SlidingLog::fresh(1_300 * MS, &rate);
        assert_eq!(
            SlidingLog::check(&mut log, 1_300 * MS, &rate),
            SlidingLog::check(&mut fresh, 1_300 * MS, &rate)
        );
    }
}
