//! The pure core of adaptive concurrency: admission against the limit, and the measurement
//! window every algorithm aggregates its samples in.
//!
//! Algorithms never update on each sample alone: a window gathers samples and closes after
//! `max_samples` of them or once `duration` has passed since its first one, whichever comes
//! first, so a busy service adapts quickly and a quiet one still adapts (a window bounded by
//! count alone would never close on a quiet service). The latency algorithms update once
//! per window, as Netflix's `WindowedLimit` does: a window spanning at least a round trip
//! sees the effect of the previous change, which keeps the control loop stable.

use std::time::Duration;

use tokio::time::Instant;

use super::Sample;
use crate::classify::Outcome;

/// Admits a call if `in_flight < limit`, returning the new in-flight count.
pub(crate) fn admit(in_flight: u32, limit: u32) -> Option<u32> {
    (in_flight < limit).then(|| in_flight + 1)
}

/// Utilisation of the limit as a ratio in `0..=1` (in flight may exceed a lowered limit).
pub(crate) fn utilization(in_flight: u32, limit: u32) -> f64 {
    if limit == 0 {
        return 1.0;
    }
    (f64::from(in_flight) / f64::from(limit)).min(1.0)
}

/// What a closed window saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    /// Samples with a counted outcome.
    pub(crate) count: u32,
    pub(crate) successes: u32,
    pub(crate) failures: u32,
    /// Average latency of the counted samples.
    pub(crate) average: Duration,
    /// The largest in-flight count any sample was admitted at.
    pub(crate) max_in_flight: u32,
    /// When the window closed.
    pub(crate) closed: Instant,
}

/// Samples gathered since the window opened (at its first sample).
#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    opened: Option<Instant>,
    successes: u32,
    failures: u32,
    latency_nanos: u128,
    max_in_flight: u32,
}

impl Window {
    /// Counted samples so far.
    pub(crate) fn count(&self) -> u32 {
        self.successes + self.failures
    }

    /// Adds a sample; ignored outcomes are not counted.
    pub(crate) fn add(&mut self, sample: &Sample) {
        match sample.outcome {
            Outcome::Success => self.successes += 1,
            Outcome::Failure => self.failures += 1,
            Outcome::Ignored => return,
        }
        self.opened.get_or_insert(sample.finished());
        self.latency_nanos += sample.latency.as_nanos();
        self.max_in_flight = self.max_in_flight.max(sample.in_flight);
    }

    /// Whether the window should close at `now`: `max_samples` counted, or `duration` passed
    /// since its first sample.
    pub(crate) fn is_due(&self, now: Instant, duration: Duration, max_samples: u32) -> bool {
        match self.opened {
            None => false,
            Some(opened) => {
                self.count() >= max_samples || now.saturating_duration_since(opened) >= duration
            }
        }
    }

    /// Closes the window and starts an empty one; `None` if nothing was counted.
    pub(crate) fn close(&mut self, now: Instant) -> Option<Summary> {
        let window = std::mem::take(self);
        let count = window.count();
        if count == 0 {
            return None;
        }
        let average = window.latency_nanos / u128::from(count);
        Some(Summary {
            count,
            successes: window.successes,
            failures: window.failures,
            average: Duration::from_nanos(u64::try_from(average).unwrap_or(u64::MAX)),
            max_in_flight: window.max_in_flight,
            closed: now,
        })
    }
}

/// The measuring side of a latency-based algorithm that re-learns its reference latency from
/// time to time: the window of samples, and the probe schedule.
///
/// A probe comes after `interval` closed windows times a jitter in `[0.5, 1)`, drawn again
/// at every probe, so instances started together do not probe in step. Samples of calls
/// admitted before the last probe are not counted: they queued under the old limit and would
/// measure the old latency again.
#[derive(Debug, Clone)]
pub(crate) struct ProbedWindows {
    window: Window,
    windows_since_probe: u64,
    jitter: f64,
    probed_at: Option<Instant>,
    rng: fastrand::Rng,
}

impl ProbedWindows {
    pub(crate) fn new(mut rng: fastrand::Rng) -> Self {
        Self {
            window: Window::default(),
            windows_since_probe: 0,
            jitter: jitter(&mut rng),
            probed_at: None,
            rng,
        }
    }

    /// Counts the sample, unless its call was admitted before the last probe.
    pub(crate) fn add(&mut self, sample: &Sample) {
        if self.probed_at.is_none_or(|probed| sample.started >= probed) {
            self.window.add(sample);
        }
    }

    /// The summary of the window when it is due at `now` and counted at least `min_samples`;
    /// a due window closes either way.
    pub(crate) fn close_due(
        &mut self,
        now: Instant,
        duration: Duration,
        min_samples: u32,
    ) -> Option<Summary> {
        if !self.window.is_due(now, duration, u32::MAX) {
            return None;
        }
        self.window
            .close(now)
            .filter(|summary| summary.count >= min_samples)
    }

    /// Counts an evaluated window; whether a probe is due after `interval` windows (0: never).
    pub(crate) fn probe_due(&mut self, interval: f64) -> bool {
        self.windows_since_probe += 1;
        interval > 0.0 && self.windows_since_probe as f64 >= self.jitter * interval
    }

    /// Starts a probe at `now`: the window starts over, and earlier calls stop counting.
    pub(crate) fn start_probe(&mut self, now: Instant) {
        self.probed_at = Some(now);
        self.windows_since_probe = 0;
        self.jitter = jitter(&mut self.rng);
        self.window = Window::default();
    }
}

/// Implements [`LimitAlgorithm`](super::LimitAlgorithm) for a latency algorithm measured by
/// [`ProbedWindows`]: a type with the fields `windows`, `estimate` and `config` (with `window`
/// and `min_window_samples`), and a method `evaluate(&mut self, &Summary)` run once per window.
macro_rules! probed_limit_algorithm {
    ($algorithm:ty, $name:literal) => {
        impl crate::adaptive::LimitAlgorithm for $algorithm {
            fn name(&self) -> &'static str {
                $name
            }

            fn limit(&self) -> u32 {
                crate::adaptive::algorithm::as_limit(self.estimate)
            }

            fn update(&mut self, sample: &crate::adaptive::Sample) -> u32 {
                self.windows.add(sample);
                self.poll(sample.finished())
            }

            fn poll(&mut self, now: tokio::time::Instant) -> u32 {
                let config = &self.config;
                if let Some(summary) =
                    self.windows
                        .close_due(now, config.window, config.min_window_samples)
                {
                    self.evaluate(&summary);
                }
                self.limit()
            }
        }
    };
}
pub(crate) use probed_limit_algorithm;

fn jitter(rng: &mut fastrand::Rng) -> f64 {
    0.5 + rng.f64() * 0.5
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(at: Instant, millis: u64, in_flight: u32, outcome: Outcome) -> Sample {
        Sample::new(at, Duration::from_millis(millis), in_flight, outcome)
    }

    #[test]
    fn admission_stops_at_the_limit() {
        assert_eq!(admit(0, 1), Some(1));
        assert_eq!(admit(1, 1), None);
        assert_eq!(
            admit(5, 3),
            None,
            "a lowered limit admits nobody until calls finish"
        );
        assert_eq!(utilization(5, 3), 1.0);
        assert_eq!(utilization(1, 4), 0.25);
    }

    #[test]
    fn admission_at_the_largest_count_refuses_without_overflowing() {
        assert_eq!(admit(u32::MAX - 1, u32::MAX), Some(u32::MAX));
        assert_eq!(admit(u32::MAX, u32::MAX), None);
    }

    #[test]
    fn a_window_closes_by_count_or_by_time() {
        let epoch = Instant::now();
        let second = Duration::from_secs(1);
        let mut window = Window::default();
        assert!(
            !window.is_due(epoch + second * 10, second, 3),
            "an empty window never closes"
        );
        window.add(&sample(epoch, 10, 1, Outcome::Success));
        window.add(&sample(epoch, 30, 4, Outcome::Failure));
        window.add(&sample(epoch, 500, 9, Outcome::Ignored));
        let opened = epoch + Duration::from_millis(10);
        assert_eq!(window.count(), 2);
        assert!(!window.is_due(opened + second - Duration::from_nanos(1), second, 3));
        assert!(window.is_due(opened + second, second, 3));
        window.add(&sample(epoch, 20, 2, Outcome::Success));
        assert!(window.is_due(opened, second, 3), "three counted samples");
        let summary = window.close(opened).unwrap();
        assert_eq!(
            (summary.count, summary.successes, summary.failures),
            (3, 2, 1)
        );
        assert_eq!(summary.average, Duration::from_millis(20));
        assert_eq!(
            summary.max_in_flight, 4,
            "ignored samples count for nothing"
        );
        assert_eq!(window.count(), 0);
        assert!(window.close(opened).is_none());
    }

    proptest! {
        /// Whatever the samples, a closed window's counts add up and its average lies between
        /// the smallest and largest counted latency.
        #[test]
        fn summaries_add_up(samples in prop::collection::vec((0u64..1_000, 0u32..100, 0u8..3), 1..50)) {
            let epoch = Instant::now();
            let mut window = Window::default();
            let mut counted = Vec::new();
            for (millis, in_flight, kind) in samples {
                let outcome = [Outcome::Success, Outcome::Failure, Outcome::Ignored][usize::from(kind)];
                window.add(&sample(epoch, millis, in_flight, outcome));
                if outcome != Outcome::Ignored {
                    counted.push((millis, in_flight));
                }
            }
            match window.close(epoch) {
                None => prop_assert!(counted.is_empty()),
                Some(summary) => {
                    prop_assert_eq!(summary.count as usize, counted.len());
                    prop_assert_eq!(summary.successes + summary.failures, summary.count);
                    let min = counted.iter().map(|c| c.0).min().unwrap();
                    let max = counted.iter().map(|c| c.0).max().unwrap();
                    let average = summary.average.as_millis() as u64;
                    prop_assert!(min <= average && average <= max);
                    prop_assert_eq!(summary.max_in_flight, counted.iter().map(|c| c.1).max().unwrap());
                }
            }
        }
    }
}
