//! Tower middleware: [`RetryLayer`], [`RetryService`] and [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

use super::run::{self, Run, Step};
use super::{Retry, RetryRules};
use crate::classify::EveryError;
use crate::Error;

/// Applies a [`Retry`] policy to a tower service whose requests can be cloned.
///
/// Every error of the inner service is retried, unless [`rules`](Self::rules) say otherwise.
/// Clones of the layer, and every service it makes, share the one policy they were given
/// (its metrics, listeners and retry budget): cloning never creates a new budget.
///
/// ```
/// use resilience::retry::{Backoff, Retry, RetryLayer};
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let retry = Retry::builder("inventory")
///     .backoff(Backoff::constant(Duration::from_millis(100)))
///     .build()?;
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(retry))
///     .service(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(service.oneshot(21).await?, 42);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RetryLayer<R = EveryError> {
    retry: Retry,
    rules: Arc<R>,
}

impl RetryLayer {
    /// A layer retrying every error of the inner service.
    pub fn new(retry: Retry) -> Self {
        Self {
            retry,
            rules: Arc::new(EveryError),
        }
    }
}

impl<R> RetryLayer<R> {
    /// Retries what `rules` say instead, for a service answering `T` or failing with `E`
    /// (for example, responses with a 503 status).
    pub fn rules<T, E>(self, rules: RetryRules<T, E>) -> RetryLayer<RetryRules<T, E>> {
        RetryLayer {
            retry: self.retry,
            rules: Arc::new(rules),
        }
    }
}

impl<S, R> Layer<S> for RetryLayer<R> {
    type Service = RetryService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            retry: self.retry.clone(),
            rules: Arc::clone(&self.rules),
        }
    }
}

/// A tower service whose calls are retried by a [`Retry`] policy; made by [`RetryLayer`].
///
/// Each attempt gets its own clone of the request, and waits for the inner service to be
/// ready (`poll_ready`) before it is sent. The inner service's errors come back as
/// [`Error::Inner`] when not retried, or inside [`Error::RetryExhausted`]. An error from
/// the inner service's `poll_ready` ends the call at once, as `Error::Inner`.
#[derive(Debug, Clone)]
pub struct RetryService<S, R = EveryError> {
    inner: S,
    retry: Retry,
    rules: Arc<R>,
}

impl<S, R> RetryService<S, R> {
    crate::service_accessors!(inner: S; /** The retry policy. */ retry: Retry);

    /// The first attempt goes to the service that `poll_ready` readied; the future keeps a
    /// clone for the retries and readies it before each one (tower's retry does the same).
    fn start<Req>(&mut self, request: Req) -> ResponseFuture<S, Req, R>
    where
        S: Service<Req> + Clone,
        Req: Clone,
    {
        let future = self.inner.call(request.clone());
        ResponseFuture {
            state: State::Calling { future },
            service: self.inner.clone(),
            request,
            run: Run::new(run::start(&self.retry.inner)),
            retry: self.retry.clone(),
            rules: Arc::clone(&self.rules),
        }
    }
}

impl<S, Req> Service<Req> for RetryService<S, EveryError>
where
    S: Service<Req> + Clone,
    S::Error: fmt::Display,
    Req: Clone,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S, Req, EveryError>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Req) -> Self::Future {
        self.start(request)
    }
}

impl<S, Req, T, E> Service<Req> for RetryService<S, RetryRules<T, E>>
where
    S: Service<Req, Response = T, Error = E> + Clone,
    E: fmt::Display,
    Req: Clone,
{
    type Response = T;
    type Error = Error<E>;
    type Future = ResponseFuture<S, Req, RetryRules<T, E>>;

    crate::stage::forward_ready!();

    fn call(&mut self, request: Req) -> Self::Future {
        self.start(request)
    }
}

pin_project! {
    /// The future of a [`RetryService`] call. Dropping it cancels the running attempt or the
    /// wait; no further attempt starts.
    pub struct ResponseFuture<S, Req, R>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        request: Req,
        run: Run,
        retry: Retry,
        rules: Arc<R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        Waiting { #[pin] sleep: Sleep, delay: Duration },
        Readying,
        Done,
    }
}

/// Drives one call: attempt, judge, wait, ready the service, attempt again.
fn drive<S, Req>(
    mut state: Pin<&mut State<S::Future>>,
    cx: &mut Context<'_>,
    service: &mut S,
    request: &Req,
    run: &mut Run,
    retry: &Retry,
    rules: &RetryRules<S::Response, S::Error>,
) -> Poll<Result<S::Response, Error<S::Error>>>
where
    S: Service<Req>,
    S::Error: fmt::Display,
    Req: Clone,
{
    let inner = &*retry.inner;
    loop {
        match state.as_mut().project() {
            StateProj::Calling { future } => {
                let result = ready!(future.poll(cx)).map_err(Error::Inner);
                match run.step(inner, rules, result) {
                    Step::Return(result) => {
                        state.set(State::Done);
                        return Poll::Ready(result);
                    }
                    Step::Wait(delay) => state.set(State::Waiting {
                        sleep: tokio::time::sleep(delay),
                        delay,
                    }),
                }
            }
            StateProj::Waiting { sleep, delay } => {
                ready!(sleep.poll(cx));
                Run::waited(inner, *delay);
                state.set(State::Readying);
            }
            StateProj::Readying => {
                if let Err(error) = ready!(service.poll_ready(cx)) {
                    state.set(State::Done);
                    return Poll::Ready(Err(Error::Inner(error)));
                }
                let future = service.call(request.clone());
                state.set(State::Calling { future });
            }
            StateProj::Done => panic!("retry ResponseFuture polled after completion"),
        }
    }
}

impl<S, Req, R> Future for ResponseFuture<S, Req, R>
where
    S: Service<Req>,
    S::Error: fmt::Display,
    Req: Clone,
    R: LayerRules<S::Response, S::Error>,
{
    type Output = Result<S::Response, Error<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.rules.with_rules(|rules| {
            drive(
                this.state,
                cx,
                this.service,
                this.request,
                this.run,
                this.retry,
                rules,
            )
        })
    }
}

mod rules {
    use super::{EveryError, RetryRules};

    /// The rules a retry layer judges attempts by: the default ones ([`EveryError`]: every
    /// error is retried) or a user's [`RetryRules`]. Public only to name it in bounds.
    pub trait LayerRules<T, E> {
        /// Runs `judge` with the rules.
        fn with_rules<O>(&self, judge: impl FnOnce(&RetryRules<T, E>) -> O) -> O;
    }

    impl<T, E> LayerRules<T, E> for EveryError {
        fn with_rules<O>(&self, judge: impl FnOnce(&RetryRules<T, E>) -> O) -> O {
            // The default rules hold nothing, so making them on each poll costs nothing.
            judge(&RetryRules::new())
        }
    }

    impl<T, E> LayerRules<T, E> for RetryRules<T, E> {
        fn with_rules<O>(&self, judge: impl FnOnce(&Self) -> O) -> O {
            judge(self)
        }
    }
}
use rules::LayerRules;

impl<S, Req, R> fmt::Debug for ResponseFuture<S, Req, R>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("retry", &self.retry.name())
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}
