//! The flaky upstream: an HTTP service on loopback that does what the traffic plan says for
//! each request (`/work?i=<request>&attempt=<n>`): its work runs under the phase's chaos,
//! which injects the phase's latency, and a failure (a 503) when the plan fails that attempt.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::plan::{Answer, Plan};

/// Starts an upstream on a free loopback port; it serves until the runtime ends.
pub(crate) async fn start(plan: Arc<Plan>) -> anyhow::Result<SocketAddr> {
    let app = Router::new().route("/work", get(work)).with_state(plan);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

async fn work(State(plan): State<Arc<Plan>>, uri: Uri) -> (StatusCode, &'static str) {
    let index = query(&uri, "i").and_then(|i| usize::try_from(i).ok());
    let attempt = query(&uri, "attempt").map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let Some((chaos, injections)) = index.and_then(|i| plan.chaos(i, attempt)) else {
        return (StatusCode::BAD_REQUEST, "not a planned request");
    };
    match chaos.run(injections, || async { Ok(Answer::Fresh) }).await {
        Ok(Answer::Fresh) => (StatusCode::OK, "fresh"),
        Ok(Answer::Failure) => (StatusCode::SERVICE_UNAVAILABLE, "upstream failure"),
        // Chaos over an infallible operation with no fault configured cannot fail.
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "chaos failed"),
    }
}

/// A numeric query parameter, e.g. `i` in `/work?i=7&attempt=1`.
pub(crate) fn query(uri: &Uri, name: &str) -> Option<u64> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_read_by_name() {
        let uri: Uri = "/work?i=17&attempt=2".parse().unwrap();
        assert_eq!(query(&uri, "i"), Some(17));
        assert_eq!(query(&uri, "attempt"), Some(2));
        assert_eq!(query(&uri, "x"), None);
        assert_eq!(query(&"/work?i=x".parse().unwrap(), "i"), None);
        assert_eq!(query(&"/work".parse().unwrap(), "i"), None);
    }
}
