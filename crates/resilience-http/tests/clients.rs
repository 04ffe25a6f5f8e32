//! Who is asking: rate-limit keys from the client IP (spoofing refused, trusted proxies
//! believed), from a header and from the path; priorities from `X-Priority`, case-insensitive.

mod common;

use axum::routing::get;
use axum::Router;
use common::{client, Gate, Server};
use http::header::HeaderName;
use http::StatusCode;
use resilience::load_shed::{LoadShedder, Priority};
use resilience::rate_limit::LocalRateLimiter;
use resilience_http::{
    HttpStageLayer, KeyedRateLimit, PriorityHeader, RateLimitKey, TrustedProxies,
};

/// One request a minute per key.
fn per_key(key: RateLimitKey) -> (LocalRateLimiter, Router) {
    let limiter = LocalRateLimiter::builder("api")
        .rate("1/minute".parse().unwrap())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/other", get(|| async { "other" }))
        .layer(HttpStageLayer::new(
            KeyedRateLimit::new(limiter.clone()).key(key),
        ));
    (limiter, app)
}

async fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = client().get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key() {
    // Proxies live in 10.0.0.0/8; the test client connects from 127.0.0.1, untrusted.
    let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
    let (limiter, app) = per_key(RateLimitKey::client_ip().trusted_proxies(proxies));
    let server = Server::start(app).await;

    assert_eq!(
        get_with(&server, "/", &[("x-forwarded-for", "1.1.1.1")]).await,
        200
    );
    // A new fake address every time: still the peer's one budget.
    assert_eq!(
        get_with(&server, "/", &[("x-forwarded-for", "2.2.2.2")]).await,
        429
    );
    assert_eq!(
        get_with(&server, "/", &[("x-real-ip", "3.3.3.3")]).await,
        429
    );
    assert_eq!(get_with(&server, "/", &[]).await, 429);
    // The budget spent was the peer's, not the claimed addresses'.
    assert!(!limiter.check_now("127.0.0.1").is_allowed());
    assert!(limiter.check_now("1.1.1.1").is_allowed());
}

#[tokio::test]
async fn a_trusted_proxy_is_believed_right_most_untrusted_hop_first() {
    let key = RateLimitKey::client_ip().trusted_proxies(TrustedProxies::loopback());
    let (limiter, app) = per_key(key);
    let server = Server::start(app).await;

    assert_eq!(
        get_with(&server, "/", &[("x-forwarded-for", "1.1.1.1")]).await,
        200
    );
    assert_eq!(
        get_with(&server, "/", &[("x-forwarded-for", "2.2.2.2")]).await,
        200
    );
    assert_eq!(
        get_with(&server, "/", &[("x-forwarded-for", "1.1.1.1")]).await,
        429
    );
    // The client wrote 6.6.6.6; the proxy appended the address it saw, 1.1.1.1.
    assert_eq!(
        get_with(&server, "/", &[("x-forwarded-for", "6.6.6.6, 1.1.1.1")]).await,
        429
    );
    // Hops that are proxies themselves are skipped.
    assert_eq!(
        get_with(&server, "/", &[("x-forwarded-for", "2.2.2.2, 127.0.0.5")]).await,
        429
    );
    assert_eq!(
        get_with(&server, "/", &[("x-real-ip", "4.4.4.4")]).await,
        200
    );
    assert_eq!(
        get_with(&server, "/", &[("x-real-ip", "4.4.4.4")]).await,
        429
    );
    assert!(limiter.check_now("6.6.6.6").is_allowed(), "never charged");
}

#[tokio::test]
async fn keys_from_a_header_and_from_the_path() {
    let api_key = HeaderName::from_static("x-api-key");
    let (_, app) = per_key(RateLimitKey::header(api_key));
    let server = Server::start(app).await;
    assert_eq!(get_with(&server, "/", &[("x-api-key", "alice")]).await, 200);
    assert_eq!(get_with(&server, "/", &[("x-api-key", "bob")]).await, 200);
    assert_eq!(get_with(&server, "/", &[("x-api-key", "alice")]).await, 429);
    // Without the header the client IP is the key: leaving it out escapes nothing.
    assert_eq!(get_with(&server, "/", &[]).await, 200);
    assert_eq!(get_with(&server, "/", &[]).await, 429);

    let (_, app) = per_key(RateLimitKey::path());
    let server = Server::start(app).await;
    assert_eq!(get_with(&server, "/", &[]).await, 200);
    assert_eq!(get_with(&server, "/other", &[]).await, 200);
    assert_eq!(get_with(&server, "/", &[]).await, 429);

    let (_, app) = per_key(RateLimitKey::from_fn(|parts| {
        parts
            .headers
            .get("x-tenant")
            .map_or("none", |v| v.to_str().unwrap())
            .to_owned()
    }));
    let server = Server::start(app).await;
    assert_eq!(get_with(&server, "/", &[("x-tenant", "a")]).await, 200);
    assert_eq!(get_with(&server, "/other", &[("x-tenant", "a")]).await, 429);
    assert_eq!(get_with(&server, "/", &[("x-tenant", "b")]).await, 200);
}

#[tokio::test]
async fn the_priority_header_is_parsed_case_insensitively() {
    // 10 slots; 8 held (80 %): above normal's 75 % threshold, below high's 90 %.
    let shedder = LoadShedder::builder("api")
        .max_requests(10)
        .build()
        .unwrap();
    let gate = Gate::default();
    let held = gate.clone();
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/hold",
            get(move || {
                let gate = held.clone();
                async move {
                    gate.pass().await;
                    "released"
                }
            }),
        )
        .layer(HttpStageLayer::new(
            PriorityHeader::new(shedder.clone()).max_priority(Priority::High),
        ));
    let server = Server::start(app).await;
    let holders: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client(), server.url("/hold"));
            tokio::spawn(async move {
                let response = client.get(url).header("X-Priority", "HIGH").send().await;
                response.unwrap().status()
            })
        })
        .collect();
    gate.entered(8).await;
    assert_eq!(shedder.metrics().active_requests, 8);

    for high in ["HIGH", "High", "high", " hIgH "] {
        assert_eq!(
            get_with(&server, "/", &[("x-priority", high)]).await,
            200,
            "{high}"
        );
    }
    // A claim above the cap counts as the cap (high): admitted, not unsheddable.
    assert_eq!(
        get_with(&server, "/", &[("x-priority", "Critical")]).await,
        200
    );
    for shed in ["normal", "NORMAL", "Low", "nonsense"] {
        assert_eq!(
            get_with(&server, "/", &[("x-priority", shed)]).await,
            503,
            "{shed}"
        );
    }
    assert_eq!(get_with(&server, "/", &[]).await, 503, "no header: normal");

    gate.release(8);
    for holder in holders {
        assert_eq!(holder.await.unwrap(), StatusCode::OK);
    }
    common::eventually(|| shedder.metrics().active_requests == 0).await;
    assert_eq!(get_with(&server, "/", &[("x-priority", "low")]).await, 200);
}

#[tokio::test]
async fn a_plain_hyper_server_passes_the_peer_as_a_socket_addr_extension() {
    use std::convert::Infallible;

    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::{ServiceBuilder, ServiceExt};

    let limiter = LocalRateLimiter::builder("api")
        .rate("1/minute".parse().unwrap())
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(HttpStageLayer::new(KeyedRateLimit::new(limiter.clone())))
        .service_fn(|_: http::Request<Incoming>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from("hi"))))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            // What axum's `ConnectInfo` does, by hand: the peer goes into the extensions.
            let service =
                service
                    .clone()
                    .map_request(move |mut request: http::Request<Incoming>| {
                        request.extensions_mut().insert(peer);
                        request
                    });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)),
            );
        }
    });
    let url = format!("http://{addr}/");
    let first = client()
        .get(&url)
        .header("x-forwarded-for", "1.1.1.1")
        .send()
        .await
        .unwrap();
    assert_eq!(first.text().await.unwrap(), "hi");
    let second = client()
        .get(&url)
        .header("x-forwarded-for", "2.2.2.2")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        !limiter.check_now("127.0.0.1").is_allowed(),
        "keyed by the peer"
    );
}
