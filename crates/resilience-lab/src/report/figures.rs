//! Every pattern's own figures, read from its metrics, for the "per pattern" section.

use resilience::timeout::TimeoutMetrics;

use crate::gateway::Protection;

/// One pattern's figures, as `(label, value)` pairs.
#[derive(Debug, Clone)]
pub(crate) struct PatternFigures {
    pub(crate) pattern: &'static str,
    pub(crate) figures: Vec<(&'static str, u64)>,
}

impl PatternFigures {
    fn new<const N: usize>(pattern: &'static str, figures: [(&'static str, u64); N]) -> Self {
        Self {
            pattern,
            figures: figures.to_vec(),
        }
    }
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
        PatternFigures::new(
            "rate limiter",
            [("admitted", allowed), ("rejected", refused)],
        ),
        PatternFigures::new(
            "load shedder",
            [
                ("admitted", shedder.total_accepted),
                ("shed", shedder.total_shed),
            ],
        ),
        PatternFigures::new(
            "bulkhead",
            [
                ("admitted", bulkhead.accepted_requests),
                ("rejected", bulkhead.rejected_requests),
                ("peak active", u64::from(bulkhead.peak_active)),
            ],
        ),
        timeout_figures("request timeout", &request_timeout),
        PatternFigures::new(
            "circuit breaker",
            [
                ("succeeded", breaker.successful_requests),
                ("failed", breaker.failed_requests),
                ("rejected", breaker.rejected_requests),
            ],
        ),
        PatternFigures::new(
            "retry",
            [
                ("attempts", retry.total_attempts),
                ("retried", retried),
                ("exhausted", retry.retries_exhausted),
            ],
        ),
        timeout_figures("upstream timeout", &upstream_timeout),
        PatternFigures::new(
            "fallback",
            [
                ("passed", fallback.successful_executions),
                ("served from fallback", fallback.fallback_executions),
                ("failed", fallback.failed_executions),
            ],
        ),
    ]
}

/// What a timeout did: calls that finished in time, and calls cut off.
fn timeout_figures(pattern: &'static str, metrics: &TimeoutMetrics) -> PatternFigures {
    let finished = metrics.successful_executions + metrics.failed_executions;
    PatternFigures::new(
        pattern,
        [
            ("finished", finished),
            ("timed out", metrics.timed_out_executions),
        ],
    )
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
