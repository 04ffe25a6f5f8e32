//! The stack without `reqwest-middleware`: [`ResilientMiddleware::execute`] and
//! [`SendWith`], straight over a `reqwest::Client`.

use std::future::{self, Future};

use futures_util::future::Either;
use reqwest::{Client, Request, RequestBuilder, Response};
use resilience::stage::Stage;

use crate::middleware::Transport;
use crate::{ClientError, ResilientMiddleware};

impl<S> ResilientMiddleware<S>
where
    S: Stage + 'static,
{
    /// Sends `request` with `client` through this stack, without `reqwest-middleware`:
    /// the same retries, hedging, breakers, stages, timeout and deadline, with the same
    /// answers and errors as through the middleware, but no boxed future of the framework
    /// around each request and each attempt.
    ///
    /// Use it (or [`SendWith::send_with`]) when this stack is the only middleware a client
    /// needs; add the middleware to a `reqwest_middleware::ClientWithMiddleware` to compose
    /// it with others.
    #[inline(always)]
    pub fn execute<'a>(
        &'a self,
        client: &'a Client,
        request: Request,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send + 'a {
        self.direct(request, client)
    }

    /// `request` sent through `transport`, a bare client; a refusal before anything is sent
    /// is ready at once.
    // Inlined into the caller: the future is then built where it is kept instead of copied
    // out through each layer (some 750 bytes with retry and a breaker per host).
    #[inline(always)]
    fn direct<'a, T>(
        &'a self,
        request: Request,
        transport: T,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send + 'a
    where
        T: Transport<Carried = ()> + 'a,
    {
        // A bare client carries nothing besides the request; the unit is the only `&mut`
        // with no owner to borrow from (a zero-sized box allocates nothing).
        let carried: &'a mut () = Box::leak(Box::new(()));
        match self.settings.send(request, carried, transport) {
            Ok(sending) => Either::Left(sending),
            Err(error) => Either::Right(future::ready(Err(error))),
        }
    }
}

/// Sends a `reqwest::RequestBuilder` through a [`ResilientMiddleware`], without
/// `reqwest-middleware`: `client.get(url).send_with(&stack)` in place of `.send()`.
///
/// ```no_run
/// use resilience::Retry;
/// use resilience_reqwest::{ClientError, ResilientMiddleware, SendWith};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let stack = ResilientMiddleware::builder()
///     .retry(Retry::builder("upstream").max_attempts(3).build()?)
///     .build()?;
/// let client = reqwest::Client::new();
/// let response = client
///     .get("http://127.0.0.1:8080/items")
///     .send_with(&stack)
///     .await?;
/// println!("{}", response.status());
/// # Ok(())
/// # }
/// ```
pub trait SendWith {
    /// Builds the request and sends it through `stack`; see
    /// [`ResilientMiddleware::execute`]. A request that cannot be built fails with
    /// [`ClientError::Request`], unsent.
    fn send_with<S>(
        self,
        stack: &ResilientMiddleware<S>,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send + '_
    where
        S: Stage + 'static;
}

impl SendWith for RequestBuilder {
    #[inline(always)]
    fn send_with<S>(
        self,
        stack: &ResilientMiddleware<S>,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send + '_
    where
        S: Stage + 'static,
    {
        // The builder's own client goes with the request: nothing borrowed, so no future
        // around the stack's to keep it in.
        let (client, request) = self.build_split();
        match request {
            Ok(request) => Either::Left(stack.direct(request, client)),
            Err(error) => Either::Right(future::ready(Err(ClientError::Request(error)))),
        }
    }
}
