//! A client that reads the response head and then stops reading gives its slot back after
//! the body's idle timeout; without one it holds the slot for as long as its connection
//! lives. Real servers, raw sockets, real time.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{client, eventually, Server};
use http::StatusCode;
use resilience::Bulkhead;
use resilience_http::{CompositeLayer, HttpStageLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// `/big` streams 64 KiB chunks for ever, as fast as the client takes them; `/` says "ok".
fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/big",
        get(|| async {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks =
                futures_util::stream::repeat_with(move || Ok::<_, Infallible>(chunk.clone()));
            Body::from_stream(chunks)
        }),
    )
}

fn bulkhead() -> Bulkhead {
    Bulkhead::builder("downloads")
        .max_concurrent(1)
        .build()
        .unwrap()
}

/// Asks for `/big`, reads the head, and never reads again (the socket is returned so it
/// stays open).
async fn stall(server: &Server) -> TcpStream {
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buffer = [0; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = socket.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the server closed before its head");
        head.extend_from_slice(&buffer[..read]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    socket
}

async fn status(server: &Server) -> StatusCode {
    client().get(server.url("/")).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_idle_timeout_a_client_that_stops_reading_keeps_its_slot() {
    let bulkhead = bulkhead();
    let layer = HttpStageLayer::new(bulkhead.clone()).body_idle_timeout(None);
    let server = Server::start(app().layer(layer)).await;
    let _stalled = stall(&server).await;
    assert_eq!(bulkhead.available_slots(), 0);
    // Well past the timeout the other tests use: still held.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(status(&server).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(bulkhead.available_slots(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_gives_its_slot_back_after_the_idle_timeout() {
    let idle = Duration::from_millis(200);
    for composite in [false, true] {
        let bulkhead = bulkhead();
        let app = if composite {
            let layer = CompositeLayer::new()
                .bulkhead(bulkhead.clone())
                .body_idle_timeout(Some(idle));
            app().layer(layer)
        } else {
            app().layer(HttpStageLayer::new(bulkhead.clone()).body_idle_timeout(Some(idle)))
        };
        let server = Server::start(app).await;
        let asked = Instant::now();
        let stalled = stall(&server).await;
        // The slot comes back once the body has waited `idle` for the client, while the
        // client's connection is still open.
        eventually(|| bulkhead.available_slots() == 1).await;
        assert!(asked.elapsed() >= idle, "composite {composite}");
        assert_eq!(
            status(&server).await,
            StatusCode::OK,
            "composite {composite}"
        );
        drop(stalled);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slow_to_produce_is_not_an_idle_client() {
    // Chunks every 600 ms against an idle timeout of 250 ms: the client is waiting for the
    // server, not the other way round, so the slot is held to the end.
    let bulkhead = bulkhead();
    let app = Router::new().route(
        "/slow",
        get(|| async {
            let chunks = futures_util::stream::unfold(0, |sent| async move {
                if sent == 3 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(600)).await;
                Some((Ok::<_, Infallible>(Bytes::from_static(b"tick")), sent + 1))
            });
            Body::from_stream(chunks)
        }),
    );
    let layer =
        HttpStageLayer::new(bulkhead.clone()).body_idle_timeout(Some(Duration::from_millis(250)));
    let server = Server::start(app.layer(layer)).await;
    let mut response = client().get(server.url("/slow")).send().await.unwrap();
    let mut chunks = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        assert_eq!(&chunk[..], b"tick");
        chunks += 1;
        if chunks < 3 {
            // Between chunks the body waits 600 ms for its own next one: still held. (The
            // last chunk may arrive after the body has ended and released.)
            assert_eq!(bulkhead.available_slots(), 0, "held while the body streams");
        }
    }
    assert_eq!(chunks, 3);
    eventually(|| bulkhead.available_slots() == 1).await;
}
