//! What every layer's service shares: its future type and the moves between request, inner
//! service and response.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{response, Response};
use http_body::Body;

use crate::body::{BodyEnd, Guard, ResponseBody};

/// The future of every service in this crate.
///
/// Boxed because admission waits on futures whose types cannot be named (the core's
/// `Admission::admit` and `RateLimiter::check` return `impl Future`), and because a request
/// passes several steps; one allocation per request, as axum's own routes make.
pub type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Takes the inner service that `poll_ready` made ready, leaving a clone in its place
/// (tower's advice for services that call their inner service from a future: the clone may
/// not be ready, the taken one is).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// The inner service's response, passed through with nothing held.
pub(crate) fn passthrough<B, G: Guard>(response: Response<B>) -> Response<ResponseBody<B, G>> {
    response.map(ResponseBody::new)
}

/// A response made by a layer.
pub(crate) fn made<B, G: Guard>(response: Response<Bytes>) -> Response<ResponseBody<B, G>> {
    response.map(ResponseBody::full)
}

/// The inner service's response, its body holding the guard that `guard` builds from the
/// response head (where the outcome is judged).
///
/// The answer to a `HEAD` request has no body to send (hyper drops it unpolled), so it is
/// complete with its head: the guard goes back at once, with the head's outcome.
pub(crate) fn guarded<B, G, F>(
    response: Response<B>,
    head_request: bool,
    guard: F,
) -> Response<ResponseBody<B, G>>
where
    B: Body,
    G: Guard,
    F: FnOnce(&response::Parts) -> G,
{
    let (parts, body) = response.into_parts();
    let guard = guard(&parts);
    let mut body = ResponseBody::guarded(body, guard);
    if head_request {
        body.release(BodyEnd::Complete);
    }
    Response::from_parts(parts, body)
}
