//! OpenTelemetry for `resilience`: its metrics through an OpenTelemetry [`Meter`], and its
//! state changes as span events.
//!
//! # Metrics
//!
//! The core records through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`). [`OpenTelemetryRecorder`] is a facade recorder that forwards every series to
//! an OpenTelemetry meter, under **the same names, labels (as attributes) and help texts** as
//! the table in `resilience::telemetry`, so a dashboard or alert written for the Prometheus
//! exporter reads the same series from an OpenTelemetry pipeline. Counters become observable
//! counters, gauges observable gauges, and the `_seconds` histograms explicit-bucket
//! histograms with unit `s` and the core's [`SECONDS_BUCKETS`](resilience::telemetry::SECONDS_BUCKETS).
//!
//! Install the recorder **before** building instances: each instance registers its handles
//! once, when it is built. A counter or gauge update is then one atomic operation on the
//! instance's kept cell, read by the meter when it collects; a histogram observation is one
//! OpenTelemetry `record` with the instance's attributes, prepared at registration.
//!
//! ```
//! use opentelemetry::metrics::MeterProvider as _;
//! use opentelemetry_sdk::metrics::SdkMeterProvider;
//! use resilience::CircuitBreaker;
//! use resilience_opentelemetry::OpenTelemetryRecorder;
//!
//! let provider = SdkMeterProvider::builder().build(); // add your exporter's reader here
//! let recorder = OpenTelemetryRecorder::new(provider.meter("resilience"));
//! // `recorder.install()` for the whole process; here, for this closure only:
//! let breaker = metrics::with_local_recorder(&recorder, || {
//!     CircuitBreaker::builder("payments").build()
//! })?;
//! breaker.trip(); // resilience_circuit_breaker_transitions_total{name="payments",from="closed",to="open"}
//! # Ok::<(), resilience::ConfigError>(())
//! ```
//!
//! Why a recorder of our own rather than an existing bridge: the bridges on crates.io either
//! lag behind the OpenTelemetry release line (their `Meter` type is then not yours), or feed
//! up-and-down gauges into a synchronous OpenTelemetry gauge as "previous value ± 1" from
//! racing threads, which can settle on a wrong value. Reading an atomic at collection time is
//! both cheaper and exact.
//!
//! With feature `otlp`, [`otlp::meter_provider`] builds a meter provider that pushes to an
//! OpenTelemetry collector over OTLP/HTTP.
//!
//! # Span events
//!
//! The core reports state changes as [`tracing`](https://docs.rs/tracing) events at the moment
//! they happen, in the task that caused them (targets `resilience::<pattern>`): a circuit
//! opened (`breaker`, `from`, `open_for`, `trips`), half-open, closed (`from`) or forced;
//! backpressure on and off; an adaptive limit changed; a retry giving up. With
//! [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry)'s layer installed, each of
//! them becomes a **span event on the current span**: the request span of the call that
//! tripped the breaker shows "circuit opened", with its fields as attributes. Nothing in this
//! crate is needed for that:
//!
//! ```ignore
//! let tracer = tracer_provider.tracer("my-service");
//! tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(tracer))
//!     .init();
//! ```
//!
//! Why `tracing` events rather than `Span::add_event` on the OpenTelemetry context: a
//! service instrumented with `tracing` keeps its current span in `tracing`, and
//! `tracing-opentelemetry` does not make that span OpenTelemetry's current context, so an
//! event added through the OpenTelemetry API from inside the breaker would land on no span
//! (or on an unrelated one) for exactly those users; the `tracing` event lands on the span
//! they see. It also costs nothing without a subscriber, and the same events reach logs.
//!
//! # Features
//!
//! - `otlp`: [`otlp::meter_provider`], OTLP/HTTP (protobuf) export through
//!   `opentelemetry-otlp`.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
mod recorder;

pub use opentelemetry::metrics::Meter;
pub use recorder::OpenTelemetryRecorder;
