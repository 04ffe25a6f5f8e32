//! The OpenTelemetry SDK, with its in-memory exporter, receives the core's metrics under the
//! names, help texts and types of `resilience::telemetry`'s table.

use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use resilience::rate_limit::DirectRateLimiter;
use resilience::telemetry::{self, MetricType, SECONDS_BUCKETS};
use resilience::{Bulkhead, CircuitBreaker, Rate, Timeout};
use resilience_opentelemetry::OpenTelemetryRecorder;

/// What the SDK collected at a flush.
fn collect(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> ResourceMetrics {
    provider.force_flush().unwrap();
    let mut exported = exporter.get_finished_metrics().unwrap();
    exporter.reset();
    exported.pop().expect("one export after the flush")
}

fn all(collected: &ResourceMetrics) -> Vec<&Metric> {
    collected
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .collect()
}

fn has(attributes: &[&KeyValue], key: &str, value: &str) -> bool {
    attributes
        .iter()
        .any(|kv| kv.key.as_str() == key && kv.value.as_str() == value)
}

/// The value of the data point of `metric` whose attributes include every `(key, value)`.
fn point(metrics: &ResourceMetrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    let metric = all(metrics)
        .into_iter()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no metric {name}"));
    let matches = |attributes: Vec<&KeyValue>| labels.iter().all(|(k, v)| has(&attributes, k, v));
    let found = match metric.data() {
        AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
            .data_points()
            .find(|p| matches(p.attributes().collect()))
            .map(|p| p.value() as f64),
        AggregatedMetrics::F64(MetricData::Gauge(gauge)) => gauge
            .data_points()
            .find(|p| matches(p.attributes().collect()))
            .map(|p| p.value()),
        AggregatedMetrics::F64(MetricData::Histogram(histogram)) => histogram
            .data_points()
            .find(|p| matches(p.attributes().collect()))
            .map(|p| p.count() as f64),
        other => panic!("{name}: unexpected data {other:?}"),
    };
    found.unwrap_or_else(|| panic!("{name}: no point with {labels:?}"))
}

#[tokio::test]
async fn the_sdk_sees_the_breaker_open_and_the_limiter_reject_under_the_core_names() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let recorder = OpenTelemetryRecorder::new(provider.meter("resilience"));
    let (breaker, limiter, timeout, bulkhead) = metrics::with_local_recorder(&recorder, || {
        (
            CircuitBreaker::builder("payments")
                .failure_threshold(2)
                .build()
                .unwrap(),
            DirectRateLimiter::builder("partner")
                .rate(Rate::per_second(1))
                .build()
                .unwrap(),
            Timeout::builder("search")
                .limit(Duration::from_secs(5))
                .build()
                .unwrap(),
            Bulkhead::builder("db").max_concurrent(2).build().unwrap(),
        )
    });

    for _ in 0..2 {
        let _ = breaker.call(|| async { Err::<(), _>("down") }).await;
    }
    assert!(breaker.call(|| async { Ok::<_, &str>(()) }).await.is_err());
    for _ in 0..5 {
        let _ = limiter.try_acquire();
    }
    timeout.call(|| async { Ok::<_, ()>(()) }).await.unwrap();
    let held = bulkhead.try_acquire().unwrap();

    let metrics = collect(&provider, &exporter);
    let payments = ("name", "payments");
    assert_eq!(
        point(
            &metrics,
            "resilience_circuit_breaker_transitions_total",
            &[payments, ("from", "closed"), ("to", "open")]
        ),
        1.0
    );
    assert_eq!(
        point(
            &metrics,
            "resilience_circuit_breaker_state",
            &[payments, ("state", "open")]
        ),
        1.0
    );
    assert_eq!(
        point(
            &metrics,
            "resilience_circuit_breaker_state",
            &[payments, ("state", "closed")]
        ),
        0.0
    );
    assert_eq!(
        point(
            &metrics,
            "resilience_circuit_breaker_calls_total",
            &[payments, ("outcome", "rejected")]
        ),
        1.0
    );
    let partner = ("name", "partner");
    assert_eq!(
        point(
            &metrics,
            "resilience_rate_limit_decisions_total",
            &[partner, ("decision", "rejected")]
        ),
        4.0
    );
    assert_eq!(
        point(
            &metrics,
            "resilience_rate_limit_decisions_total",
            &[partner, ("decision", "allowed")]
        ),
        1.0
    );
    assert_eq!(
        point(&metrics, "resilience_bulkhead_active", &[("name", "db")]),
        1.0
    );
    assert_eq!(
        point(
            &metrics,
            "resilience_timeout_call_duration_seconds",
            &[("name", "search")]
        ),
        1.0
    );

    // Every name comes from the core's table, with its help text and type; histograms are
    // in seconds with the core's buckets.
    for metric in all(&metrics) {
        let row = telemetry::metric(metric.name())
            .unwrap_or_else(|| panic!("{} is not in the core's table", metric.name()));
        assert_eq!(metric.description(), row.help, "{}", row.name);
        match (row.kind, metric.data()) {
            (MetricType::Counter, AggregatedMetrics::U64(MetricData::Sum(sum))) => {
                assert!(sum.is_monotonic(), "{}", row.name);
            }
            (MetricType::Gauge, AggregatedMetrics::F64(MetricData::Gauge(_))) => {}
            (MetricType::Histogram, AggregatedMetrics::F64(MetricData::Histogram(h))) => {
                assert_eq!(metric.unit(), "s");
                for point in h.data_points() {
                    assert_eq!(point.bounds().collect::<Vec<_>>(), SECONDS_BUCKETS);
                }
            }
            (kind, data) => panic!("{}: a {kind:?} exported as {data:?}", row.name),
        }
    }

    // Gauges are read at collection: the slot released shows at the next one.
    drop(held);
    let metrics = collect(&provider, &exporter);
    assert_eq!(
        point(&metrics, "resilience_bulkhead_active", &[("name", "db")]),
        0.0
    );
}
