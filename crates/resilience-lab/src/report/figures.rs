//! Every pattern's own figures, read from its metrics, for the "per pattern" section.

use resilience::timeout::TimeoutMetrics;

use crate::gateway::Protection;

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
        timeout_figures("request timeout", &request_timeout),
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
        timeout_figures("upstream timeout", &upstream_timeout),
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
/// What a timeout did: calls that finished in time, and calls cut off.
fn timeout_figures(pattern: &'static str, metrics: &TimeoutMetrics) -> PatternFigures {
    PatternFigures {
        pattern,
        figures: vec![
            (
                "finished",
                metrics.successful_executions + metrics.failed_executions,
            ),
            ("timed out", metrics.timed_out_executions),
        ],
    }
}

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
