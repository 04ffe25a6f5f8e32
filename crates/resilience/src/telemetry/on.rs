//! The handles with feature `metrics`: one kept `metrics` handle each, registered once.

use std::sync::Arc;

use ::metrics::{Key, Label, Level, Metadata, SharedString};

use super::Metric;

/// What every registration reports as its origin; exporters may ignore it.
static METADATA: Metadata<'static> = Metadata::new("resilience", Level::INFO, Some("resilience"));

/// The key `metric{name="<instance>", labels...}`. Built once per handle, when the instance
/// is built: the per-call path never builds a key, hashes a label or looks anything up.
fn key(metric: &Metric, instance: &Arc<str>, labels: &[(&'static str, &'static str)]) -> Key {
    let mut all = Vec::with_capacity(labels.len() + 1);
    all.push(Label::new("name", SharedString::from(Arc::clone(instance))));
    all.extend(
        labels
            .iter()
            .map(|&(label, value)| Label::from_static_parts(label, value)),
    );
    Key::from_parts(metric.name, all)
}

/// A handle type over one `metrics` handle, and its `register`: the key built once, the
/// metric described and the handle registered with the installed recorder.
macro_rules! handle {
    ($(#[$doc:meta])* $name:ident($inner:ty), $describe:ident, $register:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name($inner);

        impl $name {
            /// Registers `metric{name="<instance>", labels...}` with the installed recorder,
            /// once. With no recorder installed yet, the handle records nothing, ever:
            /// install the recorder before building instances.
            pub fn register(
                metric: &Metric,
                instance: &Arc<str>,
                labels: &[(&'static str, &'static str)],
            ) -> Self {
                let key = key(metric, instance, labels);
                Self(::metrics::with_recorder(|recorder| {
                    recorder.$describe(metric.name.into(), None, metric.help.into());
                    recorder.$register(&key, &METADATA)
                }))
            }
        }
    };
}

handle!(
    /// A monotonic count, such as `resilience_circuit_breaker_calls_total`.
    Counter(::metrics::Counter), describe_counter, register_counter
);
handle!(
    /// A value that goes up and down, such as `resilience_bulkhead_active`.
    Gauge(::metrics::Gauge), describe_gauge, register_gauge
);
handle!(
    /// A distribution of durations in seconds, such as
    /// `resilience_timeout_call_duration_seconds`.
    Histogram(::metrics::Histogram), describe_histogram, register_histogram
);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        self.0.increment(1);
    }
}

impl Gauge {
    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        self.0.increment(1.0);
    }

    /// Takes one away.
    #[inline]
    pub fn decrement(&self) {
        self.0.decrement(1.0);
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, value: f64) {
        self.0.set(value);
    }
}

impl Histogram {
    /// Records one duration, in seconds.
    #[inline]
    pub fn record(&self, duration: std::time::Duration) {
        self.0.record(duration.as_secs_f64());
    }
}
