//! The layers in front of a real tonic server, called by a real tonic client on loopback:
//! refusals come back as gRPC statuses, with retry pushback where the client should wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::CircuitBreaker;
use resilience::rate_limit::DirectRateLimiter;
use resilience_http::{
    DeadlineLayer, DeadlinePropagation, HttpStageLayer, HttpTimeoutLayer, Reply, ResponseFactory,
    GRPC_RETRY_PUSHBACK_MS,
};
use tokio::net::TcpListener;
use tonic::transport::{Channel, Server};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Serves the health service behind `$layer` on a free loopback port; its address.
macro_rules! serve {
    ($layer:expr) => {{
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let layer = $layer;
        tokio::spawn(async move {
            Server::builder()
                .layer(layer)
                .add_service(health)
                .serve_with_incoming(incoming(listener))
                .await
                .unwrap();
        });
        addr
    }};
}

fn incoming(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

async fn client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

fn grpc() -> Reply {
    Reply::new().factory(ResponseFactory::grpc())
}

#[tokio::test]
async fn a_rate_limit_answers_resource_exhausted_with_pushback() {
    let limiter = DirectRateLimiter::builder("grpc")
        .rate("1/minute".parse().unwrap())
        .build()
        .unwrap();
    let addr = serve!(HttpStageLayer::new(limiter).reply(grpc()));
    let mut client = client(addr).await;
    client
        .check(check())
        .await
        .expect("the first call is served");
    let refused = client.check(check()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(refused.message(), "Rate limit exceeded");
    let pushback: u64 = refused
        .metadata()
        .get(GRPC_RETRY_PUSHBACK_MS.as_str())
        .expect("pushback")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pushback > 0 && pushback <= 60_000, "{pushback}");
}

#[tokio::test]
async fn an_open_circuit_answers_unavailable() {
    let breaker = CircuitBreaker::builder("grpc").build().unwrap();
    let addr = serve!(HttpStageLayer::new(breaker.clone()).reply(grpc()));
    let mut client = client(addr).await;
    client.check(check()).await.expect("closed: served");
    breaker.trip();
    let refused = client.check(check()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused
        .metadata()
        .get(GRPC_RETRY_PUSHBACK_MS.as_str())
        .is_some());
    breaker.reset();
    client.check(check()).await.expect("closed again: served");
}

#[tokio::test]
async fn a_spent_deadline_answers_deadline_exceeded() {
    let timeout = resilience::Timeout::builder("grpc")
        .limit(Duration::from_secs(10))
        .build()
        .unwrap();
    let layers = tower::ServiceBuilder::new()
        .layer(DeadlineLayer::new(DeadlinePropagation::new()))
        .layer(HttpTimeoutLayer::new(timeout).reply(grpc()))
        .into_inner();
    let addr = serve!(layers);
    let mut client = client(addr).await;
    let mut spent = tonic::Request::new(check());
    spent
        .metadata_mut()
        .insert("x-envoy-expected-rq-timeout-ms", "0".parse().unwrap());
    let refused = client.check(spent).await.unwrap_err();
    assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
    let mut ample = tonic::Request::new(check());
    ample
        .metadata_mut()
        .insert("x-envoy-expected-rq-timeout-ms", "5000".parse().unwrap());
    client.check(ample).await.expect("a budget left: served");
}

/// The pushback a refused gRPC call carries.
fn pushback(status: &tonic::Status) -> Option<Duration> {
    let millis = status
        .metadata()
        .get(GRPC_RETRY_PUSHBACK_MS.as_str())?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(millis))
}

#[tokio::test]
async fn a_client_retry_waits_out_the_servers_pushback() {
    let limiter = DirectRateLimiter::builder("grpc")
        .rate("2/second".parse().unwrap())
        .build()
        .unwrap();
    let addr = serve!(HttpStageLayer::new(limiter).reply(grpc()));
    let mut client = client(addr).await;
    // Spend the budget, so the next call is pushed back.
    while client.check(check()).await.is_ok() {}

    let retry = resilience::retry::Retry::builder("grpc-client")
        .max_attempts(5)
        .backoff(resilience::retry::Backoff::constant(Duration::from_millis(
            1,
        )))
        .build()
        .unwrap();
    let rules = resilience::retry::RetryRules::new()
        .retry_if(|status: &tonic::Status| {
            matches!(status.code(), Code::ResourceExhausted | Code::Unavailable)
        })
        .retry_after(|result| result.as_ref().err().and_then(pushback));
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let started = tokio::time::Instant::now();
    let answer = retry
        .call_with(&rules, || {
            let mut client = client.clone();
            let log = Arc::clone(&log);
            async move {
                let answer = client.check(check()).await;
                if let Err(status) = &answer {
                    log.lock()
                        .unwrap()
                        .push(pushback(status).expect("pushback"));
                }
                answer
            }
        })
        .await;
    assert!(answer.is_ok(), "{answer:?}");
    let asked = asked.lock().unwrap();
    assert!(!asked.is_empty(), "the first attempt was pushed back");
    // Every pushback was waited out before the next attempt: never earlier.
    let waited: Duration = asked.iter().sum();
    assert!(
        started.elapsed() >= waited,
        "{:?} < {waited:?}",
        started.elapsed()
    );
}
