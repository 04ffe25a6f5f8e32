//! A deadline crossing from HTTP into gRPC on loopback: a real axum service B, called with a
//! budget, calls a real tonic service C through `DeadlinePropagation` as a client interceptor.
//! C sees what B had left less the margin in `grpc-timeout`; once B's budget is spent the
//! call is not sent and B sees `DEADLINE_EXCEEDED`.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::Router;
use common::{client, Server};
use resilience::timeout::Deadline;
use resilience_http::{
    parse_grpc_timeout, DeadlineLayer, DeadlinePropagation, EXPECTED_TIMEOUT_MS,
};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const MARGIN: Duration = Duration::from_millis(50);

/// The `grpc-timeout` of every call C received (`None`: the call carried none).
type Seen = Arc<Mutex<Vec<Option<Duration>>>>;

/// C: tonic's health service, recording each call's `grpc-timeout`.
async fn grpc_service() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let record = Arc::clone(&seen);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let recorder =
        tower::util::MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
            let timeout = request
                .headers()
                .get("grpc-timeout")
                .and_then(|value| parse_grpc_timeout(value.to_str().ok()?));
            record.lock().unwrap().push(timeout);
            request
        });
    let incoming = tokio_stream_from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(recorder)
            .add_service(health)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (addr, seen)
}

fn tokio_stream_from(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

/// B: works `?sleep=ms`, then calls C with the deadline interceptor; answers with the gRPC
/// code C's call ended with ("Ok" when served).
async fn http_service(grpc: SocketAddr) -> Server {
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(
                |State(channel): State<Channel>, RawQuery(query): RawQuery| async move {
                    let sleep = query
                        .as_deref()
                        .and_then(|query| query.strip_prefix("sleep="))
                        .map_or(0, |ms| ms.parse().expect("milliseconds"));
                    tokio::time::sleep(Duration::from_millis(sleep)).await;
                    let mut health = HealthClient::with_interceptor(
                        channel,
                        DeadlinePropagation::new().margin(MARGIN),
                    );
                    let call = HealthCheckRequest {
                        service: String::new(),
                    };
                    match health.check(call).await {
                        Ok(_) => "Ok".to_owned(),
                        Err(status) => format!("{:?}", status.code()),
                    }
                },
            ),
        )
        .with_state(channel)
        .layer(DeadlineLayer::new(DeadlinePropagation::new()));
    Server::start(app).await
}

async fn call_b(b: &Server, budget_ms: u64, sleep_ms: u64) -> String {
    client()
        .get(format!("{}?sleep={sleep_ms}", b.url("/")))
        .header(EXPECTED_TIMEOUT_MS.as_str(), budget_ms.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_grpc_call_carries_what_is_left_less_the_margin() {
    let (grpc, seen) = grpc_service().await;
    let b = http_service(grpc).await;

    assert_eq!(call_b(&b, 5_000, 100).await, "Ok");
    let seen = seen.lock().unwrap().clone();
    let [Some(budget)] = seen[..] else {
        panic!("one call with a budget, got {seen:?}");
    };
    // B had 5 s on arrival and worked 100 ms: C gets less than 5 s - 100 ms - margin.
    assert!(budget > Duration::ZERO, "{budget:?}");
    assert!(
        budget <= Duration::from_millis(5_000 - 100) - MARGIN,
        "{budget:?}"
    );
}

#[tokio::test]
async fn a_spent_deadline_sends_nothing_and_fails_with_deadline_exceeded() {
    let (grpc, seen) = grpc_service().await;
    let b = http_service(grpc).await;

    // 60 ms of budget, 100 ms of work first: nothing is left for C.
    assert_eq!(call_b(&b, 60, 100).await, "DeadlineExceeded");
    assert!(seen.lock().unwrap().is_empty(), "nothing reached C");

    // Outside any deadline the call goes out with no timeout of its own.
    let mut health = HealthClient::with_interceptor(
        Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
        DeadlinePropagation::new(),
    );
    let call = HealthCheckRequest {
        service: String::new(),
    };
    health.check(call).await.expect("served");
    assert_eq!(seen.lock().unwrap()[..], [None]);
    assert!(Deadline::current().is_none());
}

#[tokio::test]
async fn a_shorter_timeout_set_by_the_caller_is_kept() {
    let (grpc, seen) = grpc_service().await;
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::with_interceptor(channel, DeadlinePropagation::new());
    Deadline::after(Duration::from_secs(30))
        .scope(async {
            let mut short = tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            });
            short.set_timeout(Duration::from_secs(2));
            health.check(short).await.expect("served");
            let long = tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            });
            health.check(long).await.expect("served");
        })
        .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], Some(Duration::from_secs(2)), "the caller's own");
    let deadline = seen[1].expect("the deadline's");
    assert!(
        deadline > Duration::from_secs(2) && deadline <= Duration::from_secs(30),
        "{deadline:?}"
    );
}
