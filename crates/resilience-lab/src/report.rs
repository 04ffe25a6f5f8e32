//! The report: what the client saw through each gateway, what each pattern did, and the
//! circuit's transitions on a timeline.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::loadgen::{Lag, Sample, Seen};

mod figures;
mod text;

pub(crate) use figures::{pattern_figures, sum_figures, PatternFigures};

/// What the client saw through one gateway.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) sent: u64,
    pub(crate) fresh: u64,
    pub(crate) fallback: u64,
    /// Refused by the gateway's protection, by status.
    pub(crate) rejected: BTreeMap<u16, u64>,
    /// Failed otherwise, by status.
    pub(crate) failed: BTreeMap<u16, u64>,
    pub(crate) unanswered: u64,
    /// Sent, but still in flight when the run was interrupted.
    pub(crate) cut_short: u64,
    pub(crate) p50: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Summary {
    pub(crate) fn of(sent: u64, samples: &[Sample]) -> Self {
        let mut summary = Self {
            sent,
            ..Self::default()
        };
        for sample in samples {
            match sample.seen {
                Seen::Fresh => summary.fresh += 1,
                Seen::Fallback => summary.fallback += 1,
                Seen::Rejected(status) => *summary.rejected.entry(status).or_default() += 1,
                Seen::Failed(status) => *summary.failed.entry(status).or_default() += 1,
                Seen::Unanswered => summary.unanswered += 1,
            }
        }
        let mut latencies: Vec<Duration> = samples.iter().map(|sample| sample.latency).collect();
        latencies.sort_unstable();
        let at = |quantile: f64| -> Duration {
            if latencies.is_empty() {
                return Duration::ZERO;
            }
            let index =
                ((latencies.len() as f64 * quantile).ceil() as usize).clamp(1, latencies.len());
            latencies[index - 1]
        };
        (summary.p50, summary.p90, summary.p99) = (at(0.50), at(0.90), at(0.99));
        summary.max = latencies.last().copied().unwrap_or_default();
        summary.cut_short = sent.saturating_sub(samples.len() as u64);
        summary
    }

    pub(crate) fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub(crate) fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Requests the gateway let in (everything it did not refuse).
    pub(crate) fn admitted(&self) -> u64 {
        self.fresh + self.fallback + self.failed_total() + self.unanswered + self.cut_short
    }

    /// Requests that got neither a fresh answer nor a fallback.
    pub(crate) fn errors(&self) -> u64 {
        self.rejected_total() + self.failed_total() + self.unanswered
    }

    /// Share of requests that got neither a fresh answer nor a fallback.
    pub(crate) fn error_rate(&self) -> f64 {
        ratio(self.errors(), self.answered())
    }

    /// Share of requests answered fresh by the upstream.
    pub(crate) fn fresh_rate(&self) -> f64 {
        ratio(self.fresh, self.answered())
    }

    /// Share of requests answered from the fallback.
    pub(crate) fn fallback_rate(&self) -> f64 {
        ratio(self.fallback, self.answered())
    }

    /// Requests that finished one way or another (all of them unless interrupted).
    fn answered(&self) -> u64 {
        self.sent - self.cut_short.min(self.sent)
    }

    /// Whether every request sent is accounted for exactly once.
    pub(crate) fn adds_up(&self) -> bool {
        self.admitted() + self.rejected_total() == self.sent
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// One circuit transition, from the start of the run.
#[derive(Debug, Clone)]
pub(crate) struct Transition {
    pub(crate) at: Duration,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) phase: String,
    /// Which protected gateway instance saw it (always 0 with a single gateway).
    pub(crate) instance: usize,
}
/// Everything the report shows.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The planned run time.
    pub(crate) duration: Duration,
    /// How long it ran: shorter than `duration` when interrupted.
    pub(crate) ran_for: Duration,
    pub(crate) interrupted: bool,
    pub(crate) seed: u64,
    /// The plan's requests per second.
    pub(crate) rate: u64,
    pub(crate) phases: Vec<(Duration, String)>,
    /// Planned requests per phase.
    pub(crate) per_phase: Vec<u64>,
    pub(crate) lag: Lag,
    pub(crate) protected: Summary,
    pub(crate) unprotected: Summary,
    pub(crate) patterns: Vec<PatternFigures>,
    pub(crate) transitions: Vec<Transition>,
    /// Distributed mode only: the shared budget and each instance's view.
    pub(crate) shared: Option<crate::distributed::SharedFigures>,
}
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sample sent at time zero that took `millis`.
    pub(crate) fn sample(millis: u64, seen: Seen) -> Sample {
        Sample {
            sent_at: Duration::ZERO,
            latency: Duration::from_millis(millis),
            seen,
            instance: 0,
        }
    }

    #[test]
    fn summaries_count_every_request_once_and_rank_latencies() {
        let samples: Vec<Sample> = (1..=100)
            .map(|i| {
                let seen = match i % 5 {
                    0 => Seen::Rejected(429),
                    1 => Seen::Failed(502),
                    2 => Seen::Fallback,
                    _ => Seen::Fresh,
                };
                sample(i, seen)
            })
            .collect();
        let summary = Summary::of(100, &samples);
        assert!(summary.adds_up());
        assert_eq!(summary.rejected_total(), 20);
        assert_eq!(summary.admitted(), 80);
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
        assert!((summary.error_rate() - 0.4).abs() < 1e-9);
    }

    #[test]
    fn requests_cut_short_still_add_up() {
        let summary = Summary::of(5, &[sample(1, Seen::Fresh), sample(1, Seen::Rejected(429))]);
        assert_eq!(summary.cut_short, 3);
        assert!(summary.adds_up());
        assert_eq!(summary.fresh_rate(), 0.5);
    }
}
