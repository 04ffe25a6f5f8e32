//! What the tests over real sockets share: a scripted axum server on 127.0.0.1, quick
//! retries, the waits a retry policy chose, a body that cannot be cloned.

#![allow(dead_code, reason = "each test file uses its own part of the helpers")]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use resilience::retry::{Backoff, Jitter, RetryEvent};
use resilience::Retry;
use resilience_testkit::EventRecorder;
use tokio::net::TcpListener;

/// One scripted answer: status, `Retry-After`, and how long the handler takes.
#[derive(Clone, Copy)]
pub(crate) struct Answer(
    pub(crate) u16,
    pub(crate) Option<&'static str>,
    pub(crate) Duration,
);

pub(crate) const fn status(code: u16) -> Answer {
    Answer(code, None, Duration::ZERO)
}

/// A server answering from a script (then 200 for ever), counting the requests that reach it.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    pub(crate) async fn start(script: impl IntoIterator<Item = Answer>) -> Self {
        Self::start_with(script, status(200)).await
    }

    /// Answers from `script`, then `after` for ever.
    pub(crate) async fn start_with(
        script: impl IntoIterator<Item = Answer>,
        after: Answer,
    ) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Mutex::new(script.into_iter().collect::<VecDeque<_>>()));
        let counter = Arc::clone(&hits);
        let app = Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let Answer(code, retry_after, delay) =
                script.lock().unwrap().pop_front().unwrap_or(after);
            async move {
                tokio::time::sleep(delay).await;
                let mut response: Response =
                    (StatusCode::from_u16(code).unwrap(), "answer").into_response();
                if let Some(after) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from_static(after));
                }
                response
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hits }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/items", self.addr)
    }

    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Quick, exact retries: constant waits, no jitter.
pub(crate) fn retry(name: &str, attempts: u32) -> Retry {
    Retry::builder(name)
        .max_attempts(attempts)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

pub(crate) fn attempts(events: &EventRecorder) -> Vec<Duration> {
    events
        .events()
        .iter()
        .filter_map(|event| match event.payload::<RetryEvent>() {
            Some(RetryEvent::RetryAttempt { delay, .. }) => Some(*delay),
            _ => None,
        })
        .collect()
}

pub(crate) fn streaming_body() -> reqwest::Body {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![Ok("a".into()), Ok("b".into())];
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}
