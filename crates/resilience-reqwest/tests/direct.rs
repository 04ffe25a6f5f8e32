//! The stack sent directly (`SendWith::send_with`, `ResilientMiddleware::execute`), without
//! `reqwest-middleware`, over real sockets: axum servers on 127.0.0.1 and the real reqwest
//! client.
//!
//! Real time (a paused clock would jump ahead while sockets are idle), so every assertion is
//! on counts, orderings and the delays the retry policy computed, never on timing luck; the
//! only wall-clock bounds are lower bounds.

use std::time::Duration;

use resilience::circuit_breaker::{CircuitState, KeyedCircuitBreaker};
use resilience::hedge::Hedge;
use resilience::{Bulkhead, RejectionReason, Timeout};
use resilience_reqwest::{Attempts, ClientError, ResilientMiddleware, SendWith};
use resilience_testkit::EventRecorder;

mod common;
use common::{attempts, retry, status, streaming_body, Answer, Server};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_503_then_200_is_retried_once() {
    let server = Server::start([status(503)]).await;
    let policy = retry("once", 3);
    let events = EventRecorder::attach(policy.events());
    let stack = ResilientMiddleware::builder()
        .retry(policy)
        .build()
        .unwrap();

    let response = client().get(server.url()).send_with(&stack).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(2)));
    assert_eq!(server.hits(), 2);
    assert_eq!(events.names(), ["retry_attempt", "retry_success"]);
}

#[tokio::test]
async fn execute_sends_a_built_request_and_the_last_answer_comes_back() {
    let server = Server::start_with([], status(502)).await;
    let stack = ResilientMiddleware::builder()
        .retry(retry("out", 3))
        .build()
        .unwrap();
    let client = client();
    let request = client.get(server.url()).build().unwrap();

    let response = stack.execute(&client, request).await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(3)));
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let server = Server::start([Answer(429, Some("1"), Duration::ZERO)]).await;
    let policy = retry("after", 3);
    let events = EventRecorder::attach(policy.events());
    let stack = ResilientMiddleware::builder()
        .retry(policy)
        .build()
        .unwrap();

    let started = tokio::time::Instant::now();
    let response = client().get(server.url()).send_with(&stack).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.hits(), 2);
    // The policy's own wait was 10 ms; the server asked for 1 s, and got it.
    assert_eq!(attempts(&events), [Duration::from_secs(1)]);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_breaker_per_host_rejects_without_reaching_the_failing_host() {
    let failing = Server::start_with([], status(500)).await;
    let healthy = Server::start([]).await;
    let breakers = KeyedCircuitBreaker::builder("hosts")
        .failure_threshold(2)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    // With retries: every attempt takes its own permit of the host's breaker.
    let stack = ResilientMiddleware::builder()
        .retry(retry("hosts", 3))
        .breaker_per_host(breakers.clone())
        .build()
        .unwrap();
    let client = client();

    for _ in 0..2 {
        let response = client.get(failing.url()).send_with(&stack).await.unwrap();
        assert_eq!(response.status(), 500, "a 500 is not retried");
    }
    let error = client
        .get(failing.url())
        .send_with(&stack)
        .await
        .unwrap_err();
    let ClientError::Rejected(rejection) = &error else {
        panic!("expected a rejection, got {error:?}");
    };
    assert_eq!(rejection.reason(), RejectionReason::CircuitOpen);
    assert_eq!(error.attempts(), 0);
    assert_eq!(
        failing.hits(),
        2,
        "the rejected request never reached the host"
    );

    let response = client.get(healthy.url()).send_with(&stack).await.unwrap();
    assert_eq!(response.status(), 200, "the other host is still served");
    assert_eq!(
        breakers.get(&failing.origin()).unwrap().state(),
        CircuitState::Open
    );
    assert_eq!(
        breakers.get(&healthy.origin()).unwrap().state(),
        CircuitState::Closed
    );
    assert_eq!(breakers.len(), 2);
}

#[tokio::test]
async fn a_streaming_body_is_refused_before_sending_when_it_could_be_retried() {
    let server = Server::start([]).await;
    let stack = ResilientMiddleware::builder()
        .retry(retry("stream", 3))
        .build()
        .unwrap();
    let client = client();

    let error = client
        .put(server.url())
        .body(streaming_body())
        .send_with(&stack)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::BodyNotCloneable { method, .. } if method == reqwest::Method::PUT),
        "{error:?}"
    );
    assert_eq!(server.hits(), 0);

    // A POST without an idempotency key is never retried: sent as usual.
    let response = client
        .post(server.url())
        .body(streaming_body())
        .send_with(&stack)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_connect_error_is_retried_and_flattened() {
    // A port bound but not listening: connections are refused, and no other test can take
    // the port while the socket lives.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = socket.local_addr().unwrap();
    let stack = ResilientMiddleware::builder()
        .retry(retry("connect", 3))
        .build()
        .unwrap();

    let error = client()
        .get(format!("http://{closed}/"))
        .send_with(&stack)
        .await
        .unwrap_err();
    let ClientError::RetryExhausted { attempts, last } = &error else {
        panic!("expected exhausted retries, got {error:?}");
    };
    assert_eq!(*attempts, 3);
    assert!(matches!(**last, ClientError::Request(_)));
    assert!(error.is_connect());
}

#[tokio::test]
async fn an_attempt_without_an_answer_in_time_times_out() {
    let server = Server::start([Answer(200, None, Duration::from_secs(5))]).await;
    let stack = ResilientMiddleware::builder()
        .timeout(Timeout::new(Duration::from_millis(100)).unwrap())
        .build()
        .unwrap();

    let error = client()
        .get(server.url())
        .send_with(&stack)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Timeout { limit, .. } if limit == Duration::from_millis(100)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_request_that_cannot_be_built_is_not_sent() {
    let stack = ResilientMiddleware::builder().build().unwrap();
    let error = client()
        .get("http://127.0.0.1:1/")
        .header("bad\nname", "value")
        .send_with(&stack)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Request(error) if error.is_builder()),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_slow_attempt_is_hedged_and_the_loser_dropped() {
    // The first request would answer 201 after a minute; every later one 200 at once.
    let server = Server::start([Answer(201, None, Duration::from_secs(60))]).await;
    let slots = Bulkhead::builder("attempts")
        .max_concurrent(2)
        .build()
        .unwrap();
    let stack = ResilientMiddleware::builder()
        .hedge(
            Hedge::builder("hedged")
                .max_hedged_attempts(1)
                .no_budget()
                .delay(Duration::from_millis(50))
                .build()
                .unwrap(),
        )
        .stage(slots.clone())
        .build()
        .unwrap();

    let response = client().get(server.url()).send_with(&stack).await.unwrap();
    assert_eq!(response.status(), 200, "the hedged copy's answer");
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(2)));
    assert_eq!(server.hits(), 2);
    assert_eq!(slots.active(), 0, "the slow attempt was cancelled");
}
