//! [`ResilientMiddleware`]: the whole stack in one `reqwest-middleware` middleware, so a
//! request pays for one boxed future, not one per pattern; the same stack sends through a
//! bare client too (`crate::direct`), generic over where an attempt's request goes.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::Either;
use futures_util::TryFutureExt;
use http::header::HeaderName;
use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use resilience::circuit_breaker::{KeyedCircuitBreaker, OwnedPermit as BreakerPermit};
use resilience::classify::Outcome;
use resilience::hedge::Hedge;
use resilience::retry::RetryRules;
use resilience::stage::{Admit, Stage, StagePermit};
use resilience::{Error, Rejection, Retry, Timeout};
use resilience_http::DeadlinePropagation;

use crate::{host, ClientError, ResilientMiddlewareBuilder};

/// How many times a request was sent; in the extensions of its response when it was sent
/// more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempts(pub u32);

/// Retry, hedging, a circuit breaker per host, a client-side rate limit (or any other
/// [`Stage`]) and a timeout, for a `reqwest` client, as one `reqwest-middleware` middleware.
///
/// Build it with [`ResilientMiddleware::builder`] and add it with
/// `reqwest_middleware::ClientBuilder::with`, or send through it without
/// `reqwest-middleware` with [`execute`](Self::execute) or
/// [`send_with`](crate::SendWith::send_with); see the [crate docs](crate) for what each part
/// does, which way to choose, and examples. `S` is the stage every attempt passes (`()` for
/// none).
///
/// Cheap to clone; clones share the retry policy (and its budget), the hedge, the breakers,
/// the stage and the timeout.
#[derive(Debug)]
pub struct ResilientMiddleware<S = ()> {
    pub(crate) settings: Arc<Settings<S>>,
}

#[derive(Debug)]
pub(crate) struct Settings<S> {
    pub(crate) retry: Option<Retry>,
    pub(crate) hedge: Option<Hedge>,
    pub(crate) rules: RetryRules<Response, Failure>,
    pub(crate) breakers: Option<KeyedCircuitBreaker<String>>,
    pub(crate) stage: S,
    pub(crate) timeout: Option<Timeout>,
    pub(crate) retry_statuses: Arc<[StatusCode]>,
    pub(crate) idempotency_key: Option<HeaderName>,
    pub(crate) deadline: Option<DeadlinePropagation>,
}

/// Why an attempt is retried, as the core retry sees it: a retryable answer (kept, to hand
/// back if it was the last) or a failure of reqwest or of a later middleware.
pub(crate) enum Failure {
    Answer(Response),
    Sent(reqwest_middleware::Error),
    /// A body that was cloned once and then could not be (it cannot happen with reqwest's
    /// bodies; kept so that no path panics).
    NotCloneable,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answer(response) => write!(f, "retryable answer {}", response.status()),
            Self::Sent(error) => error.fmt(f),
            Self::NotCloneable => f.write_str("request body cannot be cloned"),
        }
    }
}

impl ResilientMiddleware {
    /// Starts building a middleware with nothing in it: add the parts you want.
    pub fn builder() -> ResilientMiddlewareBuilder {
        ResilientMiddlewareBuilder::new()
    }
}

impl<S> ResilientMiddleware<S> {
    /// The retry policy, if retries are on.
    pub fn retry(&self) -> Option<&Retry> {
        self.settings.retry.as_ref()
    }

    /// The hedging policy, if hedging is on.
    pub fn hedge(&self) -> Option<&Hedge> {
        self.settings.hedge.as_ref()
    }

    /// The per-host breakers, if on.
    pub fn breakers(&self) -> Option<&KeyedCircuitBreaker<String>> {
        self.settings.breakers.as_ref()
    }

    /// The stage every attempt passes.
    pub fn stage(&self) -> &S {
        &self.settings.stage
    }

    /// The timeout of each attempt, if on.
    pub fn timeout(&self) -> Option<&Timeout> {
        self.settings.timeout.as_ref()
    }
}

/// The future of one request through the middleware, boxed as the trait asks.
type Handled<'a> = Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'a>>;

// Written out rather than with `#[async_trait]`: each way of sending is boxed at its own
// size, so a request sent once does not carry (and copy into its box) the room a retried or
// hedged request needs.
impl<S> Middleware for ResilientMiddleware<S>
where
    S: Stage + 'static,
{
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        request: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Handled<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        // Each way of sending boxed at its own size.
        match self.settings.send(request, extensions, next) {
            Ok(Either::Left(once)) => Box::pin(once.map_err(Into::into)),
            Ok(Either::Right(repeated)) => Box::pin(repeated.map_err(Into::into)),
            Err(error) => refused(error),
        }
    }
}

/// Where an attempt's request goes: the rest of a `reqwest-middleware` chain, or a bare
/// client. All the rest (retry, hedging, the breakers, the stages, the timeout) is the same
/// for both.
pub(crate) trait Transport: Clone + Send + Sync {
    /// What an attempt carries besides its request, which the transport may write to: the
    /// chain's extensions; nothing for a bare client.
    type Carried: Default + Clone + Send + Sync;

    /// Sends `request`, one attempt.
    fn send<'b>(
        self,
        request: Request,
        carried: &'b mut Self::Carried,
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'b
    where
        Self: 'b;
}

impl Transport for Next<'_> {
    type Carried = Extensions;

    fn send<'b>(
        self,
        request: Request,
        carried: &'b mut Extensions,
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'b
    where
        Self: 'b,
    {
        self.run(request, carried)
    }
}

impl Transport for &reqwest::Client {
    type Carried = ();

    fn send<'b>(
        self,
        request: Request,
        (): &'b mut (),
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'b
    where
        Self: 'b,
    {
        execute(self, request)
    }
}

/// An owned client, as a request builder hands it over: a request that may be sent again
/// clones it for each round (a reference count the client's own send takes too).
impl Transport for reqwest::Client {
    type Carried = ();

    fn send<'b>(
        self,
        request: Request,
        (): &'b mut (),
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'b
    where
        Self: 'b,
    {
        execute(&self, request)
    }
}

/// reqwest's send, its error as the middleware's. reqwest's future holds a reference to the
/// client of its own, so it borrows nothing.
fn execute(
    client: &reqwest::Client,
    request: Request,
) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'static {
    client
        .execute(request)
        .map_err(reqwest_middleware::Error::Reqwest)
}

/// An attempt whose permits are taken: its request sent, or waiting for the stage.
///
/// The request lives in it only while the stage makes it wait: once sent, an attempt's
/// future holds the send's future and the permits, not the request (some 260 bytes), which
/// keeps the one box a request costs small.
struct Started<'a, F, T: Transport, P> {
    breaker: Option<BreakerPermit>,
    sending: Sending<'a, F, T, P>,
}

enum Sending<'a, F, T: Transport, P> {
    /// Admitted at once, and sent.
    Sent { sent: F, permit: P },
    /// The stage makes the attempt wait (a queue, a wait for the rate); sent once admitted.
    Waiting(Box<Waiting<'a, T, P>>),
}

struct Waiting<'a, T: Transport, P> {
    admit: Admit<P>,
    request: Request,
    carried: &'a mut T::Carried,
    transport: T,
}

impl<S: Stage> Settings<S> {
    /// Whether `request` is sent once: nothing would repeat it, or it is not safe to repeat.
    fn sends_once(&self, request: &Request) -> bool {
        (self.retry.is_none() && self.hedge.is_none()) || !self.may_retry(request)
    }

    /// The future of `request`, sent once or repeatably; a refusal before anything is sent
    /// comes back at once.
    #[expect(
        clippy::type_complexity,
        reason = "two opaque futures, one per way of sending"
    )]
    #[inline(always)]
    pub(crate) fn send<'a, T: Transport + 'a>(
        &'a self,
        request: Request,
        carried: &'a mut T::Carried,
        transport: T,
    ) -> Result<
        Either<
            impl Future<Output = Result<Response, ClientError>> + Send + 'a,
            impl Future<Output = Result<Response, ClientError>> + Send + 'a,
        >,
        ClientError,
    > {
        if self.sends_once(&request) {
            self.send_once(request, carried, transport)
                .map(Either::Left)
        } else {
            self.send_repeatable(request, carried, transport)
                .map(Either::Right)
        }
    }

    /// A request sent once: no clone of the request, no copy of the extensions.
    #[inline(always)]
    fn send_once<'a, T: Transport + 'a>(
        &'a self,
        request: Request,
        carried: &'a mut T::Carried,
        transport: T,
    ) -> Result<impl Future<Output = Result<Response, ClientError>> + Send + 'a, ClientError> {
        let started = self
            .start(request, carried, transport)
            .map_err(ClientError::Rejected)?;
        // `run` called inside: a future made outside and awaited in here would be kept
        // twice, as captured and as awaited.
        Ok(async move { finish(self.run(started).await, 1) })
    }

    /// A request that may be sent again: rounds of hedged attempts, retried. The request is
    /// kept as the template every attempt is copied from.
    #[inline(always)]
    fn send_repeatable<'a, T: Transport + 'a>(
        &'a self,
        request: Request,
        carried: &'a mut T::Carried,
        transport: T,
    ) -> Result<impl Future<Output = Result<Response, ClientError>> + Send + 'a, ClientError> {
        // A streaming body could be sent once and never again: refuse before sending rather
        // than fail half-way through the retries.
        if request.body().is_some_and(|body| body.as_bytes().is_none()) {
            return Err(ClientError::BodyNotCloneable {
                method: request.method().clone(),
                url: request.url().clone(),
            });
        }
        // One future for the whole request, keeping the request once: the template every
        // attempt is copied from. What it awaits is made inside it: a future made outside and
        // awaited in here would be kept twice, as captured and as awaited.
        Ok(async move {
            let template = &request;
            let sent = AtomicU32::new(0);
            // Each round gets the extensions by value and puts them back (a later middleware
            // may write to them); a std Mutex, held for a `take`, never across an await.
            let shared = Mutex::new(mem::take(carried));
            let result = match &self.retry {
                Some(retry) => {
                    let (shared, sent) = (&shared, &sent);
                    retry
                        .execute_with(&self.rules, || {
                            self.round(template, shared, transport.clone(), sent)
                        })
                        .await
                }
                None => self.round(template, &shared, transport, &sent).await,
            };
            *carried = shared
                .into_inner()
                .unwrap_or_else(|poison| poison.into_inner());
            finish(result, sent.load(Ordering::Relaxed))
        })
    }

    /// One round: a single attempt, or with hedging an attempt and more as the hedge's
    /// delay passes or attempts fail, each a copy of `template`. The first good answer wins
    /// (its extensions are the ones kept); the other attempts are dropped at once. `sent`
    /// counts the attempts started.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep its arguments twice (as passed and as bound), in every retried request's box"
    )]
    fn round<'a, T: Transport + 'a>(
        &'a self,
        template: &'a Request,
        shared: &'a Mutex<T::Carried>,
        transport: T,
        sent: &'a AtomicU32,
    ) -> impl Future<Output = Result<Response, Error<Failure>>> + Send + 'a {
        async move {
            let mut carried = mem::take(&mut *lock(shared));
            let result = 'round: {
                let Some(hedge) = &self.hedge else {
                    sent.fetch_add(1, Ordering::Relaxed);
                    // Started by a plain call that a refusal leaves at once: neither the copy
                    // of the request nor the start's result is kept in this future.
                    let started = match self.start_copy(template, &mut carried, transport) {
                        Ok(started) => started,
                        Err(error) => break 'round Err(error),
                    };
                    break 'round self.run(started).await;
                };
                // Boxed: a hedge's future is twice an attempt's, and every retried round would
                // carry its room. A hedged round copies the request for each hedge anyway.
                let round = self.hedged(hedge, template, &mut carried, transport, sent);
                Box::pin(round).await
            };
            *lock(shared) = carried;
            result
        }
    }

    /// Starts an attempt with a copy of `template`.
    #[expect(
        clippy::result_large_err,
        reason = "the error is the attempt's own result, handed on as it is"
    )]
    fn start_copy<'a, T: Transport + 'a>(
        &'a self,
        template: &Request,
        carried: &'a mut T::Carried,
        transport: T,
    ) -> Result<
        Started<
            'a,
            impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'a,
            T,
            S::Permit,
        >,
        Error<Failure>,
    > {
        let request = copy(template).ok_or(Error::Inner(Failure::NotCloneable))?;
        self.start(request, carried, transport)
            .map_err(Error::Rejected)
    }

    /// One round of attempts under `hedge`.
    async fn hedged<T: Transport>(
        &self,
        hedge: &Hedge,
        template: &Request,
        carried: &mut T::Carried,
        transport: T,
        sent: &AtomicU32,
    ) -> Result<Response, Error<Failure>> {
        let base = &*carried;
        let result = hedge
            .execute(|_| {
                sent.fetch_add(1, Ordering::Relaxed);
                // Attempts run side by side, so each writes to its own copy.
                let mut own = base.clone();
                let transport = transport.clone();
                async move {
                    let started = self.start_copy(template, &mut own, transport)?;
                    let response = self.run(started).await?;
                    Ok((response, own))
                }
            })
            .await;
        result.map(|(response, own)| {
            *carried = own;
            response
        })
    }

    /// Whether sending the request twice is safe: an idempotent method (RFC 9110 §9.2.2),
    /// or an idempotency key.
    fn may_retry(&self, request: &Request) -> bool {
        resilience_http::safe_to_repeat(
            request.method(),
            request.headers(),
            self.idempotency_key.as_ref(),
        )
    }

    /// Starts one attempt, at once: the deadline's budget into the headers, the permit of the
    /// host's breaker, then the stage's; the request is sent when the stage admits it at once.
    fn start<'a, T: Transport + 'a>(
        &'a self,
        mut request: Request,
        carried: &'a mut T::Carried,
        transport: T,
    ) -> Result<
        Started<
            'a,
            impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'a,
            T,
            S::Permit,
        >,
        Rejection,
    > {
        if let Some(propagation) = &self.deadline {
            propagation.outgoing(request.headers_mut())?;
        }
        // Looked up by every attempt, so no request holds its host's breaker between them.
        let breaker = match &self.breakers {
            Some(map) => Some(map.try_acquire_owned(&*host::origin(request.url()))?),
            None => None,
        };
        let sending = match self.stage.admit().now() {
            Ok(Ok(permit)) => Sending::Sent {
                sent: transport.send(request, carried),
                permit,
            },
            Ok(Err(rejection)) => return Err(rejection),
            Err(admit) => Sending::Waiting(Box::new(Waiting {
                admit,
                request,
                carried,
                transport,
            })),
        };
        Ok(Started { breaker, sending })
    }

    /// Runs a started attempt: its request under the timeout; the outcome goes back to both
    /// permits.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep `started` twice (as passed and as bound), in every request's box"
    )]
    fn run<'a, F, T>(
        &'a self,
        started: Started<'a, F, T, S::Permit>,
    ) -> impl Future<Output = Result<Response, Error<Failure>>> + Send + 'a
    where
        F: Future<Output = reqwest_middleware::Result<Response>> + Send + 'a,
        T: Transport + 'a,
    {
        async move {
            // Both are the transport's future; `Either` because the compiler cannot name it.
            let (sent, stage_permit) = match started.sending {
                Sending::Sent { sent, permit } => (Either::Left(sent), permit),
                Sending::Waiting(mut waiting) => {
                    let permit = (&mut waiting.admit).await.map_err(Error::Rejected)?;
                    let Waiting {
                        request,
                        carried,
                        transport,
                        ..
                    } = *waiting;
                    (Either::Right(transport.send(request, carried)), permit)
                }
            };
            let result = match &self.timeout {
                Some(timeout) => timeout.call(|| sent).await,
                None => sent.await.map_err(Error::Inner),
            };
            let outcome = match &result {
                Ok(response) => health(response.status()),
                // Another middleware's error, or a deadline that had passed: nothing about
                // the host's health.
                Err(
                    Error::Inner(reqwest_middleware::Error::Middleware(_)) | Error::Rejected(_),
                ) => Outcome::Ignored,
                Err(_) => Outcome::Failure,
            };
            if let Some(permit) = started.breaker {
                permit.record(outcome);
            }
            if stage_permit.wants_outcome() {
                stage_permit.record(outcome);
            }
            match result {
                Ok(response) if self.retry_statuses.contains(&response.status()) => {
                    Err(Error::Inner(Failure::Answer(response)))
                }
                Ok(response) => Ok(response),
                Err(error) => Err(error.map_inner(Failure::Sent)),
            }
        }
    }
}

/// A copy of `request` to send: its method, URL, headers, version, timeout and body; `None`
/// for a streaming body.
///
/// A request without a body is copied by hand: `Request::try_clone` also files an empty
/// timeout into a new extensions map of the copy, three allocations it then throws away, and
/// costs more than all the rest a retry adds to a request. This copy allocates its URL only.
/// It leaves out the other extensions of a request, which reqwest keeps to itself and reads
/// none of but the timeout (they come from an `http::Request` turned into a reqwest one, and
/// only a middleware turning the request back into an `http::Request` could see them). Only
/// reqwest can share a body's bytes, so a request with a body is copied by reqwest.
fn copy(request: &Request) -> Option<Request> {
    if request.body().is_some() {
        return request.try_clone();
    }
    let mut copy = Request::new(request.method().clone(), request.url().clone());
    // A GET often has no headers of its own yet (the client adds its defaults when it sends).
    if !request.headers().is_empty() {
        *copy.headers_mut() = request.headers().clone();
    }
    *copy.version_mut() = request.version();
    if let Some(&timeout) = request.timeout() {
        *copy.timeout_mut() = Some(timeout);
    }
    Some(copy)
}

/// What an answer says about the host: a 5xx is a failure; a 429 says nothing about its
/// health (it is this client's pace), so it is neither; anything else is a success.
fn health(status: StatusCode) -> Outcome {
    if status.is_server_error() {
        Outcome::Failure
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::Ignored
    } else {
        Outcome::Success
    }
}

/// The caller's answer: a response (the last one, after retries), or one flat error.
fn finish(
    result: Result<Response, Error<Failure>>,
    attempts: u32,
) -> Result<Response, ClientError> {
    match result {
        Ok(response) => Ok(stamp(response, attempts)),
        Err(Error::RetryExhausted { attempts, last }) => match last.map(|last| *last) {
            Some(Error::Inner(Failure::Answer(response))) => Ok(stamp(response, attempts)),
            Some(last) => Err(ClientError::RetryExhausted {
                attempts,
                last: Box::new(flat(last)),
            }),
            // No result predicate is used, so every exhausted retry has a last error.
            None => Err(ClientError::RetryExhausted {
                attempts,
                last: Box::new(ClientError::Middleware(anyhow::anyhow!(
                    "no response kept from the last attempt"
                ))),
            }),
        },
        Err(Error::Inner(Failure::Answer(response))) => Ok(stamp(response, attempts)),
        Err(other) => Err(flat(other)),
    }
}

/// Any other outcome, flattened.
fn flat(error: Error<Failure>) -> ClientError {
    match error {
        Error::Inner(Failure::Sent(error)) => ClientError::from(error),
        Error::Inner(Failure::Answer(response)) => {
            ClientError::Middleware(anyhow::anyhow!("retryable answer {}", response.status()))
        }
        Error::Inner(Failure::NotCloneable) => {
            ClientError::Middleware(anyhow::anyhow!("request body cannot be cloned"))
        }
        Error::Rejected(rejection) => ClientError::Rejected(rejection),
        Error::Timeout { elapsed, limit } => ClientError::Timeout { elapsed, limit },
        other => ClientError::Middleware(anyhow::anyhow!("{other}")),
    }
}

fn stamp(mut response: Response, attempts: u32) -> Response {
    if attempts > 1 {
        response.extensions_mut().insert(Attempts(attempts));
    }
    response
}

/// The answer to a request refused before anything was sent.
fn refused<'a>(error: ClientError) -> Handled<'a> {
    Box::pin(std::future::ready(Err(error.into())))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl<S> Clone for ResilientMiddleware<S> {
    fn clone(&self) -> Self {
        Self {
            settings: Arc::clone(&self.settings),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderValue, Method, Version};

    use super::*;

    fn request() -> Request {
        let url = reqwest::Url::parse("https://user:pw@example.com:8443/a/b?c=d#e").unwrap();
        let mut request = Request::new(Method::PUT, url);
        request
            .headers_mut()
            .insert("idempotency-key", HeaderValue::from_static("k-1"));
        request
            .headers_mut()
            .append("accept", HeaderValue::from_static("text/plain"));
        request
            .headers_mut()
            .append("accept", HeaderValue::from_static("application/json"));
        *request.version_mut() = Version::HTTP_2;
        request
    }

    fn assert_same(copy: &Request, request: &Request) {
        assert_eq!(copy.method(), request.method());
        assert_eq!(copy.url(), request.url());
        assert_eq!(copy.headers(), request.headers());
        assert_eq!(copy.version(), request.version());
        assert_eq!(copy.timeout(), request.timeout());
        assert_eq!(
            copy.body().map(reqwest::Body::as_bytes),
            request.body().map(reqwest::Body::as_bytes)
        );
    }

    #[test]
    fn a_copy_is_the_same_request() {
        let request = request();
        assert_same(&copy(&request).unwrap(), &request);

        let mut timed = request.try_clone().unwrap();
        *timed.timeout_mut() = Some(Duration::from_millis(1500));
        let copied = copy(&timed).unwrap();
        assert_eq!(copied.timeout(), Some(&Duration::from_millis(1500)));
        assert_same(&copied, &timed);

        let mut with_body = request.try_clone().unwrap();
        *with_body.body_mut() = Some(reqwest::Body::from("payload"));
        let copied = copy(&with_body).unwrap();
        assert_eq!(
            copied.body().and_then(reqwest::Body::as_bytes),
            Some(&b"payload"[..])
        );
        assert_same(&copied, &with_body);
    }
}
