//! A fixed number of in-process requests through the `http` bench's composite (or the bare
//! router), for instruction counts and profiles, which criterion's timing loop does not suit:
//!
//! ```text
//! cargo build --profile bench -p resilience-benches --example http_requests
//! valgrind --tool=callgrind --toggle-collect=http_requests::requests \
//!     target/release/examples/http_requests composite 10000
//! valgrind --tool=callgrind --toggle-collect=http_requests::requests \
//!     target/release/examples/http_requests bare 10000
//! ```
//!
//! The composite's cost per request is the difference of the two totals divided by the
//! count. `--toggle-collect` counts the requests alone: building the apps is left out, and
//! with it the calibration of the time-stamp counter the first limiter makes, whose length
//! varies from run to run by more than the difference measured. The apps and the request are
//! those of `benches/http.rs`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use futures_util::FutureExt;
use tower::ServiceExt;

#[path = "../benches/common/http_composite.rs"]
mod http_composite;
use http_composite::composite;

const PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

/// One request through `app`, polled once: whether it was answered at once with a 200 and
/// its body collected.
fn once(app: &Router) -> bool {
    let mut request = axum::http::Request::get("/")
        .body(Body::empty())
        .expect("a request");
    request.extensions_mut().insert(ConnectInfo(PEER));
    let Some(Ok(response)) = app.clone().oneshot(request).now_or_never() else {
        return false;
    };
    response.status() == 200
        && axum::body::to_bytes(response.into_body(), 1024)
            .now_or_never()
            .is_some_and(|body| body.is_ok())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "composite".to_owned());
    let count: u64 = args
        .next()
        .map_or(10_000, |count| count.parse().expect("a count"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let router = Router::new().route("/", get(|| async { "ok" }));
    let app = match which.as_str() {
        "bare" => router,
        "composite" => router.layer(composite(true)),
        other => panic!("`bare` or `composite`, not {other:?}"),
    }
    .with_state(());
    requests(&app, count);
}

/// `count` requests through `app`: what the instruction counts measure.
#[inline(never)]
fn requests(app: &Router, count: u64) {
    for _ in 0..count {
        assert!(once(app), "not answered at once with a 200");
    }
}
