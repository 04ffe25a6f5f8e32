//! A real actix-web server on 127.0.0.1 and a real client, in real time (a paused clock would
//! jump ahead while sockets are idle).

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the helpers"
)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use resilience_actix::Resilience;
use resilience_http::Stages;
use tokio::sync::mpsc;

/// An actix-web server on a free loopback port, running `routes` behind `middleware` on one
/// worker in a thread (and actix System) of its own; stopped when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    handle: ServerHandle,
}

impl Server {
    pub(crate) fn start<G, F>(middleware: Resilience<G>, routes: F) -> Self
    where
        G: Stages,
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(middleware.clone())
                        .configure(routes.clone())
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                handle_tx
                    .send(server.handle())
                    .expect("hand the handle over");
                server.await.expect("server");
            });
        });
        let handle = handle_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        Self { addr, handle }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stops the server; its thread ends when its System does.
        drop(self.handle.stop(false));
    }
}

/// A client that never uses a proxy (no system proxy support is compiled in) and opens a
/// connection per request, so a dropped response closes its own.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// Counts the requests that reached a handler.
#[derive(Clone, Default)]
pub(crate) struct Hits(Arc<AtomicUsize>);

impl Hits {
    pub(crate) fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A streaming response body the test feeds chunk by chunk, ending when the test says so.
#[derive(Clone, Default)]
pub(crate) struct Feed {
    receiver: Arc<Mutex<Option<mpsc::UnboundedReceiver<Bytes>>>>,
}

/// The test's end of a [`Feed`]: each `send` is a chunk; dropping it ends the body.
pub(crate) struct Sender(mpsc::UnboundedSender<Bytes>);

impl Sender {
    /// Sends a chunk; `false` once the body is gone (the response was dropped).
    pub(crate) fn send(&self, chunk: &'static str) -> bool {
        self.0.send(Bytes::from_static(chunk.as_bytes())).is_ok()
    }
}

impl Feed {
    /// Arms the feed for the next streaming response.
    pub(crate) fn arm(&self) -> Sender {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self.receiver.lock().unwrap() = Some(receiver);
        Sender(sender)
    }

    /// A response streaming what the armed sender sends.
    pub(crate) fn respond(&self) -> HttpResponse {
        let receiver = self
            .receiver
            .lock()
            .unwrap()
            .take()
            .expect("the test armed the feed");
        let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let chunk = receiver.recv().await?;
            Some((Ok::<_, Infallible>(chunk), receiver))
        });
        HttpResponse::Ok().streaming(chunks)
    }
}

/// Waits until `condition` holds, checking every 10 ms, for at most 10 seconds.
pub(crate) async fn eventually(what: &str, condition: impl FnMut() -> bool) {
    resilience_testkit::eventually(Duration::from_secs(10), what, condition).await;
}

/// The problem+json body of a refusal, checked for its content type and status.
pub(crate) async fn problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let bytes = response.bytes().await.expect("body");
    let body: serde_json::Value = serde_json::from_slice(&bytes).expect("problem+json");
    assert_eq!(body["status"], status);
    body
}

/// The whole-seconds value of a header.
pub(crate) fn seconds(response: &reqwest::Response, name: &str) -> u64 {
    response.headers()[name]
        .to_str()
        .expect("ascii")
        .parse()
        .unwrap_or_else(|_| panic!("{name} in seconds"))
}
