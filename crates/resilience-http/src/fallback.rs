//! [`HttpFallbackLayer`]: answer with something else when the service fails.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{response, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::service::{made, passthrough, Handle, HttpService};
use crate::{ExcludePaths, TimedOut};

/// What the fallback is answering for.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum FallbackCause<'a> {
    /// A failing answer (its head; the body was dropped).
    Answer(&'a response::Parts),
    /// An error of the inner service.
    Error(&'a dyn fmt::Display),
}

impl fmt::Debug for FallbackCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answer(head) => f.debug_tuple("Answer").field(&head.status).finish(),
            Self::Error(error) => f.debug_tuple("Error").field(&error.to_string()).finish(),
        }
    }
}

/// Marks a response made by a [`HttpFallbackLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FellBack;

type Answer = dyn Fn(&FallbackCause<'_>) -> Response<Bytes> + Send + Sync;
type Select = dyn Fn(&response::Parts) -> bool + Send + Sync;

/// Answers for a failing service.
///
/// Clones share the fallback and its counter.
///
/// # What it does
///
/// When the inner service fails, the client gets the fallback's answer instead: a cached
/// page, an empty list, a static "degraded" document. Failing means, by default, an error of
/// the inner service, any 5xx (the service's own, or a 503 made by an inner layer of this
/// crate: an open circuit, a full bulkhead, a shed request) and a timeout made by an inner
/// [`HttpTimeoutLayer`](crate::HttpTimeoutLayer). A 429 is not a failure: a client over its rate
/// must hear so, not get a cached answer that teaches it to go on.
/// [`when`](HttpFallbackLayer::when) chooses otherwise.
///
/// The fallback is a closure from the [`FallbackCause`] to a response (a function of the
/// failure, never of the request's arguments), or a fixed response with
/// [`HttpFallbackLayer::response`]. Fallback answers carry [`FellBack`] in their extensions, and
/// [`served`](HttpFallbackLayer::served) counts them for dashboards.
///
/// Put it outermost: around the [composite](crate::CompositeLayer) on a server, or around a
/// retried client, so that it answers for everything inside.
///
/// ```
/// use axum::{routing::get, Router};
/// use bytes::Bytes;
/// use http::{header, Response, StatusCode};
/// use resilience_http::HttpFallbackLayer;
///
/// let degraded = Response::builder()
///     .status(StatusCode::OK)
///     .header(header::CONTENT_TYPE, "application/json")
///     .header("x-degraded", "1")
///     .body(Bytes::from_static(br#"{"recommendations":[]}"#))
///     .unwrap();
/// let app: Router = Router::new()
///     .route("/recommendations", get(|| async { "..." }))
///     .layer(HttpFallbackLayer::response(degraded));
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct HttpFallbackLayer {
    answer: Arc<Answer>,
    when: Option<Arc<Select>>,
    exclude: ExcludePaths,
    served: Arc<AtomicU64>,
}

impl HttpFallbackLayer {
    /// Answers failures with what `answer` builds.
    pub fn new<F>(answer: F) -> Self
    where
        F: Fn(&FallbackCause<'_>) -> Response<Bytes> + Send + Sync + 'static,
    {
        Self {
            answer: Arc::new(answer),
            when: None,
            exclude: ExcludePaths::none(),
            served: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Answers failures with a copy of `response`.
    pub fn response(response: Response<Bytes>) -> Self {
        Self::new(move |_| response.clone())
    }

    /// Falls back for the answers for which `failed` holds (errors always fall back).
    #[must_use]
    pub fn when<F>(mut self, failed: F) -> Self
    where
        F: Fn(&response::Parts) -> bool + Send + Sync + 'static,
    {
        self.when = Some(Arc::new(failed));
        self
    }

    /// Lets requests for these paths through untouched, failures included.
    #[must_use]
    pub fn exclude(mut self, exclude: ExcludePaths) -> Self {
        self.exclude = exclude;
        self
    }

    /// How many answers the fallback has made.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    fn fails(&self, head: &response::Parts) -> bool {
        match &self.when {
            Some(failed) => failed(head),
            None => head.status.is_server_error() || head.extensions.get::<TimedOut>().is_some(),
        }
    }

    fn answer(&self, cause: &FallbackCause<'_>) -> Response<Bytes> {
        self.served.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "resilience::fallback", ?cause, "answering with the fallback");
        let mut response = (self.answer)(cause);
        response.extensions_mut().insert(FellBack);
        response
    }
}

impl fmt::Debug for HttpFallbackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFallbackLayer")
            .field("when", &self.when.is_some())
            .field("exclude", &self.exclude)
            .field("served", &self.served())
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for HttpFallbackLayer {
    type Service = HttpFallbackService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpService::new(inner, Arc::new(self.clone()))
    }
}

/// An HTTP service with a fallback; made by [`HttpFallbackLayer`].
pub type HttpFallbackService<S> = HttpService<S, HttpFallbackLayer>;

impl<S, ReqBody, ResBody> Handle<S, Request<ReqBody>> for HttpFallbackLayer
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Display + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type InnerRequest = Request<ReqBody>;
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;

    async fn handle(
        self: Arc<Self>,
        mut inner: S,
        request: Request<ReqBody>,
    ) -> Result<Self::Response, S::Error> {
        if self.exclude.matches(request.uri().path()) {
            return inner.call(request).await.map(passthrough);
        }
        match inner.call(request).await {
            Ok(response) => {
                let (head, body) = response.into_parts();
                if self.fails(&head) {
                    drop(body);
                    Ok(made(self.answer(&FallbackCause::Answer(&head))))
                } else {
                    Ok(passthrough(Response::from_parts(head, body)))
                }
            }
            Err(error) => Ok(made(self.answer(&FallbackCause::Error(&error)))),
        }
    }
}
