//! [`HttpTimeoutLayer`]: answer for the service when it takes too long.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use resilience::{Error, Timeout};
use tower_layer::Layer;

use crate::service::{Stack, StagesService};
use crate::{ExcludePaths, Reply, TimedOut};

/// Bounds the time an HTTP service has to answer.
///
/// Clones share the [`Timeout`] (its limit, metrics and listeners).
///
/// # What it does
///
/// The service has until the [`Timeout`]'s limit to produce its response head; past it, its
/// future is dropped (the handler stops at its next await) and the client gets a 408
/// (aioresilience's status for a server-side timeout), or the status of the layer's [`Reply`] (504
/// is the usual choice for a gateway). The timeout covers the time to the response head, not
/// the streaming of its body, which may legitimately last long (tower-http's timeout does
/// the same).
///
/// The limit is the core [`Timeout`]'s, so its events and metrics count HTTP requests, it can
/// be changed at run time with `set_config`, and a request running under a
/// [`Deadline`](resilience::Deadline) gets the shorter of the two; a request whose deadline
/// already passed is refused at once with the same status. The 408 response carries
/// [`TimedOut`] in its extensions, which an outer circuit breaker counts as a failure. The
/// timeout is tested on a real socket.
///
/// ```
/// use axum::{routing::get, Router};
/// use http::StatusCode;
/// use resilience::Timeout;
/// use resilience_http::{Reply, HttpTimeoutLayer};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let timeout = Timeout::builder("handlers").limit(Duration::from_secs(10)).build()?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(HttpTimeoutLayer::new(timeout).reply(Reply::new().status(StatusCode::GATEWAY_TIMEOUT)));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpTimeoutLayer {
    timeout: Timeout,
    pub(crate) reply: Reply,
    pub(crate) exclude: ExcludePaths,
}

impl HttpTimeoutLayer {
    /// A layer applying `timeout`'s limit.
    pub fn new(timeout: Timeout) -> Self {
        Self {
            timeout,
            reply: Reply::new(),
            exclude: ExcludePaths::none(),
        }
    }

    setters! {
        /// Answers timed-out requests as `reply` says (408 by default).
        reply: Reply;
        /// Lets requests for these paths run without a limit.
        exclude: ExcludePaths;
    }

    /// The timeout.
    pub fn timeout(&self) -> &Timeout {
        &self.timeout
    }

    /// Runs `call` within the limit, or within `call_limit` if that is shorter (a stage's,
    /// such as a breaker's `timeout`): its own result, or the response for a timeout.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep its arguments twice (as passed and as bound), in every request's box"
    )]
    pub(crate) fn run<'a, T, E, F, Fut>(
        &'a self,
        call_limit: Option<Duration>,
        call: F,
    ) -> impl Future<Output = Result<Result<T, E>, Response<Bytes>>> + 'a
    where
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<T, E>> + 'a,
    {
        async move {
            if let Some(limit) = call_limit.filter(|limit| *limit < self.timeout.limit()) {
                return run_limit(&self.reply, limit, call()).await;
            }
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
}

impl From<Timeout> for HttpTimeoutLayer {
    fn from(timeout: Timeout) -> Self {
        Self::new(timeout)
    }
}

impl<S> Layer<S> for HttpTimeoutLayer {
    type Service = StagesService<S, ()>;

    fn layer(&self, inner: S) -> Self::Service {
        Stack::service(inner, (), Some(self.clone()), ExcludePaths::none(), None)
    }
}

/// The timeout alone, for another framework's middleware (see [`Stack`]).
impl From<HttpTimeoutLayer> for Stack<()> {
    fn from(layer: HttpTimeoutLayer) -> Self {
        Self::new((), Some(layer), ExcludePaths::none(), None)
    }
}

/// Runs `call` for at most `limit`: its own result, or `reply`'s response for a timeout.
///
/// Its timer is boxed: only a stage whose own limit is the shorter one (a breaker's
/// `timeout`) takes this way, and unboxed the timer would take room in every request's
/// future, whichever way it takes.
pub(crate) async fn run_limit<T, E>(
    reply: &Reply,
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, Response<Bytes>> {
    Box::pin(tokio::time::timeout(limit, call))
        .await
        .map_err(|_| {
            reply.time_out(TimedOut {
                elapsed: limit,
                limit,
            })
        })
}
