//! The report: what the client saw through each gateway, what each pattern did, and the
//! circuit's transitions on a timeline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::gateway::Protection;
use crate::loadgen::{Sample, Seen};

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
        self.fresh + self.fallback + self.failed_total() + self.unanswered
    }

    /// Share of requests that did not get a 200.
    pub(crate) fn error_rate(&self) -> f64 {
        let errors = self.rejected_total() + self.failed_total() + self.unanswered;
        ratio(errors, self.sent)
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
}

/// One pattern's figures, as `(label, value)` pairs.
#[derive(Debug, Clone)]
pub(crate) struct PatternFigures {
    pub(crate) pattern: &'static str,
    pub(crate) figures: Vec<(&'static str, u64)>,
}

/// Reads every pattern's metrics.
pub(crate) fn pattern_figures(protection: &Protection) -> Vec<PatternFigures> {
    let server = &protection.server;
    let limiter = server.rate_limiter.metrics();
    let shedder = server.load_shedder.metrics();
    let bulkhead = server.bulkhead.metrics();
    let request_timeout = server.timeout.metrics();
    let breaker = protection.breaker.metrics();
    let retry = protection.retry.metrics();
    let upstream_timeout = protection.timeout.metrics();
    let fallback = protection.fallback.metrics();
    let retried = retry
        .total_attempts
        .saturating_sub(fallback.total_executions);
    vec![
        PatternFigures {
            pattern: "rate limiter",
            figures: vec![
                ("admitted", limiter.total_allowed),
                ("rejected", limiter.total_rejected),
            ],
        },
        PatternFigures {
            pattern: "load shedder",
            figures: vec![
                ("admitted", shedder.total_accepted),
                ("shed", shedder.total_shed),
            ],
        },
        PatternFigures {
            pattern: "bulkhead",
            figures: vec![
                ("admitted", bulkhead.accepted_requests),
                ("rejected", bulkhead.rejected_requests),
                ("peak active", u64::from(bulkhead.peak_active)),
            ],
        },
        PatternFigures {
            pattern: "request timeout",
            figures: vec![
                (
                    "finished",
                    request_timeout.successful_executions + request_timeout.failed_executions,
                ),
                ("timed out", request_timeout.timed_out_executions),
            ],
        },
        PatternFigures {
            pattern: "circuit breaker",
            figures: vec![
                ("succeeded", breaker.successful_requests),
                ("failed", breaker.failed_requests),
                ("rejected", breaker.rejected_requests),
            ],
        },
        PatternFigures {
            pattern: "retry",
            figures: vec![
                ("attempts", retry.total_attempts),
                ("retried", retried),
                ("exhausted", retry.retries_exhausted),
            ],
        },
        PatternFigures {
            pattern: "upstream timeout",
            figures: vec![
                (
                    "finished",
                    upstream_timeout.successful_executions + upstream_timeout.failed_executions,
                ),
                ("timed out", upstream_timeout.timed_out_executions),
            ],
        },
        PatternFigures {
            pattern: "fallback",
            figures: vec![
                ("passed", fallback.successful_executions),
                ("served from fallback", fallback.fallback_executions),
                ("failed", fallback.failed_executions),
            ],
        },
    ]
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) duration: Duration,
    pub(crate) seed: u64,
    pub(crate) phases: Vec<(Duration, String)>,
    pub(crate) protected: Summary,
    pub(crate) unprotected: Summary,
    pub(crate) patterns: Vec<PatternFigures>,
    pub(crate) transitions: Vec<Transition>,
}

impl Report {
    /// The report as terminal text.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n== resilience lab: {:?}, seed {} ==",
            self.duration, self.seed
        );
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(at, name)| format!("{:.1}s {name}", at.as_secs_f64()))
            .collect();
        let _ = writeln!(out, "upstream phases: {}\n", phases.join(" | "));

        let _ = writeln!(
            out,
            "{:<22}{:>14}{:>14}",
            "client saw", "protected", "unprotected"
        );
        let (p, u) = (&self.protected, &self.unprotected);
        let rows: [(&str, String, String); 11] = [
            ("sent", p.sent.to_string(), u.sent.to_string()),
            ("fresh (200)", p.fresh.to_string(), u.fresh.to_string()),
            (
                "fallback (200)",
                p.fallback.to_string(),
                u.fallback.to_string(),
            ),
            (
                "rejected (429/503/408)",
                p.rejected_total().to_string(),
                u.rejected_total().to_string(),
            ),
            (
                "failed (5xx)",
                p.failed_total().to_string(),
                u.failed_total().to_string(),
            ),
            (
                "unanswered",
                p.unanswered.to_string(),
                u.unanswered.to_string(),
            ),
            (
                "error rate",
                percent(p.error_rate()),
                percent(u.error_rate()),
            ),
            ("latency p50", millis(p.p50), millis(u.p50)),
            ("latency p90", millis(p.p90), millis(u.p90)),
            ("latency p99", millis(p.p99), millis(u.p99)),
            ("latency max", millis(p.max), millis(u.max)),
        ];
        for (label, protected, unprotected) in rows {
            let _ = writeln!(out, "{label:<22}{protected:>14}{unprotected:>14}");
        }
        let _ = writeln!(
            out,
            "\nprotected gateway: admitted {} + rejected {} = sent {} ({})",
            p.admitted(),
            p.rejected_total(),
            p.sent,
            if p.adds_up() {
                "adds up"
            } else {
                "DOES NOT ADD UP"
            }
        );
        if !p.rejected.is_empty() {
            let by_status: Vec<String> = p
                .rejected
                .iter()
                .map(|(status, count)| format!("{status}: {count}"))
                .collect();
            let _ = writeln!(out, "rejections by status: {}", by_status.join(", "));
        }

        let _ = writeln!(out, "\nper pattern (protected gateway)");
        for pattern in &self.patterns {
            let figures: Vec<String> = pattern
                .figures
                .iter()
                .map(|(label, value)| format!("{label} {value}"))
                .collect();
            let _ = writeln!(out, "  {:<18}{}", pattern.pattern, figures.join(", "));
        }

        let _ = writeln!(out, "\ncircuit breaker timeline");
        if self.transitions.is_empty() {
            let _ = writeln!(out, "  (no transitions)");
        }
        for transition in &self.transitions {
            let _ = writeln!(
                out,
                "  {:>7.2}s  {:<9} -> {:<9} (upstream {})",
                transition.at.as_secs_f64(),
                transition.from,
                transition.to,
                transition.phase
            );
        }
        out
    }
}

pub(crate) fn percent(value: f64) -> String {
    format!("{:.1} %", value * 100.0)
}

pub(crate) fn millis(value: Duration) -> String {
    format!("{:.1} ms", value.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(millis: u64, seen: Seen) -> Sample {
        Sample {
            sent_at: Duration::ZERO,
            latency: Duration::from_millis(millis),
            seen,
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
}
