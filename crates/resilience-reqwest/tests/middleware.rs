//! The middleware over real sockets: axum servers on 127.0.0.1 and the real reqwest client.
//!
//! Real time (a paused clock would jump ahead while sockets are idle), so every assertion is
//! on counts, orderings and the delays the retry policy computed, never on timing luck; the
//! only wall-clock bounds are lower bounds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use reqwest_middleware::ClientWithMiddleware;
use resilience::circuit_breaker::{CircuitState, KeyedCircuitBreaker};
use resilience::hedge::Hedge;
use resilience::rate_limit::DirectRateLimiter;
use resilience::retry::Backoff;
use resilience::{Bulkhead, Rate, RejectionReason, Retry, Timeout};
use resilience_reqwest::{Attempts, ClientError, ResilientMiddleware, ResilientMiddlewareBuilder};
use resilience_testkit::EventRecorder;
use tokio::net::TcpListener;

mod common;
use common::{attempts, retry, status, streaming_body, Answer, Server};

fn client<S>(middleware: ResilientMiddleware<S>) -> ClientWithMiddleware
where
    S: resilience::stage::Stage + 'static,
{
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    reqwest_middleware::ClientBuilder::new(client)
        .with(middleware)
        .build()
}

fn with_retry(retry: Retry) -> ResilientMiddlewareBuilder {
    ResilientMiddleware::builder().retry(retry)
}

#[tokio::test]
async fn a_503_then_200_is_retried_once() {
    let server = Server::start([status(503)]).await;
    let policy = retry("once", 3);
    let events = EventRecorder::attach(policy.events());
    let client = client(with_retry(policy).build().unwrap());

    let response = client.get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(2)));
    assert_eq!(server.hits(), 2);
    assert_eq!(events.names(), ["retry_attempt", "retry_success"]);
}

#[tokio::test]
async fn the_last_answer_comes_back_when_retries_run_out() {
    let server = Server::start_with([], status(502)).await;
    let client = client(with_retry(retry("out", 3)).build().unwrap());
    let response = client.get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(3)));
    assert_eq!(response.text().await.unwrap(), "answer");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let server = Server::start([Answer(429, Some("1"), Duration::ZERO)]).await;
    let policy = retry("after", 3);
    let events = EventRecorder::attach(policy.events());
    let client = client(with_retry(policy).build().unwrap());

    let started = tokio::time::Instant::now();
    let response = client.get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.hits(), 2);
    // The policy's own wait was 10 ms; the server asked for 1 s, and got it.
    assert_eq!(attempts(&events), [Duration::from_secs(1)]);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    // A date in the past: "now", so the policy's own 10 ms wait stands.
    let server = Server::start([Answer(
        503,
        Some("Sun, 06 Nov 1994 08:49:37 GMT"),
        Duration::ZERO,
    )])
    .await;
    let policy = retry("date", 3);
    let events = EventRecorder::attach(policy.events());
    let client = client(with_retry(policy).build().unwrap());
    assert_eq!(client.get(server.url()).send().await.unwrap().status(), 200);
    assert_eq!(attempts(&events), [Duration::from_millis(10)]);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_ends_the_retrying() {
    let server = Server::start([Answer(429, Some("120"), Duration::ZERO)]).await;
    let middleware = with_retry(retry("cap", 3))
        .max_retry_after(Duration::from_secs(60))
        .build()
        .unwrap();
    let response = client(middleware).get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "120");
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn post_is_retried_only_with_an_idempotency_key() {
    let server = Server::start([status(503), status(503)]).await;
    let client = client(with_retry(retry("post", 3)).build().unwrap());

    let response = client
        .post(server.url())
        .body("order")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "a plain POST is sent once");
    assert_eq!(server.hits(), 1);

    let response = client
        .post(server.url())
        .header("Idempotency-Key", "order-42")
        .body("order")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.hits(), 3);
}

/// Every attempt reaches the server as the same request: method, path and query, headers,
/// body; a request's own timeout holds for every attempt.
#[tokio::test]
async fn every_attempt_sends_the_same_request() {
    type Seen = (String, String, Option<String>, Vec<String>, bytes::Bytes);
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let record = Arc::clone(&seen);
    let app = Router::new().fallback(move |request: axum::extract::Request| {
        let record = Arc::clone(&record);
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1024).await.unwrap();
            let header = |name: &str| {
                parts
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|value| value.to_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            let seen = (
                parts.method.to_string(),
                parts.uri.to_string(),
                header("idempotency-key").pop(),
                header("x-tag"),
                body,
            );
            // The first two answer 503; later ones are slow: only the request's own timeout
            // cuts them.
            let (status, delay) = {
                let mut record = record.lock().unwrap();
                record.push(seen);
                if record.len() <= 2 {
                    (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO)
                } else {
                    (StatusCode::OK, Duration::from_secs(5))
                }
            };
            tokio::time::sleep(delay).await;
            status
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client(with_retry(retry("same", 4)).build().unwrap());
    let url = format!("http://{addr}/orders?batch=7");
    // Without a body (copied by hand) and with one (copied by reqwest).
    for (request, body) in [
        (client.put(&url), ""),
        (client.post(&url).body("order"), "order"),
    ] {
        let error = request
            .header("Idempotency-Key", "order-42")
            .header("x-tag", "a")
            .header("x-tag", "b")
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .unwrap_err();
        let error = ClientError::from(error);
        assert!(error.is_timeout(), "{error:?}");
        assert_eq!(error.attempts(), 4, "{error:?}");
        let mut seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        for request in seen.drain(..) {
            assert_eq!(
                request,
                (
                    if body.is_empty() { "PUT" } else { "POST" }.to_owned(),
                    "/orders?batch=7".to_owned(),
                    Some("order-42".to_owned()),
                    vec!["a".to_owned(), "b".to_owned()],
                    bytes::Bytes::from_static(body.as_bytes()),
                )
            );
        }
    }
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
    let middleware = ResilientMiddleware::builder()
        .breaker_per_host(breakers.clone())
        .build()
        .unwrap();
    let client = client(middleware);

    for _ in 0..2 {
        assert_eq!(
            client.get(failing.url()).send().await.unwrap().status(),
            500
        );
    }
    let error = ClientError::from(client.get(failing.url()).send().await.unwrap_err());
    let ClientError::Rejected(rejection) = &error else {
        panic!("expected a rejection, got {error:?}");
    };
    assert_eq!(rejection.reason(), RejectionReason::CircuitOpen);
    assert!(rejection.retry_after().is_some());
    assert_eq!(
        failing.hits(),
        2,
        "the rejected request never reached the host"
    );

    assert_eq!(
        client.get(healthy.url()).send().await.unwrap().status(),
        200
    );
    assert_eq!(healthy.hits(), 1);
    let open = breakers.get(&failing.origin()).unwrap();
    assert_eq!(open.state(), CircuitState::Open);
    assert_eq!(
        breakers.get(&healthy.origin()).unwrap().state(),
        CircuitState::Closed
    );
}

#[tokio::test]
async fn breaker_rejections_end_the_retrying() {
    let failing = Server::start_with([], status(503)).await;
    let breakers = KeyedCircuitBreaker::builder("hosts")
        .failure_threshold(2)
        .build()
        .unwrap();
    let middleware = with_retry(retry("breaker", 5))
        .breaker_per_host(breakers)
        .build()
        .unwrap();
    let error = ClientError::from(
        client(middleware)
            .get(failing.url())
            .send()
            .await
            .unwrap_err(),
    );
    assert!(error.is_rejected(), "{error:?}");
    assert_eq!(failing.hits(), 2);
}

#[tokio::test]
async fn idle_breakers_are_evicted_only_when_closed() {
    let failing = Server::start_with([], status(500)).await;
    let other = Server::start([]).await;
    let breakers = KeyedCircuitBreaker::builder("hosts")
        .failure_threshold(1)
        .max_keys(1)
        .idle_after(Duration::from_millis(1))
        .build()
        .unwrap();
    let middleware = ResilientMiddleware::builder()
        .breaker_per_host(breakers.clone())
        .build()
        .unwrap();
    let client = client(middleware);

    assert_eq!(
        client.get(failing.url()).send().await.unwrap().status(),
        500
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    // The one slot holds an open breaker, idle or not: the new host is refused.
    let error = ClientError::from(client.get(other.url()).send().await.unwrap_err());
    assert_eq!(
        error.rejection().unwrap().reason(),
        RejectionReason::CapacityFull
    );
    assert_eq!(other.hits(), 0);

    // Closed and idle: evicted for the new host.
    breakers.get(&failing.origin()).unwrap().reset();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(client.get(other.url()).send().await.unwrap().status(), 200);
    assert_eq!(breakers.evicted(), 1);
    assert!(breakers.get(&failing.origin()).is_none());
}

#[tokio::test]
async fn an_attempt_without_an_answer_in_time_times_out() {
    let slow = Server::start_with([], Answer(200, None, Duration::from_secs(30))).await;
    let timeout = || Timeout::new(Duration::from_millis(200)).unwrap();

    let once = ResilientMiddleware::builder()
        .timeout(timeout())
        .build()
        .unwrap();
    let error = ClientError::from(client(once).get(slow.url()).send().await.unwrap_err());
    assert!(
        matches!(error, ClientError::Timeout { limit, .. } if limit == Duration::from_millis(200)),
        "{error:?}"
    );

    let retried = with_retry(retry("slow", 2))
        .timeout(timeout())
        .build()
        .unwrap();
    let error = ClientError::from(client(retried).get(slow.url()).send().await.unwrap_err());
    let ClientError::RetryExhausted { attempts, last } = &error else {
        panic!("expected exhausted retries, got {error:?}");
    };
    assert_eq!(*attempts, 2);
    assert!(matches!(**last, ClientError::Timeout { .. }));
    assert!(error.is_timeout());
    // At most one request per attempt (a loaded server may not have seen the last one yet).
    assert!(slow.hits() <= 3);
}

#[tokio::test]
async fn a_streaming_body_is_refused_before_sending_when_it_could_be_retried() {
    let server = Server::start([]).await;
    let client = client(with_retry(retry("stream", 3)).build().unwrap());

    let error = ClientError::from(
        client
            .put(server.url())
            .body(streaming_body())
            .send()
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&error, ClientError::BodyNotCloneable { method, .. } if method == reqwest::Method::PUT),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("cannot be sent twice"),
        "{error}"
    );
    assert_eq!(server.hits(), 0);

    // A POST without an idempotency key is never retried: sent as usual.
    let response = client
        .post(server.url())
        .body(streaming_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_connect_error_is_retried() {
    // A port bound but not listening: connections are refused, and no other test can take
    // the port while the socket lives.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = socket.local_addr().unwrap();
    let policy = retry("connect", 3);
    let events = EventRecorder::attach(policy.events());
    let client = client(with_retry(policy).build().unwrap());

    let error = ClientError::from(
        client
            .get(format!("http://{closed}/"))
            .send()
            .await
            .unwrap_err(),
    );
    let ClientError::RetryExhausted { attempts, last } = &error else {
        panic!("expected exhausted retries, got {error:?}");
    };
    assert_eq!(*attempts, 3);
    assert!(matches!(**last, ClientError::Request(_)));
    assert!(error.is_connect());
    assert_eq!(
        events.names(),
        ["retry_attempt", "retry_attempt", "retry_exhausted"]
    );
}

#[tokio::test]
async fn a_client_side_rate_limit_refuses_without_sending() {
    let server = Server::start([]).await;
    let limiter = DirectRateLimiter::builder("outgoing")
        .rate(Rate::per_minute(1))
        .build()
        .unwrap();
    let middleware = with_retry(retry("limited", 3))
        .rate_limit(limiter)
        .build()
        .unwrap();
    let client = client(middleware);
    assert_eq!(client.get(server.url()).send().await.unwrap().status(), 200);
    let error = ClientError::from(client.get(server.url()).send().await.unwrap_err());
    let rejection = error.rejection().expect("rejected");
    assert_eq!(rejection.reason(), RejectionReason::RateLimited);
    assert!(rejection.retry_after().is_some());
    assert_eq!(error.attempts(), 0);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_stage_that_makes_attempts_wait_sends_them_in_turn() {
    // Each answer takes a while, so the second request finds the only slot taken and waits.
    let delay = Duration::from_millis(50);
    let server = Server::start_with([], Answer(200, None, delay)).await;
    let slots = Bulkhead::builder("one at a time")
        .max_concurrent(1)
        .max_waiting(4)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for middleware in [
        // Sent once, and through the retry's rounds.
        ResilientMiddleware::builder()
            .stage(slots.clone())
            .build()
            .unwrap(),
        with_retry(retry("queued", 2))
            .stage(slots.clone())
            .build()
            .unwrap(),
    ] {
        let client = client(middleware);
        let hits = server.hits();
        let started = tokio::time::Instant::now();
        let (first, second) = tokio::join!(
            client.get(server.url()).send(),
            client.get(server.url()).send()
        );
        assert_eq!(first.unwrap().status(), 200);
        assert_eq!(second.unwrap().status(), 200);
        assert_eq!(server.hits(), hits + 2, "both sent, once each");
        assert!(
            started.elapsed() >= 2 * delay,
            "the second was sent only when the first had its answer"
        );
        assert_eq!(slots.active(), 0, "both slots given back");
    }
}

#[tokio::test]
async fn errors_of_other_middlewares_pass_through() {
    struct Refuse;
    #[async_trait::async_trait]
    impl reqwest_middleware::Middleware for Refuse {
        async fn handle(
            &self,
            _: reqwest::Request,
            _: &mut http::Extensions,
            _: reqwest_middleware::Next<'_>,
        ) -> reqwest_middleware::Result<reqwest::Response> {
            Err(reqwest_middleware::Error::middleware(
                std::io::Error::other("refused"),
            ))
        }
    }
    let server = Server::start([]).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(with_retry(retry("others", 3)).build().unwrap())
        .with(Refuse)
        .build();
    let error = ClientError::from(client.get(server.url()).send().await.unwrap_err());
    assert!(matches!(error, ClientError::Middleware(_)), "{error:?}");
    assert_eq!(error.to_string(), "refused");
}

#[tokio::test]
async fn an_empty_retry_budget_sends_once() {
    let server = Server::start([status(503)]).await;
    let policy = Retry::builder("budget")
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .budget(resilience::retry::BudgetConfig {
            retry_ratio: 0.0,
            window: Duration::from_secs(10),
            min_retries_per_second: 0,
        })
        .build()
        .unwrap();
    let events = EventRecorder::attach(policy.events());
    let client = client(with_retry(policy).build().unwrap());
    let response = client.get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 503, "the last answer, not retried");
    assert_eq!(server.hits(), 1);
    assert_eq!(events.names(), ["retry_exhausted"]);
}

#[tokio::test]
async fn a_429_says_nothing_about_the_hosts_health() {
    let server = Server::start_with([], status(429)).await;
    let breakers = KeyedCircuitBreaker::builder("hosts")
        .failure_threshold(1)
        .build()
        .unwrap();
    let middleware = ResilientMiddleware::builder()
        .breaker_per_host(breakers.clone())
        .build()
        .unwrap();
    let client = client(middleware);
    for _ in 0..3 {
        assert_eq!(client.get(server.url()).send().await.unwrap().status(), 429);
    }
    let breaker = breakers.get(&server.origin()).unwrap();
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.metrics().ignored_requests, 3);
    assert_eq!(server.hits(), 3);
}

/// A server answering with the deadline header it received (empty without one).
async fn echo_deadline() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = Router::new().fallback(move |headers: axum::http::HeaderMap| {
        counter.fetch_add(1, Ordering::SeqCst);
        let budget = headers
            .get(resilience_http::EXPECTED_TIMEOUT_MS)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        async move { budget }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), hits)
}

#[tokio::test]
async fn the_current_deadline_travels_and_a_spent_one_is_not_sent() {
    use resilience::timeout::Deadline;
    use resilience_http::DeadlinePropagation;

    let (url, hits) = echo_deadline().await;
    let client = client(
        with_retry(retry("deadline", 3))
            .deadline(DeadlinePropagation::new().margin(Duration::from_millis(10)))
            .build()
            .unwrap(),
    );
    let outside = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(outside, "", "no deadline, no header");

    let budget: u64 = Deadline::after(Duration::from_secs(2))
        .scope(async { client.get(&url).send().await.unwrap().text().await.unwrap() })
        .await
        .parse()
        .unwrap();
    assert!(budget > 0 && budget <= 1_990, "{budget}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let spent = Deadline::after(Duration::ZERO)
        .scope(async { client.get(&url).send().await })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    let rejection = spent.rejection().expect("refused, not sent");
    assert_eq!(rejection.reason(), RejectionReason::DeadlineExpired);
    assert_eq!(hits.load(Ordering::SeqCst), 2, "never sent, never retried");
}

/// A hedge without a budget (every extra attempt allowed), `extra` copies at most.
fn hedge(name: &str, delay: Option<Duration>, extra: u32) -> Hedge {
    let builder = Hedge::builder(name).max_hedged_attempts(extra).no_budget();
    match delay {
        Some(delay) => builder.delay(delay),
        None => builder.fallback(),
    }
    .build()
    .unwrap()
}

#[tokio::test]
async fn a_slow_attempt_is_hedged_and_the_first_good_answer_wins() {
    // The first request would answer 201 after a minute; every later one 200 at once.
    let server = Server::start([Answer(201, None, Duration::from_secs(60))]).await;
    let policy = hedge("hedged", Some(Duration::from_millis(50)), 1);
    let events = EventRecorder::attach(policy.events());
    // A bulkhead every attempt passes: the losing attempt's slot must come back when the
    // winner answers, which it does only if that attempt was dropped.
    let slots = Bulkhead::builder("attempts")
        .max_concurrent(2)
        .build()
        .unwrap();
    let middleware = ResilientMiddleware::builder()
        .hedge(policy.clone())
        .stage(slots.clone())
        .build()
        .unwrap();

    let started = tokio::time::Instant::now();
    let response = client(middleware).get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 200, "the hedged copy's answer");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "not before the delay"
    );
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(2)));
    assert_eq!(server.hits(), 2);
    assert_eq!(slots.active(), 0, "the slow attempt was cancelled");
    assert_eq!(policy.metrics().hedge_wins, 1);
    assert_eq!(
        events.names(),
        ["hedge_attempt", "hedge_success"],
        "one extra attempt started, and it won"
    );
}

#[tokio::test]
async fn a_failed_attempt_starts_the_next_at_once_and_all_failing_gives_the_last_answer() {
    let server = Server::start([status(503), status(200)]).await;
    let client_hedged = client(
        ResilientMiddleware::builder()
            .hedge(hedge("fallback", None, 1))
            .build()
            .unwrap(),
    );
    let response = client_hedged.get(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(2)));

    // Both attempts answer 503: the caller gets the last answer, as it came.
    let failing = Server::start_with([], status(503)).await;
    let response = client_hedged.get(failing.url()).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(2)));
    assert_eq!(failing.hits(), 2);
}

#[tokio::test]
async fn with_retry_each_round_is_hedged_and_attempts_count_every_request() {
    let server = Server::start([status(503), status(503), status(200)]).await;
    let middleware = with_retry(retry("rounds", 2))
        .hedge(hedge("rounds", None, 1))
        .build()
        .unwrap();
    let response = client(middleware).get(server.url()).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the first attempt of the second round"
    );
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(3)));
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn only_requests_safe_to_repeat_are_hedged_and_streams_are_refused() {
    // A POST is sent once, however slow.
    let server = Server::start([Answer(201, None, Duration::from_millis(300))]).await;
    let client = client(
        ResilientMiddleware::builder()
            .hedge(hedge("safe", Some(Duration::from_millis(20)), 2))
            .build()
            .unwrap(),
    );
    let response = client.post(server.url()).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.extensions().get::<Attempts>(), None);
    assert_eq!(server.hits(), 1);

    // A GET with a body that cannot be sent twice is refused before sending.
    let error = ClientError::from(
        client
            .get(server.url())
            .body(streaming_body())
            .send()
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(error, ClientError::BodyNotCloneable { .. }),
        "{error:?}"
    );
    assert_eq!(server.hits(), 1);
}
