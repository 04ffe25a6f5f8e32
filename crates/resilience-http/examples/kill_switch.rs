//! A stage of your own in the composite: a kill switch that an operator turns on with a
//! header, refusing every other request with 503 until it is turned off again.
//!
//! ```text
//! cargo run -p resilience-http --example kill_switch
//! curl -i http://127.0.0.1:3000/                                  # 200
//! curl -i -X POST -H 'x-kill-switch: on' http://127.0.0.1:3000/   # 200, switch on
//! curl -i http://127.0.0.1:3000/                                  # 503 kill_switch
//! curl -i -X POST -H 'x-kill-switch: off' http://127.0.0.1:3000/  # 200, switch off
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::{http::request::Parts, routing::get, Router};
use resilience::{Bulkhead, PatternKind, Rejection, RejectionReason};
use resilience_http::{CompositeLayer, Refusal, RequestStage};

#[derive(Clone, Default)]
struct KillSwitch(Arc<AtomicBool>);

impl RequestStage for KillSwitch {
    type Permit = ();

    async fn admit_request(&self, request: &Parts) -> Result<(), Refusal> {
        match request.headers.get("x-kill-switch").map(|v| v.as_bytes()) {
            Some(b"on") => self.0.store(true, Ordering::Relaxed),
            Some(b"off") => self.0.store(false, Ordering::Relaxed),
            _ if self.0.load(Ordering::Relaxed) => {
                let reason = RejectionReason::Custom("switched off by an operator");
                let pattern = PatternKind::Custom("kill_switch");
                return Err(Rejection::new(pattern, "api".into(), reason, None).into());
            }
            _ => {}
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layer = CompositeLayer::new()
        .stage(KillSwitch::default())
        .bulkhead(Bulkhead::builder("api").max_concurrent(64).build()?);
    let app = Router::new()
        .route("/", get(|| async { "hello" }).post(|| async { "switched" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
