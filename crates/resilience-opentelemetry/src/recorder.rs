//! The `metrics` recorder that forwards to an OpenTelemetry [`Meter`].
//!
//! One OpenTelemetry instrument per metric name, built on first registration with the
//! description, unit and buckets of the core's table; one cell per registered key (name and
//! labels), kept by the handle the instance holds.
//!
//! Counters and gauges are *observable* instruments: a recording is one atomic operation on
//! the cell, and the meter reads every cell when it collects. That is also what makes the
//! gauges right: an instance moves `resilience_bulkhead_active` up and down from many threads,
//! and only the value at collection time matters, which a synchronous OpenTelemetry gauge fed
//! with "previous value ± 1" from racing threads would not reliably end on.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;
use resilience::telemetry::{self, SECONDS_BUCKETS};

/// A [`metrics::Recorder`] that records into an OpenTelemetry [`Meter`], under the names of
/// `resilience::telemetry`'s table.
///
/// Install it (or use it with `metrics::with_local_recorder`) **before** building instances:
/// each instance registers its handles once, when it is built. Clones share the instruments.
///
/// Metrics that are not `resilience`'s (the application's own, through the same facade) are
/// forwarded as well, with the help text given to `metrics::describe_*`.
#[derive(Clone)]
pub struct OpenTelemetryRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    meter: Meter,
    /// Registration only (once per instance and key), never on the recording path.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Help texts given to `describe_*` for names outside the core's table.
    descriptions: HashMap<KeyName, SharedString>,
    counters: HashMap<KeyName, Family<AtomicU64>>,
    gauges: HashMap<KeyName, Family<AtomicU64>>,
    histograms: HashMap<KeyName, opentelemetry::metrics::Histogram<f64>>,
    /// The handle of every key registered so far: two instances of the same name share their
    /// series, as they do under the Prometheus recorder.
    counter_handles: HashMap<Key, Arc<CounterCell>>,
    gauge_handles: HashMap<Key, Arc<GaugeCell>>,
    histogram_handles: HashMap<Key, Arc<HistogramCell>>,
}

/// The cells of one observable instrument, each with its attributes; the instrument's
/// callback reads them all.
type Cells<T> = Arc<Mutex<Vec<(Vec<KeyValue>, Arc<T>)>>>;

struct Family<T> {
    cells: Cells<T>,
}

impl OpenTelemetryRecorder {
    /// A recorder whose instruments belong to `meter` (for example
    /// `provider.meter("resilience")`).
    pub fn new(meter: Meter) -> Self {
        Self {
            inner: Arc::new(Inner {
                meter,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Installs this recorder as the process's global `metrics` recorder. Call it before
    /// building instances.
    ///
    /// # Errors
    ///
    /// If a global recorder is already installed.
    pub fn install(self) -> Result<(), metrics::SetRecorderError<Self>> {
        metrics::set_global_recorder(self)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for OpenTelemetryRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenTelemetryRecorder")
            .field("meter", &self.inner.meter)
            .finish_non_exhaustive()
    }
}

/// The help text of `name`: the core table's, else what `describe_*` said, else none.
fn description(state: &State, name: &KeyName) -> Option<SharedString> {
    match telemetry::metric(name.as_str()) {
        Some(metric) => Some(SharedString::const_str(metric.help)),
        None => state.descriptions.get(name).cloned(),
    }
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|label| KeyValue::new(label.key().to_owned(), label.value().to_owned()))
        .collect()
}

fn family<T: Send + Sync + 'static>(
    families: &mut HashMap<KeyName, Family<T>>,
    name: &KeyName,
    build: impl FnOnce(Cells<T>),
) -> Cells<T> {
    let family = families.entry(name.clone()).or_insert_with(|| {
        let cells: Cells<T> = Arc::default();
        build(Arc::clone(&cells));
        Family { cells }
    });
    Arc::clone(&family.cells)
}

/// Reads the cells for a collection. A poisoned lock still holds whole cells.
fn each<T>(cells: &Cells<T>, mut observe: impl FnMut(&T, &[KeyValue])) {
    let cells = cells.lock().unwrap_or_else(PoisonError::into_inner);
    for (attributes, cell) in cells.iter() {
        observe(cell, attributes);
    }
}

impl Recorder for OpenTelemetryRecorder {
    fn describe_counter(&self, name: KeyName, _: Option<Unit>, help: SharedString) {
        self.state().descriptions.insert(name, help);
    }

    fn describe_gauge(&self, name: KeyName, _: Option<Unit>, help: SharedString) {
        self.state().descriptions.insert(name, help);
    }

    fn describe_histogram(&self, name: KeyName, _: Option<Unit>, help: SharedString) {
        self.state().descriptions.insert(name, help);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut state = self.state();
        if let Some(cell) = state.counter_handles.get(key) {
            return Counter::from_arc(Arc::clone(cell));
        }
        let name = KeyName::from(key.name().to_owned());
        let help = description(&state, &name);
        let meter = &self.inner.meter;
        let cells = family(&mut state.counters, &name, |cells| {
            let mut builder = meter
                .u64_observable_counter(name.as_str().to_owned())
                .with_callback(move |observer| {
                    each(&cells, |value, attributes| {
                        observer.observe(value.load(Ordering::Relaxed), attributes);
                    });
                });
            if let Some(help) = help {
                builder = builder.with_description(help.into_owned());
            }
            builder.build();
        });
        let cell = Arc::new(CounterCell(Arc::new(AtomicU64::new(0))));
        cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((attributes(key), Arc::clone(&cell.0)));
        state.counter_handles.insert(key.clone(), Arc::clone(&cell));
        Counter::from_arc(cell)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut state = self.state();
        if let Some(cell) = state.gauge_handles.get(key) {
            return Gauge::from_arc(Arc::clone(cell));
        }
        let name = KeyName::from(key.name().to_owned());
        let help = description(&state, &name);
        let meter = &self.inner.meter;
        let cells = family(&mut state.gauges, &name, |cells| {
            let mut builder = meter
                .f64_observable_gauge(name.as_str().to_owned())
                .with_callback(move |observer| {
                    each(&cells, |bits, attributes| {
                        observer.observe(f64::from_bits(bits.load(Ordering::Relaxed)), attributes);
                    });
                });
            if let Some(help) = help {
                builder = builder.with_description(help.into_owned());
            }
            builder.build();
        });
        let cell = Arc::new(GaugeCell(Arc::new(AtomicU64::new(0f64.to_bits()))));
        cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((attributes(key), Arc::clone(&cell.0)));
        state.gauge_handles.insert(key.clone(), Arc::clone(&cell));
        Gauge::from_arc(cell)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut state = self.state();
        if let Some(cell) = state.histogram_handles.get(key) {
            return Histogram::from_arc(Arc::clone(cell));
        }
        let name = KeyName::from(key.name().to_owned());
        let help = description(&state, &name);
        let meter = &self.inner.meter;
        let histogram = state
            .histograms
            .entry(name.clone())
            .or_insert_with(|| {
                let mut builder = meter.f64_histogram(name.as_str().to_owned());
                if let Some(help) = help {
                    builder = builder.with_description(help.into_owned());
                }
                // The same rule as `resilience-prometheus`: `_seconds` histograms get the
                // core's buckets, so quantiles read alike from either exporter.
                if name.as_str().ends_with("_seconds") {
                    builder = builder
                        .with_unit("s")
                        .with_boundaries(SECONDS_BUCKETS.to_vec());
                }
                builder.build()
            })
            .clone();
        let cell = Arc::new(HistogramCell {
            histogram,
            attributes: attributes(key),
        });
        state
            .histogram_handles
            .insert(key.clone(), Arc::clone(&cell));
        Histogram::from_arc(cell)
    }
}

/// A counter's running total, read by the observable counter at collection.
struct CounterCell(Arc<AtomicU64>);

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        // A counter never goes down, even if told so.
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

/// A gauge's value as `f64` bits, read by the observable gauge at collection.
struct GaugeCell(Arc<AtomicU64>);

impl GaugeCell {
    fn update(&self, change: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(change(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.update(|current| current + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|current| current - value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// A histogram with the key's attributes, recorded synchronously (a distribution cannot be
/// observed after the fact).
struct HistogramCell {
    histogram: opentelemetry::metrics::Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        self.histogram.record(value, &self.attributes);
    }
}
