//! Feature `metrics`: what recording costs per event, against a kept `metrics::Counter` handle
//! in the same run.
//!
//! ```text
//! cargo bench -p resilience-benches --bench metrics -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Groups (each starts with `floor_atomic`, one uncontended `AtomicU64::fetch_add`):
//!
//! * `metrics/record`: one recorded event. `kept_handle` is `metrics::Counter::increment` on a
//!   handle registered once with the Prometheus recorder (the issue's 10 ns figure);
//!   `ours_counter` and `ours_gauge` are this crate's handles registered with the same
//!   recorder; `ours_no_recorder` is a handle registered while no recorder was installed;
//!   `lookup_per_call` is `metrics::counter!` with a label, looked up on every call (what
//!   handles avoid).
//! * `metrics/opentelemetry`: the same handles registered with `resilience-opentelemetry`'s
//!   recorder on an SDK meter provider (its reader never collects during the run): a
//!   counter event, a gauge up and down, a histogram observation; and, for comparison, a
//!   histogram observation into the Prometheus recorder.
//! * `metrics/pattern`: whole calls with a recorder installed and without one: a closed
//!   breaker's successful call (one counter), a rate limiter's decision (one counter), a
//!   bulkhead's call (a counter and the active gauge up and down). The difference between the
//!   two entries of a pair is what the metrics add to that call.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use resilience::rate_limit::DirectRateLimiter;
use resilience::telemetry::{self, Counter, Gauge, Histogram};
use resilience::{Bulkhead, CircuitBreaker, Rate};
use resilience_benches::{floor, poll_once};

fn prometheus() -> PrometheusRecorder {
    PrometheusBuilder::new().build_recorder()
}

fn record(c: &mut Criterion) {
    let recorder = prometheus();
    let name: Arc<str> = Arc::from("bench");
    let metadata = Metadata::new("bench", Level::INFO, None);
    let key = Key::from_parts(
        "bench_kept_total",
        vec![
            Label::new("name", "bench"),
            Label::new("outcome", "success"),
        ],
    );
    let kept = recorder.register_counter(&key, &metadata);
    let (ours, gauge) = metrics::with_local_recorder(&recorder, || {
        (
            Counter::register(
                &telemetry::CIRCUIT_BREAKER_CALLS,
                &name,
                &[("outcome", "success")],
            ),
            Gauge::register(&telemetry::BULKHEAD_ACTIVE, &name, &[]),
        )
    });
    let unrecorded = Counter::register(&telemetry::CIRCUIT_BREAKER_CALLS, &name, &[]);

    let mut group = c.benchmark_group("metrics/record");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    group.bench_function("kept_handle", |b| b.iter(|| black_box(&kept).increment(1)));
    group.bench_function("ours_counter", |b| b.iter(|| black_box(&ours).increment()));
    group.bench_function("ours_gauge", |b| {
        b.iter(|| {
            black_box(&gauge).increment();
            black_box(&gauge).decrement();
        })
    });
    group.bench_function("ours_no_recorder", |b| {
        b.iter(|| black_box(&unrecorded).increment())
    });
    metrics::with_local_recorder(&recorder, || {
        group.bench_function("lookup_per_call", |b| {
            b.iter(|| metrics::counter!("bench_lookup_total", "name" => "bench").increment(1))
        });
    });
    group.finish();
}

fn opentelemetry(c: &mut Criterion) {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    // A reader that never collects during the run: only the recording is measured.
    let reader = PeriodicReader::builder(InMemoryMetricExporter::default())
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let otel = resilience_opentelemetry::OpenTelemetryRecorder::new(provider.meter("bench"));
    let prometheus = resilience_prometheus_like();
    let name: Arc<str> = Arc::from("bench");
    let handles = || {
        (
            Counter::register(
                &telemetry::CIRCUIT_BREAKER_CALLS,
                &name,
                &[("outcome", "success")],
            ),
            Gauge::register(&telemetry::BULKHEAD_ACTIVE, &name, &[]),
            Histogram::register(&telemetry::TIMEOUT_CALL_DURATION, &name, &[]),
        )
    };
    let (counter, gauge, histogram) = metrics::with_local_recorder(&otel, handles);
    let (.., prometheus_histogram) = metrics::with_local_recorder(&prometheus, handles);
    let latency = Duration::from_micros(1500);

    let mut group = c.benchmark_group("metrics/opentelemetry");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    group.bench_function("counter", |b| b.iter(|| black_box(&counter).increment()));
    group.bench_function("gauge", |b| {
        b.iter(|| {
            black_box(&gauge).increment();
            black_box(&gauge).decrement();
        })
    });
    group.bench_function("histogram", |b| {
        b.iter(|| black_box(&histogram).record(black_box(latency)))
    });
    group.bench_function("histogram_prometheus", |b| {
        b.iter(|| black_box(&prometheus_histogram).record(black_box(latency)))
    });
    group.finish();
}

/// The Prometheus recorder with the same buckets as `resilience-prometheus`.
fn resilience_prometheus_like() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            telemetry::SECONDS_BUCKETS,
        )
        .unwrap()
        .build_recorder()
}

fn pattern(c: &mut Criterion) {
    let recorder = prometheus();
    let build = || {
        (
            CircuitBreaker::builder("bench").build().unwrap(),
            DirectRateLimiter::builder("bench")
                .rate(Rate::per_second(1_000_000_000))
                .build()
                .unwrap(),
            Bulkhead::builder("bench")
                .max_concurrent(4)
                .build()
                .unwrap(),
        )
    };
    let recorded = metrics::with_local_recorder(&recorder, build);
    let silent = build();

    let mut group = c.benchmark_group("metrics/pattern");
    group.throughput(Throughput::Elements(1));
    floor(&mut group);
    for (label, (breaker, limiter, bulkhead)) in [("recorder", &recorded), ("no_recorder", &silent)]
    {
        group.bench_function(format!("breaker_call/{label}"), |b| {
            b.iter(|| poll_once(breaker.call(|| async { Ok::<_, ()>(black_box(1)) })))
        });
        group.bench_function(format!("rate_limit_check/{label}"), |b| {
            b.iter(|| black_box(limiter.check_now()))
        });
        group.bench_function(format!("bulkhead_call/{label}"), |b| {
            b.iter(|| poll_once(bulkhead.call(|| async { Ok::<_, ()>(black_box(1)) })))
        });
    }
    group.finish();
}

criterion_group!(benches, record, opentelemetry, pattern);
criterion_main!(benches);
