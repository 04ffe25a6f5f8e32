//! [`HttpRetryService`]: one request, sent once or as often as the policy allows.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use resilience::Error;
use tower_service::Service;

use super::{Attempts, HttpRetryLayer, NotRetried, Replay, RetryBody, Settings};
use crate::body::ResponseBody;
use crate::replay::{buffer, Buffered, ReplayBody};
use crate::service::{made, passthrough, Handle, HttpService};

/// An HTTP service whose idempotent requests are retried; made by
/// [`HttpRetryLayer`].
///
/// Its inner service receives request bodies of type `T::Body` ([`RetryBody`]).
pub type HttpRetryService<S, T = Replay> = HttpService<S, HttpRetryLayer<T>>;

/// Why one attempt is retried: the answer itself (kept, to hand back if it was the last) or
/// the inner service's error.
enum Attempt<R, E> {
    Answer(R),
    Failed(E),
}

impl<B, E: fmt::Display> fmt::Display for Attempt<Response<B>, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answer(response) => write!(f, "retryable answer {}", response.status()),
            Self::Failed(error) => error.fmt(f),
        }
    }
}

impl<S, T, ReqBody, ResBody> Handle<S, Request<ReqBody>> for HttpRetryLayer<T>
where
    T: RetryBody<ReqBody> + 'static,
    T::Body: Send,
    S: Service<Request<T::Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Display + Send + 'static,
    ReqBody: Body<Data = Bytes> + Unpin + Send + 'static,
    ReqBody::Error: Send,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type InnerRequest = Request<T::Body>;
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;

    async fn handle(
        self: Arc<Self>,
        mut inner: S,
        request: Request<ReqBody>,
    ) -> Result<Self::Response, S::Error> {
        let shared = &self.settings;
        let (parts, body) = request.into_parts();
        if shared.exclude.matches(parts.uri.path()) {
            let once = T::from_replay(ReplayBody::streaming(body));
            return inner
                .call(Request::from_parts(parts, once))
                .await
                .map(passthrough);
        }
        let (body, reason) = if shared.idempotent(&parts) {
            match buffer(body, shared.max_body_bytes).await {
                Buffered::Whole { data, trailers } => {
                    return retried::<S, T, ReqBody, ResBody>(shared, inner, parts, data, trailers)
                        .await;
                }
                Buffered::TooLarge(body) => (body, NotRetried::BodyTooLarge),
                Buffered::Unreadable(body) => (body, NotRetried::BodyUnreadable),
            }
        } else {
            (ReplayBody::streaming(body), NotRetried::NonIdempotentMethod)
        };
        let once = Request::from_parts(parts, T::from_replay(body));
        let response = inner.call(once).await?;
        Ok(passthrough(shared.skipped(response, reason)))
    }
}

/// Sends a request with a buffered body as many times as the policy allows.
async fn retried<S, T, ReqBody, ResBody>(
    shared: &Settings,
    inner: S,
    parts: http::request::Parts,
    data: Bytes,
    trailers: Option<http::HeaderMap>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    T: RetryBody<ReqBody>,
    S: Service<Request<T::Body>, Response = Response<ResBody>> + Clone,
    S::Error: fmt::Display,
    ReqBody: Body<Data = Bytes>,
{
    let attempts = AtomicU32::new(0);
    let counter = &attempts;
    let outcome = shared
        .retry
        .call(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            let mut service = inner.clone();
            let request = Request::from_parts(
                parts.clone(),
                T::from_replay(ReplayBody::buffered(data.clone(), trailers.clone())),
            );
            async move {
                poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Attempt::Failed)?;
                let (head, body) = service
                    .call(request)
                    .await
                    .map_err(Attempt::Failed)?
                    .into_parts();
                let retryable = shared.retryable(&head);
                let response = Response::from_parts(head, body);
                if retryable {
                    Err(Attempt::Answer(response))
                } else {
                    Ok(response)
                }
            }
        })
        .await;
    let last = match outcome {
        Ok(response) => Ok(response),
        Err(Error::Inner(attempt)) => Err(attempt),
        Err(Error::RetryExhausted {
            last: Some(last), ..
        }) => match *last {
            Error::Inner(attempt) => Err(attempt),
            other => return Ok(made(gave_up(&other))),
        },
        Err(other) => return Ok(made(gave_up(&other))),
    };
    let mut response = match last {
        Ok(response) | Err(Attempt::Answer(response)) => response,
        Err(Attempt::Failed(error)) => return Err(error),
    };
    response
        .extensions_mut()
        .insert(Attempts(attempts.load(Ordering::Relaxed)));
    Ok(passthrough(response))
}

/// An answer for an outcome the retry cannot produce with these rules (every error here is
/// the operation's own), kept so that no path panics.
fn gave_up<E: fmt::Display>(error: &Error<E>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(error.to_string()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
