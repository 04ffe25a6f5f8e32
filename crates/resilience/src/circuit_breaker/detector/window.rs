//! A sliding window of recent calls, by count or by time, shared by the rate detectors.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::{CallGroup, RestoreError};
use crate::circuit_breaker::Window;

/// Buckets a time window is divided into. A call leaves the window when its whole bucket does,
/// so it counts for between 9/10 of the window and the full window; memory stays constant
/// whatever the call rate (resilience4j aggregates the same way).
const BUCKETS: usize = 10;

/// Totals over the calls in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

/// The last N calls, or the calls of the last period of time.
#[derive(Debug)]
pub(crate) enum CallWindow {
    Calls(CountWindow),
    Time(Box<TimeWindow>),
}

impl CallWindow {
    pub(crate) fn new(window: Window) -> Self {
        match window {
            Window::Calls(size) => Self::Calls(CountWindow {
                size: size as usize,
                // Grown as calls arrive, as for the failure count.
                entries: VecDeque::with_capacity((size as usize).min(super::count::PREALLOCATED)),
                tally: Tally::default(),
            }),
            Window::Time(length) => Self::Time(Box::new(TimeWindow {
                // A zero-length bucket would divide by zero; validation rejects a zero window.
                width: (length / BUCKETS as u32).max(Duration::from_nanos(1)),
                origin: None,
                buckets: [Bucket::default(); BUCKETS],
            })),
        }
    }

    pub(crate) fn record(&mut self, failed: bool, slow: bool, now: Instant) {
        match self {
            Self::Calls(window) => window.record(failed, slow),
            Self::Time(window) => window.add(now, 1, u64::from(failed), u64::from(slow)),
        }
    }

    pub(crate) fn tally(&self, now: Instant) -> Tally {
        match self {
            Self::Calls(window) => window.tally,
            Self::Time(window) => window.tally(now),
        }
    }

    pub(crate) fn clear(&mut self) {
        match self {
            Self::Calls(window) => {
                window.entries.clear();
                window.tally = Tally::default();
            }
            Self::Time(window) => {
                window.origin = None;
                window.buckets = [Bucket::default(); BUCKETS];
            }
        }
    }

    pub(crate) fn snapshot(&self, now: Instant) -> Vec<CallGroup> {
        match self {
            Self::Calls(window) => window
                .entries
                .iter()
                .map(|&(failed, slow)| CallGroup {
                    age: Duration::ZERO,
                    calls: 1,
                    failures: u64::from(failed),
                    slow: u64::from(slow),
                })
                .collect(),
            Self::Time(window) => window.snapshot(now),
        }
    }

    /// Loads calls from a snapshot, which may come from anywhere (a file, another process):
    /// the work is bounded by the window (its last N calls, its ten buckets) and the number of
    /// groups, never by the call counts the snapshot claims.
    pub(crate) fn restore(
        &mut self,
        groups: &[CallGroup],
        now: Instant,
    ) -> Result<(), RestoreError> {
        if groups
            .iter()
            .any(|group| group.failures > group.calls || group.slow > group.calls)
        {
            return Err(RestoreError::Malformed("calls"));
        }
        self.clear();
        match self {
            Self::Calls(window) => {
                // Only the newest `size` calls can stay: find where they start, walking back
                // from the newest group, then replay them oldest first.
                let mut wanted = window.size as u64;
                let mut first = groups.len();
                let mut skip = 0;
                while wanted > 0 && first > 0 {
                    first -= 1;
                    let calls = groups[first].calls;
                    skip = calls.saturating_sub(wanted);
                    wanted = wanted.saturating_sub(calls);
                }
                for (n, group) in groups[first..].iter().enumerate() {
                    let from = if n == 0 { skip } else { 0 };
                    for i in from..group.calls {
                        window.record(i < group.failures, i < group.slow);
                    }
                }
            }
            Self::Time(window) => {
                for group in groups {
                    if let Some(at) = now.checked_sub(group.age) {
                        window.add(at, group.calls, group.failures, group.slow);
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct CountWindow {
    size: usize,
    entries: VecDeque<(bool, bool)>,
    tally: Tally,
}

impl CountWindow {
    fn record(&mut self, failed: bool, slow: bool) {
        if self.entries.len() == self.size {
            if let Some((old_failed, old_slow)) = self.entries.pop_front() {
                self.tally.calls -= 1;
                self.tally.failures -= u64::from(old_failed);
                self.tally.slow -= u64::from(old_slow);
            }
        }
        self.entries.push_back((failed, slow));
        self.tally.calls += 1;
        self.tally.failures += u64::from(failed);
        self.tally.slow += u64::from(slow);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    index: u64,
    tally: Tally,
}

#[derive(Debug)]
pub(crate) struct TimeWindow {
    width: Duration,
    /// Bucket 0 starts here; set by the first call. Instants before it (restored calls) are
    /// placed by moving the origin back one window.
    origin: Option<Instant>,
    buckets: [Bucket; BUCKETS],
}

impl TimeWindow {
    fn index(&self, origin: Instant, at: Instant) -> u64 {
        let since = at.saturating_duration_since(origin).as_nanos();
        (since / self.width.as_nanos()) as u64
    }

    fn origin_for(&mut self, at: Instant) -> Instant {
        *self
            .origin
            .get_or_insert_with(|| at.checked_sub(self.width * BUCKETS as u32).unwrap_or(at))
    }

    fn add(&mut self, at: Instant, calls: u64, failures: u64, slow: u64) {
        let origin = self.origin_for(at);
        if at < origin {
            return;
        }
        let index = self.index(origin, at);
        let bucket = &mut self.buckets[(index % BUCKETS as u64) as usize];
        if bucket.index != index {
            *bucket = Bucket {
                index,
                tally: Tally::default(),
            };
        }
        // Saturating: restored counts are not bounded by any real call rate.
        bucket.tally.calls = bucket.tally.calls.saturating_add(calls);
        bucket.tally.failures = bucket.tally.failures.saturating_add(failures);
        bucket.tally.slow = bucket.tally.slow.saturating_add(slow);
    }

    fn live(&self, now: Instant) -> impl Iterator<Item = &Bucket> {
        let current = self.origin.map(|origin| self.index(origin, now));
        self.buckets.iter().filter(move |bucket| {
            current.is_some_and(|current| {
                bucket.tally.calls > 0
                    && bucket.index <= current
                    && current - bucket.index < BUCKETS as u64
            })
        })
    }

    fn tally(&self, now: Instant) -> Tally {
        self.live(now).fold(Tally::default(), |sum, bucket| Tally {
            calls: sum.calls.saturating_add(bucket.tally.calls),
            failures: sum.failures.saturating_add(bucket.tally.failures),
            slow: sum.slow.saturating_add(bucket.tally.slow),
        })
    }

    fn snapshot(&self, now: Instant) -> Vec<CallGroup> {
        let Some(origin) = self.origin else {
            return Vec::new();
        };
        self.live(now)
            .map(|bucket| {
                let start = origin + self.width * bucket.index as u32;
                CallGroup {
                    age: now.saturating_duration_since(start),
                    calls: bucket.tally.calls,
                    failures: bucket.tally.failures,
                    slow: bucket.tally.slow,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(age: Duration, calls: u64, failures: u64) -> CallGroup {
        CallGroup {
            age,
            calls,
            failures,
            slow: 0,
        }
    }

    #[test]
    fn restoring_huge_counts_does_work_bounded_by_the_window() {
        let now = Instant::now();
        let mut window = CallWindow::new(Window::Calls(4));
        // Claims 2^64 - 1 calls, then 2 more: only the newest 4 are replayed.
        let groups = [
            group(Duration::ZERO, u64::MAX, u64::MAX),
            group(Duration::ZERO, 2, 0),
        ];
        window.restore(&groups, now).unwrap();
        assert_eq!(
            window.tally(now),
            Tally {
                calls: 4,
                failures: 2,
                slow: 0
            }
        );

        let mut window = CallWindow::new(Window::Time(Duration::from_secs(10)));
        let huge = group(Duration::from_secs(1), u64::MAX, u64::MAX);
        window.restore(&[huge, huge], now).unwrap();
        assert_eq!(window.tally(now).calls, u64::MAX, "saturates");
    }

    #[test]
    fn restoring_more_failures_than_calls_is_refused() {
        let now = Instant::now();
        for window in [Window::Calls(4), Window::Time(Duration::from_secs(10))] {
            let mut window = CallWindow::new(window);
            let error = window
                .restore(&[group(Duration::ZERO, 1, 2)], now)
                .unwrap_err();
            assert_eq!(error, RestoreError::Malformed("calls"));
        }
    }

    #[test]
    fn count_window_keeps_the_last_n_calls() {
        let now = Instant::now();
        let mut window = CallWindow::new(Window::Calls(3));
        for failed in [true, true, false, false] {
            window.record(failed, false, now);
        }
        assert_eq!(
            window.tally(now),
            Tally {
                calls: 3,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn time_window_drops_a_bucket_after_one_window() {
        let t0 = Instant::now();
        let mut window = CallWindow::new(Window::Time(Duration::from_secs(10)));
        window.record(true, false, t0);
        let later = t0 + Duration::from_millis(1500);
        window.record(false, true, later);
        assert_eq!(window.tally(later).calls, 2);
        // Buckets are 1 s wide: the call at t0 lives in the bucket [t0, t0+1s) and leaves when
        // that bucket is ten buckets old.
        let edge = t0 + Duration::from_secs(10);
        assert_eq!(window.tally(edge - Duration::from_nanos(1)).calls, 2);
        assert_eq!(window.tally(edge).calls, 1);
        assert_eq!(window.tally(t0 + Duration::from_secs(11)).calls, 0);
    }

    #[test]
    fn time_window_snapshot_round_trips() {
        let t0 = Instant::now();
        let mut window = CallWindow::new(Window::Time(Duration::from_secs(10)));
        window.record(true, false, t0);
        window.record(false, false, t0 + Duration::from_secs(3));
        let now = t0 + Duration::from_secs(5);
        let groups = window.snapshot(now);
        let mut other = CallWindow::new(Window::Time(Duration::from_secs(10)));
        other.restore(&groups, now).unwrap();
        assert_eq!(other.tally(now), window.tally(now));
    }
}
