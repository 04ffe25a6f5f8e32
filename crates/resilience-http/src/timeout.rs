//! [`TimeoutLayer`]: answer for the service when it takes too long.
//!
//! # What it does
//!
//! The service has until the [`Timeout`]'s limit to produce its response head; past it, its
//! future is dropped (the handler stops at its next await) and the client gets a 408, the
//! seed's status for a server-side timeout, or the status of the layer's [`Reply`] (504 is
//! the usual choice for a gateway). The timeout covers the time to the response head, not
//! the streaming of its body, which may legitimately last long (tower-http's timeout does
//! the same).
//!
//! The limit is the core [`Timeout`]'s, so its events and metrics count HTTP requests, it can
//! be changed at run time with `set_config`, and a request running under a
//! [`Deadline`](resilience::Deadline) gets the shorter of the two; a request whose deadline
//! already passed is refused at once with the same status. The 408 response carries
//! [`TimedOut`] in its extensions, which an outer circuit breaker counts as a failure (seed:
//! "a timeout counts as a CB failure"). Sanic's integration accepted a timeout and ignored it
//! (bug B17); this one is tested on a real socket.
//!
//! ```
//! use axum::{routing::get, Router};
//! use http::StatusCode;
//! use resilience::Timeout;
//! use resilience_http::{Reply, TimeoutLayer};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let timeout = Timeout::builder("handlers").limit(Duration::from_secs(10)).build()?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(TimeoutLayer::new(timeout).reply(Reply::new().status(StatusCode::GATEWAY_TIMEOUT)));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use resilience::{Error, Timeout};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::service::{made, passthrough, take_ready, ResponseFuture};
use crate::{ExcludePaths, Reply, TimedOut};

/// Bounds the time an HTTP service has to answer; see the [module docs](self).
///
/// Clones share the [`Timeout`] (its limit, metrics and listeners).
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    timeout: Timeout,
    pub(crate) reply: Reply,
    pub(crate) exclude: ExcludePaths,
}

impl TimeoutLayer {
    /// A layer applying `timeout`'s limit.
    pub fn new(timeout: Timeout) -> Self {
        Self {
            timeout,
            reply: Reply::new(),
            exclude: ExcludePaths::none(),
        }
    }

    /// Answers timed-out requests as `reply` says (408 by default).
    #[must_use]
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Lets requests for these paths run without a limit.
    #[must_use]
    pub fn exclude(mut self, exclude: ExcludePaths) -> Self {
        self.exclude = exclude;
        self
    }

    /// The timeout.
    pub fn timeout(&self) -> &Timeout {
        &self.timeout
    }

    /// Runs `call` within the limit: its own result, or the response for a timeout.
    pub(crate) async fn run<T, E, F, Fut>(&self, call: F) -> Result<Result<T, E>, Response<Bytes>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.timeout.call(call).await {
            Ok(value) => Ok(Ok(value)),
            Err(Error::Inner(error)) => Ok(Err(error)),
            Err(Error::Timeout { elapsed, limit }) => {
                Err(self.reply.time_out(TimedOut { elapsed, limit }))
            }
            Err(Error::Rejected(expired)) => Err(self.reply.reject(&expired, None)),
            // `Timeout::call` returns nothing else; answer as for a timeout all the same.
            Err(_) => {
                let limit = self.timeout.limit();
                Err(self.reply.time_out(TimedOut {
                    elapsed: limit,
                    limit,
                }))
            }
        }
    }
}

impl From<Timeout> for TimeoutLayer {
    fn from(timeout: Timeout) -> Self {
        Self::new(timeout)
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            shared: Arc::new(self.clone()),
        }
    }
}

/// An HTTP service with a time limit; made by [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    shared: Arc<TimeoutLayer>,
}

impl<S> TimeoutService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TimeoutService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            if shared.exclude.matches(request.uri().path()) {
                return inner.call(request).await.map(passthrough);
            }
            match shared.run(|| inner.call(request)).await {
                Ok(result) => result.map(passthrough),
                Err(timed_out) => Ok(made(timed_out)),
            }
        })
    }
}
