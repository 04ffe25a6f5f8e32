//! State changes reach OpenTelemetry spans: the core's `tracing` events, through
//! `tracing-opentelemetry`, are span events on the span of the call that caused them.
//!
//! One test in its own binary: `tracing` caches per call site whether anyone listens, and a
//! test elsewhere in the same process emitting the same events with no subscriber could race
//! that cache against this test's thread-local subscriber.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use resilience::CircuitBreaker;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn state_changes_are_events_on_the_span_of_the_call_that_caused_them() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _default = tracing::subscriber::set_default(subscriber);

    breaker_opening(&provider, &exporter).await;
    backpressure_switching_on(&provider, &exporter);
}

/// The breaker opening is an event on the request span of the call that tripped it.
async fn breaker_opening(provider: &SdkTracerProvider, exporter: &InMemorySpanExporter) {
    let breaker = CircuitBreaker::builder("payments")
        .failure_threshold(1)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    let _ = breaker
        .call(|| async { Err::<(), _>("down") })
        .instrument(tracing::info_span!("checkout"))
        .await;
    breaker.reset();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let checkout = spans
        .iter()
        .find(|span| span.name == "checkout")
        .expect("the request span");
    let opened = checkout
        .events
        .iter()
        .find(|event| event.name == "circuit opened")
        .unwrap_or_else(|| panic!("no state change event: {:?}", checkout.events.events));
    let attribute = |key: &str| {
        opened
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(attribute("breaker"), Some(Value::from("payments")));
    assert_eq!(attribute("from"), Some(Value::from("closed")));
    assert_eq!(
        attribute("trips").map(|v| v.as_str().into_owned()),
        Some("1".into())
    );
    // The reset happened outside any span: it is on no span at all, not on "checkout".
    assert!(checkout.events.iter().all(|e| e.name != "circuit reset"));
}

/// Backpressure switching on is an event on the span of the producer that crossed the mark.
fn backpressure_switching_on(provider: &SdkTracerProvider, exporter: &InMemorySpanExporter) {
    let backpressure = resilience::Backpressure::builder("jobs")
        .max_pending(4)
        .water_marks(2, 1)
        .build()
        .unwrap();
    let permits = tracing::info_span!("enqueue").in_scope(|| {
        (0..2)
            .map(|_| backpressure.try_acquire().unwrap())
            .collect::<Vec<_>>()
    });
    drop(permits);
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let enqueue = spans.iter().find(|span| span.name == "enqueue").unwrap();
    let on = enqueue
        .events
        .iter()
        .find(|event| event.name == "backpressure on")
        .unwrap_or_else(|| panic!("no backpressure event: {:?}", enqueue.events.events));
    assert!(on
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "controller" && kv.value.as_str() == "jobs"));
}
