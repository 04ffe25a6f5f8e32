//! Feature `otlp`: the meter provider pushes the core's metrics over OTLP/HTTP to a real
//! HTTP receiver on loopback, which decodes them with the protocol's own protobuf messages.
#![cfg(feature = "otlp")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use prost::Message;
use resilience::CircuitBreaker;
use resilience_opentelemetry::{otlp, OpenTelemetryRecorder};

/// One received request: its path, content type and body.
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal OTLP/HTTP receiver on a free loopback port: answers 200 to every request and
/// hands each one to the returned channel.
fn receiver() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let (mut length, mut content_type) = (0, String::new());
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or_default();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "content-type" => value.trim().clone_into(&mut content_type),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
            let _ = sender.send(Received {
                path,
                content_type,
                body,
            });
        }
    });
    (format!("http://{address}/v1/metrics"), received)
}

#[test]
fn the_otlp_provider_pushes_the_core_metrics_to_a_collector() {
    let (endpoint, received) = receiver();
    // An interval that never elapses during the test: the flush below sends.
    let provider = otlp::meter_provider(&endpoint, Duration::from_secs(3600)).unwrap();
    let recorder = OpenTelemetryRecorder::new(provider.meter("resilience"));
    let breaker =
        metrics::with_local_recorder(&recorder, || CircuitBreaker::builder("payments").build())
            .unwrap();
    breaker.trip();
    provider.force_flush().unwrap();

    let request = received
        .recv_timeout(Duration::from_secs(30))
        .expect("the exporter sent a request");
    assert_eq!(request.path, "/v1/metrics");
    assert_eq!(request.content_type, "application/x-protobuf");
    let export = ExportMetricsServiceRequest::decode(request.body.as_slice()).unwrap();
    let metric = export
        .resource_metrics
        .iter()
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .find(|metric| metric.name == "resilience_circuit_breaker_transitions_total")
        .expect("the transitions counter");
    assert_eq!(metric.description, "Circuit breaker state changes.");
    let Some(Data::Sum(sum)) = &metric.data else {
        panic!("not a sum: {metric:?}");
    };
    assert!(sum.is_monotonic);
    let attribute = |point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
                     key: &str| {
        point
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.clone())
    };
    let opened = sum
        .data_points
        .iter()
        .find(|point| {
            attribute(point, "name") == Some(AnyValue::StringValue("payments".into()))
                && attribute(point, "from") == Some(AnyValue::StringValue("closed".into()))
                && attribute(point, "to") == Some(AnyValue::StringValue("open".into()))
        })
        .expect("the closed -> open series");
    assert_eq!(opened.value, Some(Value::AsInt(1)));
    provider.shutdown().unwrap();
}
