//! An actix-web server behind the composite: a rate limit per client IP, a bulkhead, a
//! circuit breaker and a timeout, with `/health` left alone. `/flaky` fails three
//! requests in four with a 500, so the circuit opens after three calls.
//!
//! ```text
//! cargo run -p resilience-actix --example gateway
//! curl -i http://127.0.0.1:3000/            # 200 with RateLimit-* headers
//! for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:3000/; done
//!                                             # ... then 429 with Retry-After
//! for i in $(seq 8); do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:3000/flaky; done
//!                                             # 500s, then 503 circuit_open
//! curl -i http://127.0.0.1:3000/slow         # 408 after two seconds
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use resilience::rate_limit::LocalRateLimiter;
use resilience::{Bulkhead, CircuitBreaker, Timeout};
use resilience_actix::Resilience;
use resilience_http::{CompositeLayer, ExcludePaths};

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protection = Resilience::new(
        CompositeLayer::new()
            .rate_limit(
                LocalRateLimiter::builder("gateway")
                    .rate("10/minute".parse()?)
                    .build()?,
            )
            .bulkhead(Bulkhead::builder("gateway").max_concurrent(32).build()?)
            .circuit_breaker(
                CircuitBreaker::builder("gateway")
                    .failure_threshold(3)
                    .open_duration(Duration::from_secs(15))
                    .build()?,
            )
            .timeout(Timeout::new(Duration::from_secs(2))?)
            .exclude(ExcludePaths::none().exact("/health")),
    );
    let calls = Arc::new(AtomicU64::new(0));

    println!("listening on http://127.0.0.1:3000");
    HttpServer::new(move || {
        let calls = Arc::clone(&calls);
        App::new()
            .wrap(protection.clone())
            .route("/", web::get().to(|| async { "hello" }))
            .route("/health", web::get().to(|| async { "ok" }))
            .route(
                "/flaky",
                web::get().to(move || {
                    let call = calls.fetch_add(1, Ordering::Relaxed);
                    async move {
                        if call % 4 != 3 {
                            HttpResponse::InternalServerError().body("upstream failed")
                        } else {
                            HttpResponse::Ok().body("lucky")
                        }
                    }
                }),
            )
            .route(
                "/slow",
                web::get().to(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "too late"
                }),
            )
    })
    .bind(("127.0.0.1", 3000))?
    .run()
    .await?;
    Ok(())
}
