//! What a request through the composite allocates: its future's box, and nothing else, for
//! an admitted request whose `RateLimit-*` numbers are past the table of small ones. `dhat`'s
//! counting global allocator watches a plain tower service with and without the five-step
//! composite in front of it. Its own test binary, run without libtest (see the core crate's
//! `tests/common/alloc.rs`, shared here): the allocator is process-wide.

#[path = "../../resilience/tests/common/alloc.rs"]
mod alloc;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use alloc::{allocations, ready, run};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use resilience::load_shed::LoadShedder;
use resilience::rate_limit::LocalRateLimiter;
use resilience::{Bulkhead, CircuitBreaker, Rate, Timeout};
use resilience_http::{CompositeLayer, RATELIMIT_LIMIT, RATELIMIT_REMAINING};
use tower::{Layer, Service, ServiceExt};

const PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

fn request() -> Request<()> {
    let mut request = Request::get("/").body(()).unwrap();
    request.extensions_mut().insert(PEER);
    request
}

/// The allocations of one request through `service`, body read to its end, the request
/// built beforehand; and the response's headers.
fn one<S, B>(service: &mut S) -> (u64, http::HeaderMap)
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let request = request();
    let mut headers = None;
    let allocated = allocations(|| {
        ready(service.ready()).unwrap();
        let response = ready(service.call(request)).unwrap();
        let (parts, mut body) = response.into_parts();
        while let Some(frame) = ready(body.frame()) {
            frame.unwrap();
        }
        headers = Some(parts.headers);
    });
    (allocated, headers.unwrap())
}

fn an_admitted_request_allocates_only_its_future() {
    let app = tower::service_fn(|_: Request<()>| async {
        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        Ok::<_, Infallible>(response)
    });
    let composite = CompositeLayer::new()
        .rate_limit(
            LocalRateLimiter::builder("alloc")
                .rate(Rate::per_second(1_000_000_000))
                .build()
                .unwrap(),
        )
        .load_shed(
            LoadShedder::builder("alloc")
                .max_requests(1_024)
                .build()
                .unwrap(),
        )
        .bulkhead(
            Bulkhead::builder("alloc")
                .max_concurrent(1_024)
                .build()
                .unwrap(),
        )
        .circuit_breaker(CircuitBreaker::builder("alloc").build().unwrap())
        .timeout(Timeout::new(Duration::from_secs(30)).unwrap());
    let mut bare = app;
    let mut protected = composite.layer(app);
    // Warm up: the client's budget, lazily created statics, the cached header values.
    for _ in 0..3 {
        one(&mut bare);
        one(&mut protected);
    }
    for _ in 0..3 {
        let (bare_allocations, _) = one(&mut bare);
        let (allocated, headers) = one(&mut protected);
        assert!(
            headers[RATELIMIT_LIMIT].len() > 3 && headers[RATELIMIT_REMAINING].len() > 3,
            "numbers past the small table: {headers:?}"
        );
        assert_eq!(
            allocated,
            bare_allocations + 1,
            "one box for the future, nothing more"
        );
    }
}

fn main() {
    run(&[(
        "an_admitted_request_allocates_only_its_future",
        an_admitted_request_allocates_only_its_future,
    )]);
}
