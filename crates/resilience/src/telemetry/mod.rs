//! Metrics for monitoring systems: every pattern instance records counters, gauges and
//! histograms through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! Install a recorder (for Prometheus, `metrics-exporter-prometheus`, or the
//! `resilience-prometheus` crate of this workspace, which serves `/metrics`) **before** building
//! instances: each instance registers its handles once, when it is built, and keeps them, so a
//! recorded event is one handle update with no key built, no label hashed and nothing looked up
//! or allocated. An instance built before any recorder was installed records nothing.
//!
//! Without the feature the `metrics` crate is not compiled, every handle here is zero-sized and
//! every recording an empty inline function: no memory, no branch, no cost.
//!
//! # The metrics
//!
//! Names and labels follow Prometheus conventions (`_total` counters, `_seconds` histograms,
//! `snake_case` label values). Every metric carries the instance `name`; the other labels take
//! the few values listed, so the number of series is bounded by the number of instances.
//! Rate-limit keys and other user data never become labels.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `resilience_circuit_breaker_calls_total` | counter | `name`, `outcome` = `success` \| `failure` \| `ignored` \| `rejected` | calls through a breaker, by how they ended |
//! | `resilience_circuit_breaker_state` | gauge | `name`, `state` = `closed` \| `open` \| `half_open` \| `forced_open` \| `disabled` | 1 for the current state, 0 for the others |
//! | `resilience_circuit_breaker_transitions_total` | counter | `name`, `from`, `to` (states as above) | state changes |
//! | `resilience_circuit_breaker_call_duration_seconds` | histogram | `name` | call latency, when the breaker measures it (slow-call detection) |
//! | `resilience_rate_limit_decisions_total` | counter | `name`, `decision` = `allowed` \| `rejected` | rate-limit decisions (local and Redis limiters) |
//! | `resilience_backend_errors_total` | counter | `name`, `policy` = `fail_open` \| `fail_closed` \| `local` | backend (Redis) calls that failed, by the policy applied |
//! | `resilience_backend_up` | gauge | `name` | 1 while the backend (Redis) answers, 0 after a failed call |
//! | `resilience_bulkhead_decisions_total` | counter | `name`, `decision` = `accepted` \| `capacity_full` \| `queue_full` \| `wait_timeout` | admissions and rejections by reason |
//! | `resilience_bulkhead_active` | gauge | `name` | calls holding a slot |
//! | `resilience_bulkhead_queued` | gauge | `name` | calls waiting for a slot |
//! | `resilience_bulkhead_wait_duration_seconds` | histogram | `name` | time queued before a slot, for calls that waited |
//! | `resilience_retry_attempts_total` | counter | `name`, `result` = `success` \| `retry` \| `give_up` | attempts, by what followed: success, another attempt, or giving up |
//! | `resilience_timeout_total` | counter | `name` | calls cancelled at their time limit |
//! | `resilience_timeout_call_duration_seconds` | histogram | `name` | latency of calls that ended within their limit |
//! | `resilience_load_shed_decisions_total` | counter | `name`, `decision` = `accepted` \| `shed`, `priority` = `critical` \| `high` \| `normal` \| `low` | admissions and sheds by priority |
//! | `resilience_load_shed_active` | gauge | `name` | admitted requests still running |
//! | `resilience_backpressure_decisions_total` | counter | `name`, `decision` = `accepted` \| `rejected` | items admitted and rejected |
//! | `resilience_backpressure_active` | gauge | `name` | 1 while backpressure is on (above the high water mark, until the low one) |
//! | `resilience_adaptive_limit` | gauge | `name` | the current concurrency limit |
//! | `resilience_adaptive_decisions_total` | counter | `name`, `decision` = `accepted` \| `rejected` | admissions and rejections |
//! | `resilience_adaptive_latency_seconds` | histogram | `name` | latency samples fed to the limit algorithm (Vegas, Gradient2, custom ones; AIMD learns from outcomes alone and times no call) |
//! | `resilience_fallback_total` | counter | `name`, `result` = `triggered` \| `failed` | fallbacks run, and chains whose every fallback failed |
//! | `resilience_throttle_decisions_total` | counter | `name`, `decision` = `admitted` \| `throttled` | requests an adaptive throttle let through or dropped |
//!
//! [`METRICS`] lists the same names, help texts and types, for dashboards and tests.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! use metrics_util::debugging::DebuggingRecorder;
//! use resilience::CircuitBreaker;
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || {
//!     let breaker = CircuitBreaker::builder("payments").build().unwrap();
//!     breaker.trip();
//! });
//! let opened = snapshotter.snapshot().into_vec().into_iter().any(|(key, ..)| {
//!     key.key().name() == "resilience_circuit_breaker_transitions_total"
//!         && key.key().labels().any(|label| label.value() == "open")
//! });
//! assert!(opened);
//! # }
//! ```

#[cfg(feature = "metrics")]
mod on;
#[cfg(feature = "metrics")]
pub use on::{Counter, Gauge, Histogram};

#[cfg(not(feature = "metrics"))]
mod off;
#[cfg(not(feature = "metrics"))]
pub use off::{Counter, Gauge, Histogram};

/// Bucket bounds for every `_seconds` histogram, from 1 ms to 30 s: call latencies of a
/// service, as Prometheus client libraries default to, with a finer low end. Exporters
/// (`resilience-prometheus`, `resilience-opentelemetry`) configure their histograms with
/// these, so a dashboard's `histogram_quantile` reads the same buckets everywhere.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The type of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of observations (seconds).
    Histogram,
}

/// One metric of the table in the [module docs](self): its name, type, labels and help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// The Prometheus name, such as `resilience_circuit_breaker_calls_total`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricType,
    /// The labels besides `name`, each with a small fixed set of values.
    pub labels: &'static [&'static str],
    /// The help text exporters show (`# HELP`).
    pub help: &'static str,
}

macro_rules! metrics_table {
    ($($(#[$doc:meta])* $id:ident: $name:literal, $kind:ident, [$($label:literal),*], $help:literal;)*) => {
        $(
            $(#[$doc])*
            #[doc = concat!("`", $name, "`: ", $help)]
            pub const $id: Metric = Metric {
                name: $name,
                kind: MetricType::$kind,
                labels: &[$($label),*],
                help: $help,
            };
        )*
        /// Every metric this crate records, as in the table of the [module docs](self).
        pub const METRICS: &[Metric] = &[$($id),*];

        /// The metric of [`METRICS`] named `name`, if there is one.
        pub fn metric(name: &str) -> Option<&'static Metric> {
            METRICS.iter().find(|metric| metric.name == name)
        }
    };
}

metrics_table! {
    CIRCUIT_BREAKER_CALLS: "resilience_circuit_breaker_calls_total", Counter, ["outcome"],
        "Calls through a circuit breaker, by outcome.";
    CIRCUIT_BREAKER_STATE: "resilience_circuit_breaker_state", Gauge, ["state"],
        "1 for the circuit breaker's current state, 0 for the others.";
    CIRCUIT_BREAKER_TRANSITIONS: "resilience_circuit_breaker_transitions_total", Counter, ["from", "to"],
        "Circuit breaker state changes.";
    CIRCUIT_BREAKER_CALL_DURATION: "resilience_circuit_breaker_call_duration_seconds", Histogram, [],
        "Latency of calls through a circuit breaker that measures it.";
    RATE_LIMIT_DECISIONS: "resilience_rate_limit_decisions_total", Counter, ["decision"],
        "Rate-limit decisions.";
    BACKEND_ERRORS: "resilience_backend_errors_total", Counter, ["policy"],
        "Failed backend calls, by the failure policy applied.";
    BACKEND_UP: "resilience_backend_up", Gauge, [],
        "1 while the backend answers, 0 after a failed call.";
    BULKHEAD_DECISIONS: "resilience_bulkhead_decisions_total", Counter, ["decision"],
        "Bulkhead admissions and rejections by reason.";
    BULKHEAD_ACTIVE: "resilience_bulkhead_active", Gauge, [],
        "Calls holding a bulkhead slot.";
    BULKHEAD_QUEUED: "resilience_bulkhead_queued", Gauge, [],
        "Calls waiting for a bulkhead slot.";
    BULKHEAD_WAIT_DURATION: "resilience_bulkhead_wait_duration_seconds", Histogram, [],
        "Time queued before a bulkhead slot, for calls that waited.";
    RETRY_ATTEMPTS: "resilience_retry_attempts_total", Counter, ["result"],
        "Attempts, by what followed them.";
    TIMEOUTS: "resilience_timeout_total", Counter, [],
        "Calls cancelled at their time limit.";
    TIMEOUT_CALL_DURATION: "resilience_timeout_call_duration_seconds", Histogram, [],
        "Latency of calls that ended within their time limit.";
    LOAD_SHED_DECISIONS: "resilience_load_shed_decisions_total", Counter, ["decision", "priority"],
        "Load shedder admissions and sheds by priority.";
    LOAD_SHED_ACTIVE: "resilience_load_shed_active", Gauge, [],
        "Admitted requests still running.";
    BACKPRESSURE_DECISIONS: "resilience_backpressure_decisions_total", Counter, ["decision"],
        "Items admitted and rejected by a backpressure controller.";
    BACKPRESSURE_ACTIVE: "resilience_backpressure_active", Gauge, [],
        "1 while backpressure is on.";
    ADAPTIVE_LIMIT: "resilience_adaptive_limit", Gauge, [],
        "The adaptive limiter's current concurrency limit.";
    ADAPTIVE_DECISIONS: "resilience_adaptive_decisions_total", Counter, ["decision"],
        "Adaptive limiter admissions and rejections.";
    ADAPTIVE_LATENCY: "resilience_adaptive_latency_seconds", Histogram, [],
        "Latency samples fed to the adaptive limit algorithm.";
    FALLBACKS: "resilience_fallback_total", Counter, ["result"],
        "Fallbacks run, and chains whose every fallback failed.";
    THROTTLE_DECISIONS: "resilience_throttle_decisions_total", Counter, ["decision"],
        "Requests an adaptive throttle let through or dropped.";
}
