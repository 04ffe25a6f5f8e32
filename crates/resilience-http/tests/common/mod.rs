//! Real servers on 127.0.0.1 and a real client, in real time (a paused clock would jump
//! ahead while sockets are idle).

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the helpers"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A server on a free loopback port, recording peers through `ConnectInfo`.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
}

impl Server {
    pub(crate) async fn start(app: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("server");
        });
        Self { addr }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A client that never uses a proxy (no system proxy support is compiled in).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Holds handlers until the test lets them go, and counts who got there.
#[derive(Clone)]
pub(crate) struct Gate {
    entered: Arc<AtomicUsize>,
    open: Arc<Semaphore>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            entered: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Gate {
    /// Called by a handler: waits until released.
    pub(crate) async fn pass(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        self.open.acquire().await.expect("gate").forget();
    }

    /// Waits until `count` handlers are held.
    pub(crate) async fn entered(&self, count: usize) {
        eventually(|| self.entered.load(Ordering::SeqCst) >= count).await;
    }

    /// Lets `count` held handlers go.
    pub(crate) fn release(&self, count: usize) {
        self.open.add_permits(count);
    }
}

/// Polls `condition` every 2 ms for up to 5 s.
pub(crate) async fn eventually(condition: impl FnMut() -> bool) {
    resilience_testkit::eventually(Duration::from_secs(5), "the condition", condition).await;
}

/// The JSON body of a response.
pub(crate) async fn json(response: reqwest::Response) -> serde_json::Value {
    let bytes = response.bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("a JSON body")
}

/// A header as a string, panicking if absent.
pub(crate) fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ASCII header")
}
