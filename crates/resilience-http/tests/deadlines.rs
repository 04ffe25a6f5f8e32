//! A deadline crossing three real services on loopback, A → B → C: each sees the budget its
//! caller had left less the margin, and once the first caller's deadline has passed nothing
//! more is sent.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::Router;
use common::{client, Server};
use http::{HeaderMap, StatusCode};
use resilience::timeout::Deadline;
use resilience_http::{DeadlineLayer, DeadlinePropagation, EXPECTED_TIMEOUT_MS};
use serde_json::{json, Value};

const MARGIN: Duration = Duration::from_millis(50);

fn propagation() -> DeadlinePropagation {
    DeadlinePropagation::new().margin(MARGIN)
}

/// What a hop knows: its own remaining budget, and where to call next (if anywhere).
#[derive(Clone)]
struct Hop {
    next: Option<String>,
    hits: Arc<AtomicUsize>,
}

/// Answers `{"budget": ms left on arrival, "next": the next hop's answer}`, or 504 with
/// `"not sent"` when the deadline left nothing for the next hop.
/// `?sleep=ms` makes the hop work that long before calling the next one.
async fn hop(State(hop): State<Hop>, RawQuery(query): RawQuery) -> (StatusCode, String) {
    hop.hits.fetch_add(1, Ordering::SeqCst);
    let budget = Deadline::current().map(|deadline| deadline.remaining().as_millis());
    let sleep = query
        .as_deref()
        .and_then(|query| query.strip_prefix("sleep="))
        .map_or(0, |ms| ms.parse().expect("milliseconds"));
    tokio::time::sleep(Duration::from_millis(sleep)).await;
    let Some(next) = hop.next else {
        return (StatusCode::OK, json!({ "budget": budget }).to_string());
    };
    let mut headers = HeaderMap::new();
    if propagation().outgoing(&mut headers).is_err() {
        return (StatusCode::GATEWAY_TIMEOUT, "not sent".to_owned());
    }
    let answer = client()
        .get(&next)
        .headers(headers)
        .send()
        .await
        .expect("next hop answers");
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let text = answer.text().await.unwrap();
    let next: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (
        status,
        json!({ "budget": budget, "next": next }).to_string(),
    )
}

async fn service(next: Option<String>) -> (Server, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/", get(hop))
        .with_state(Hop {
            next,
            hits: Arc::clone(&hits),
        })
        .layer(DeadlineLayer::new(propagation()));
    (Server::start(app).await, hits)
}

/// C, then B calling C (after `b_sleep` ms), then A calling B.
async fn chain(b_sleep: u64) -> (Server, [Arc<AtomicUsize>; 3]) {
    let (c, c_hits) = service(None).await;
    let (b, b_hits) = service(Some(c.url("/"))).await;
    let (a, a_hits) = service(Some(b.url(&format!("/?sleep={b_sleep}")))).await;
    (a, [a_hits, b_hits, c_hits])
}

fn budget(value: &Value) -> u64 {
    value["budget"].as_u64().expect("a budget")
}

#[tokio::test]
async fn each_hop_sees_a_smaller_budget() {
    let (a, hits) = chain(0).await;
    let answer = client()
        .get(a.url("/"))
        .header(EXPECTED_TIMEOUT_MS, "5000")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    let (a_budget, b_budget, c_budget) = (
        budget(&body),
        budget(&body["next"]),
        budget(&body["next"]["next"]),
    );
    assert!(a_budget <= 5000, "{body}");
    // Each hop passes on at most what it had, less the margin.
    assert!(b_budget + 50 <= a_budget, "{body}");
    assert!(c_budget + 50 <= b_budget, "{body}");
    assert!(c_budget > 0, "{body}");
    for hop in &hits {
        assert_eq!(hop.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn nothing_is_sent_once_the_deadline_has_passed() {
    // A gives B what is left of 300 ms; B works 600 ms, so nothing is left for C.
    let (a, [a_hits, b_hits, c_hits]) = chain(600).await;
    let answer = client()
        .get(a.url("/"))
        .header(EXPECTED_TIMEOUT_MS, "300")
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(body["next"], "not sent", "{body}");
    assert_eq!(a_hits.load(Ordering::SeqCst), 1);
    assert_eq!(b_hits.load(Ordering::SeqCst), 1);
    assert_eq!(c_hits.load(Ordering::SeqCst), 0, "C must never be called");
}

#[tokio::test]
async fn a_request_without_a_budget_runs_under_no_deadline_or_the_default() {
    let (c, _) = service(None).await;
    let plain: Value = client()
        .get(c.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap();
    assert_eq!(plain["budget"], Value::Null);

    let app = Router::new()
        .route("/", get(hop))
        .with_state(Hop {
            next: None,
            hits: Arc::default(),
        })
        .layer(DeadlineLayer::new(propagation()).default_budget(Duration::from_secs(2)));
    let server = Server::start(app).await;
    let defaulted: Value = client()
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap();
    let left = budget(&defaulted);
    assert!(left > 0 && left <= 2000, "{defaulted}");
}

#[tokio::test]
async fn a_timeout_inside_refuses_a_request_that_arrives_with_no_budget_left() {
    let timeout = resilience::Timeout::builder("handlers")
        .limit(Duration::from_secs(10))
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/", get(hop))
        .with_state(Hop {
            next: None,
            hits: Arc::clone(&hits),
        })
        .layer(resilience_http::HttpTimeoutLayer::new(timeout))
        .layer(DeadlineLayer::new(propagation()));
    let server = Server::start(app).await;
    let spent = client()
        .get(server.url("/"))
        .header(EXPECTED_TIMEOUT_MS, "0")
        .send()
        .await
        .unwrap();
    assert_eq!(spent.status(), 408);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let fresh = client()
        .get(server.url("/"))
        .header(EXPECTED_TIMEOUT_MS, "3000")
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
