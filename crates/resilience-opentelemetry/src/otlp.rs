//! OTLP export (feature `otlp`): a meter provider that pushes to an OpenTelemetry collector.
//!
//! ```no_run
//! use std::time::Duration;
//! use opentelemetry::metrics::MeterProvider as _;
//! use resilience_opentelemetry::{otlp, OpenTelemetryRecorder};
//!
//! let provider = otlp::meter_provider("http://127.0.0.1:4318/v1/metrics", Duration::from_secs(10))?;
//! OpenTelemetryRecorder::new(provider.meter("resilience")).install()?;
//! // ... build the instances, run; before exiting:
//! provider.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

pub use opentelemetry_otlp::ExporterBuildError;
use opentelemetry_otlp::{MetricExporter, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

/// A meter provider that pushes every metric to `endpoint` (the full URL of a collector's
/// OTLP/HTTP metrics receiver, usually `http://<collector>:4318/v1/metrics`) as protobuf,
/// every `interval`, from a background thread, with cumulative temporality (the counters
/// are totals, as in Prometheus).
///
/// Call [`SdkMeterProvider::shutdown`] before the process exits, so the last values are sent.
///
/// # Errors
///
/// If the exporter cannot be built (for example an endpoint that is not a URL).
pub fn meter_provider(
    endpoint: &str,
    interval: Duration,
) -> Result<SdkMeterProvider, ExporterBuildError> {
    let exporter = MetricExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    Ok(SdkMeterProvider::builder().with_reader(reader).build())
}
