//! The report: what the client saw through each gateway, what each pattern did, and the
//! circuit's transitions on a timeline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::gateway::Protection;
use crate::loadgen::{Lag, Sample, Seen};

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

/// One pattern's figures, as `(label, value)` pairs.
#[derive(Debug, Clone)]
pub(crate) struct PatternFigures {
    pub(crate) pattern: &'static str,
    pub(crate) figures: Vec<(&'static str, u64)>,
}

/// Reads every pattern's metrics.
pub(crate) fn pattern_figures(protection: &Protection) -> Vec<PatternFigures> {
    let server = &protection.server;
    let (allowed, refused) = match &protection.shared {
        Some(shared) => {
            let metrics = shared.limiter.metrics();
            (metrics.total_allowed, metrics.total_rejected)
        }
        None => {
            let metrics = server.rate_limiter.metrics();
            (metrics.total_allowed, metrics.total_rejected)
        }
    };
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
            figures: vec![("admitted", allowed), ("rejected", refused)],
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

/// Every instance's figures added up, pattern by pattern (all instances have the same patterns
/// in the same order). A peak is the highest instance's, since peaks at different moments
/// do not add.
pub(crate) fn sum_figures(instances: Vec<Vec<PatternFigures>>) -> Vec<PatternFigures> {
    let mut instances = instances.into_iter();
    let mut total = instances.next().unwrap_or_default();
    for figures in instances {
        for (sum, pattern) in total.iter_mut().zip(figures) {
            for ((label, value), (_, add)) in sum.figures.iter_mut().zip(pattern.figures) {
                if label.starts_with("peak") {
                    *value = (*value).max(add);
                } else {
                    *value += add;
                }
            }
        }
    }
    total
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
            .zip(&self.per_phase)
            .map(|((at, name), count)| format!("{:.1}s {name} ({count})", at.as_secs_f64()))
            .collect();
        let _ = writeln!(
            out,
            "traffic plan: {} requests at {}/s, the same to both gateways; upstream phases: {}",
            self.per_phase.iter().sum::<u64>(),
            self.rate,
            phases.join(" | ")
        );
        let _ = writeln!(out, "{}", self.lag_line());
        if self.interrupted {
            let _ = writeln!(
                out,
                "INTERRUPTED (Ctrl-C) at {:.1}s of {:?}: this report covers what ran; requests \
                 still in flight are counted as cut short",
                self.ran_for.as_secs_f64(),
                self.duration
            );
        }
        let (p, u) = (&self.protected, &self.unprotected);
        let _ = writeln!(out, "\nheadline");
        let _ = writeln!(
            out,
            "  protected:   {} fresh, {} fallback, {} errors, p90 {}",
            percent(p.fresh_rate()),
            percent(p.fallback_rate()),
            percent(p.error_rate()),
            millis(p.p90)
        );
        let _ = writeln!(
            out,
            "  unprotected: {} fresh, {} fallback, {} errors, p90 {}",
            percent(u.fresh_rate()),
            percent(u.fallback_rate()),
            percent(u.error_rate()),
            millis(u.p90)
        );
        let _ = writeln!(out, "  {}\n", trade_off(p, u));

        let _ = writeln!(
            out,
            "{:<22}{:>14}{:>14}",
            "client saw", "protected", "unprotected"
        );
        let mut rows: Vec<(&str, String, String)> = vec![
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
        ];
        if self.interrupted {
            rows.push((
                "cut short",
                p.cut_short.to_string(),
                u.cut_short.to_string(),
            ));
        }
        rows.extend([
            ("fresh", percent(p.fresh_rate()), percent(u.fresh_rate())),
            (
                "fallback",
                percent(p.fallback_rate()),
                percent(u.fallback_rate()),
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
        ]);
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
        if let Some(shared) = &self.shared {
            out.push_str(&shared.to_text());
        }

        let _ = writeln!(out, "\ncircuit breaker timeline");
        if self.transitions.is_empty() {
            let _ = writeln!(out, "  (no transitions)");
        }
        for transition in &self.transitions {
            let instance = if self.shared.is_some() {
                format!("instance {}  ", transition.instance + 1)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:>7.2}s  {instance}{:<9} -> {:<9} (upstream {})",
                transition.at.as_secs_f64(),
                transition.from,
                transition.to,
                transition.phase
            );
        }
        out
    }

    fn lag_line(&self) -> String {
        let lag = &self.lag;
        if lag.late == 0 {
            format!(
                "this machine kept to the plan: every request went out within {} of its time",
                millis(Lag::LATE)
            )
        } else {
            format!(
                "this machine fell behind the plan: {} requests went out more than {} late, \
                 up to {} (p99 {}); both gateways still got every request, late",
                self.lag.late,
                millis(Lag::LATE),
                millis(lag.max),
                millis(lag.p99)
            )
        }
    }
}

/// One line: what protection bought (latency, errors) and what it cost (fresh answers given
/// up, fallbacks served, requests refused).
pub(crate) fn trade_off(protected: &Summary, unprotected: &Summary) -> String {
    let (p, u) = (protected, unprotected);
    let fresh = if p.fresh < u.fresh {
        format!(
            "{} fewer fresh upstream answers ({} vs {})",
            u.fresh - p.fresh,
            p.fresh,
            u.fresh
        )
    } else {
        format!(
            "no fewer fresh upstream answers ({} vs {})",
            p.fresh, u.fresh
        )
    };
    format!(
        "protection: p90 {} -> {}, errors {} -> {}; cost: {fresh}, {} answers from the fallback, {} requests refused",
        millis(u.p90),
        millis(p.p90),
        percent(u.error_rate()),
        percent(p.error_rate()),
        p.fallback,
        p.rejected_total()
    )
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
    fn the_trade_off_line_says_what_protection_bought_and_cost() {
        let protected = Summary::of(
            10,
            &[
                [sample(5, Seen::Fresh); 4].as_slice(),
                &[sample(5, Seen::Fallback); 5],
                &[sample(1, Seen::Rejected(429))],
            ]
            .concat(),
        );
        let unprotected = Summary::of(
            10,
            &[
                [sample(400, Seen::Fresh); 8].as_slice(),
                &[sample(5, Seen::Failed(502)); 2],
            ]
            .concat(),
        );
        assert_eq!(protected.fresh_rate(), 0.4);
        assert_eq!(protected.fallback_rate(), 0.5);
        assert_eq!(protected.error_rate(), 0.1);
        let line = trade_off(&protected, &unprotected);
        assert_eq!(
            line,
            "protection: p90 400.0 ms -> 5.0 ms, errors 20.0 % -> 10.0 %; cost: 4 fewer fresh \
             upstream answers (4 vs 8), 5 answers from the fallback, 1 requests refused"
        );
    }

    #[test]
    fn requests_cut_short_still_add_up() {
        let summary = Summary::of(5, &[sample(1, Seen::Fresh), sample(1, Seen::Rejected(429))]);
        assert_eq!(summary.cut_short, 3);
        assert!(summary.adds_up());
        assert_eq!(summary.fresh_rate(), 0.5);
    }
}
