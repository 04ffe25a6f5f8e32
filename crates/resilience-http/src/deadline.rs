//! Deadlines that cross services: [`DeadlinePropagation`] reads a request's remaining time
//! budget and writes the budget left onto outgoing calls; [`DeadlineLayer`] makes the
//! incoming budget the [`Deadline`] of everything the service does for that request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request};
use pin_project_lite::pin_project;
use resilience::timeout::{Deadline, Scoped};
use resilience::{PatternKind, Rejection, RejectionReason, MAX_DURATION};
use tower_layer::Layer;
use tower_service::Service;

/// The header carrying the remaining budget in whole milliseconds, as Envoy (and so Istio)
/// sends it to the services behind it: a service in a mesh gets its deadline with no further
/// setup, and one called directly reads the same header from its callers.
pub const EXPECTED_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

/// gRPC's `grpc-timeout`: up to eight digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// How a deadline travels between services: which header carries it, and how much of the
/// budget each outgoing call keeps back for the way home.
///
/// Incoming, `grpc-timeout` is read when present (a gRPC request), otherwise the configured
/// millisecond header; an unreadable value counts as absent. Outgoing,
/// [`outgoing`](Self::outgoing) writes the time left before the current [`Deadline`] less
/// the margin, in the millisecond header, or in `grpc-timeout` for
/// [`outgoing_grpc`](Self::outgoing_grpc); a call with nothing left is refused rather than
/// sent, so a downstream never starts work its caller has already given up on.
///
/// ```
/// use http::HeaderMap;
/// use resilience::timeout::Deadline;
/// use resilience_http::DeadlinePropagation;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let propagation = DeadlinePropagation::new().margin(Duration::from_millis(20));
/// let deadline = Deadline::after(Duration::from_millis(500));
/// deadline
///     .scope(async {
///         let mut headers = HeaderMap::new();
///         let sent = propagation.outgoing(&mut headers).unwrap();
///         assert_eq!(sent, Some(Duration::from_millis(480)));
///         assert_eq!(headers["x-envoy-expected-rq-timeout-ms"], "480");
///     })
///     .await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DeadlinePropagation {
    header: HeaderName,
    margin: Duration,
    max: Duration,
}

impl DeadlinePropagation {
    /// The millisecond header [`EXPECTED_TIMEOUT_MS`], no margin, budgets up to
    /// [`MAX_DURATION`].
    pub fn new() -> Self {
        Self {
            header: EXPECTED_TIMEOUT_MS,
            margin: Duration::ZERO,
            max: MAX_DURATION,
        }
    }

    /// Carries the budget in whole milliseconds in `header` instead.
    #[must_use]
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }

    /// Keeps `margin` of the budget back from every outgoing call, for the answer's way back
    /// and the work after it (none by default).
    #[must_use]
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Believes incoming budgets up to `max` only: a caller cannot ask this service to work
    /// longer than it means to.
    #[must_use]
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max.min(MAX_DURATION);
        self
    }

    /// The budget an incoming request carries, capped at [`max`](Self::max); `None` when it
    /// carries none (or none readable).
    pub fn incoming(&self, headers: &HeaderMap) -> Option<Duration> {
        let budget = match headers.get(GRPC_TIMEOUT) {
            Some(value) => parse_grpc_timeout(value.to_str().ok()?)?,
            None => {
                let millis = headers.get(&self.header)?.to_str().ok()?.trim();
                Duration::from_millis(millis.parse().ok()?)
            }
        };
        Some(budget.min(self.max))
    }

    /// Writes the budget left for an outgoing call into `headers`: the time until the
    /// current [`Deadline`] less the margin. `Ok(None)` (and nothing written) outside any
    /// deadline; a [`Rejection`] for [`RejectionReason::DeadlineExpired`] when nothing is
    /// left, in which case the call should not be sent.
    pub fn outgoing(&self, headers: &mut HeaderMap) -> Result<Option<Duration>, Rejection> {
        self.write(headers, |budget| {
            (self.header.clone(), HeaderValue::from(millis(budget)))
        })
    }

    /// Like [`outgoing`](Self::outgoing), in gRPC's `grpc-timeout`.
    pub fn outgoing_grpc(&self, headers: &mut HeaderMap) -> Result<Option<Duration>, Rejection> {
        self.write(headers, |budget| (GRPC_TIMEOUT, grpc_timeout(budget)))
    }

    /// The budget an outgoing call made now should carry: the time until the current
    /// [`Deadline`] less the margin, in whole milliseconds or more. `Ok(None)` outside any
    /// deadline; a [`Rejection`] for [`RejectionReason::DeadlineExpired`] when nothing is
    /// left, in which case the call should not be sent.
    pub fn budget(&self) -> Result<Option<Duration>, Rejection> {
        let Some(deadline) = Deadline::current() else {
            return Ok(None);
        };
        let budget = deadline.remaining().saturating_sub(self.margin);
        // Whole milliseconds on the wire: less than one left is nothing left.
        if budget < Duration::from_millis(1) {
            return Err(Rejection::new(
                PatternKind::Deadline,
                Arc::from(deadline.name()),
                RejectionReason::DeadlineExpired,
                None,
            ));
        }
        Ok(Some(budget))
    }

    fn write(
        &self,
        headers: &mut HeaderMap,
        header: impl FnOnce(Duration) -> (HeaderName, HeaderValue),
    ) -> Result<Option<Duration>, Rejection> {
        let Some(budget) = self.budget()? else {
            return Ok(None);
        };
        let (name, value) = header(budget);
        headers.insert(name, value);
        Ok(Some(budget))
    }
}

/// A tonic client interceptor: every call made inside a [`Deadline`] carries the time left,
/// less the margin, in `grpc-timeout` (a shorter timeout the caller set on the request is
/// kept), and a call with nothing left is not sent but fails with `DEADLINE_EXCEEDED`.
///
/// ```
/// use resilience_http::DeadlinePropagation;
/// use std::time::Duration;
/// use tonic::service::Interceptor;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut propagation = DeadlinePropagation::new().margin(Duration::from_millis(20));
/// // With a generated client: `HealthClient::with_interceptor(channel, propagation)`.
/// let deadline = resilience::timeout::Deadline::after(Duration::from_millis(500));
/// let request = deadline
///     .scope(async { propagation.call(tonic::Request::new(())) })
///     .await
///     .unwrap();
/// assert_eq!(request.metadata().get("grpc-timeout").unwrap(), "480000u");
/// # }
/// ```
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl tonic::service::Interceptor for DeadlinePropagation {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let budget = self
            .budget()
            .map_err(|rejection| tonic::Status::deadline_exceeded(rejection.to_string()))?;
        let Some(budget) = budget else {
            return Ok(request);
        };
        let asked = request
            .metadata()
            .get(GRPC_TIMEOUT.as_str())
            .and_then(|value| parse_grpc_timeout(value.to_str().ok()?));
        if asked.is_none_or(|asked| budget < asked) {
            request.set_timeout(budget);
        }
        Ok(request)
    }
}

impl Default for DeadlinePropagation {
    fn default() -> Self {
        Self::new()
    }
}

/// Whole milliseconds, rounded down (a budget is never overstated).
fn millis(budget: Duration) -> u64 {
    u64::try_from(budget.as_millis()).unwrap_or(u64::MAX)
}

/// `grpc-timeout`'s value for `budget`: the finest unit whose count fits in eight digits,
/// rounded down.
pub fn grpc_timeout(budget: Duration) -> HeaderValue {
    const UNITS: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let nanos = budget.as_nanos();
    let (count, unit) = UNITS
        .iter()
        .map(|&(size, unit)| (nanos / size, unit))
        .find(|&(count, _)| count < 100_000_000)
        .unwrap_or((99_999_999, 'H'));
    HeaderValue::from_str(&format!("{count}{unit}")).expect("digits and a letter")
}

/// A `grpc-timeout` value (`100m`, `5S`, `1H`...), `None` when malformed.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let value = value.trim();
    let digits = value.get(..value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count: u64 = digits.parse().ok()?;
    Some(match value.as_bytes()[value.len() - 1] {
        b'H' => Duration::from_secs(count * 3600),
        b'M' => Duration::from_secs(count * 60),
        b'S' => Duration::from_secs(count),
        b'm' => Duration::from_millis(count),
        b'u' => Duration::from_micros(count),
        b'n' => Duration::from_nanos(count),
        _ => return None,
    })
}

/// Makes each request's incoming budget its [`Deadline`]: every [`Timeout`](resilience::Timeout)
/// and deadline inside waits at most that long, an
/// [`HttpTimeoutLayer`](crate::HttpTimeoutLayer) inside answers a request that arrives with no
/// budget left at once, and [`DeadlinePropagation::outgoing`] passes on what is left.
///
/// A request without a budget runs under no deadline, or under the
/// [`default_budget`](Self::default_budget) if one is set. Works for any tower service taking
/// `http::Request`s (axum, hyper, tonic).
///
/// ```
/// use axum::{routing::get, Router};
/// use resilience::timeout::Deadline;
/// use resilience_http::{DeadlineLayer, DeadlinePropagation};
/// use std::time::Duration;
///
/// let propagation = DeadlinePropagation::new().max(Duration::from_secs(30));
/// let app: Router = Router::new()
///     .route("/", get(|| async {
///         let left = Deadline::current().map(|deadline| deadline.remaining());
///         format!("{left:?}")
///     }))
///     .layer(DeadlineLayer::new(propagation).default_budget(Duration::from_secs(10)));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    propagation: DeadlinePropagation,
    default: Option<Duration>,
}

impl DeadlineLayer {
    /// A layer reading budgets as `propagation` says.
    pub fn new(propagation: DeadlinePropagation) -> Self {
        Self {
            propagation,
            default: None,
        }
    }

    /// Gives requests that carry no budget this one.
    #[must_use]
    pub fn default_budget(mut self, budget: Duration) -> Self {
        self.default = Some(budget.min(MAX_DURATION));
        self
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose requests run under the deadline they carry; made by [`DeadlineLayer`].
#[derive(Clone)]
pub struct DeadlineService<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S> DeadlineService<S> {
    resilience::service_accessors!(inner: S);
}

impl<S: fmt::Debug> fmt::Debug for DeadlineService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, B> Service<Request<B>> for DeadlineService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let budget = self
            .layer
            .propagation
            .incoming(request.headers())
            .or(self.layer.default);
        let inner = self.inner.call(request);
        let inner = match budget {
            Some(budget) => Scoping::Scoped {
                inner: Deadline::after(budget).named("request").scope(inner),
            },
            None => Scoping::Plain { inner },
        };
        DeadlineFuture { inner }
    }
}

pin_project! {
    /// The future of a [`DeadlineService`] call: the inner one, under the request's deadline
    /// when it has one.
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: Scoping<F>,
    }
}

pin_project! {
    #[project = ScopingProj]
    enum Scoping<F> {
        Scoped { #[pin] inner: Scoped<F> },
        Plain { #[pin] inner: F },
    }
}

impl<F: Future> Future for DeadlineFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            ScopingProj::Scoped { inner } => inner.poll(cx),
            ScopingProj::Plain { inner } => inner.poll(cx),
        }
    }
}

impl<F> fmt::Debug for DeadlineFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scoped = matches!(self.inner, Scoping::Scoped { .. });
        f.debug_struct("DeadlineFuture")
            .field("scoped", &scoped)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_round_trip_in_the_finest_unit_that_fits() {
        for (budget, text) in [
            (Duration::from_millis(250), "250000u"),
            (Duration::from_nanos(7), "7n"),
            (Duration::from_secs(5), "5000000u"),
            (Duration::from_secs(3600 * 24), "86400000m"),
            (Duration::MAX, "99999999H"),
        ] {
            assert_eq!(grpc_timeout(budget), text, "{budget:?}");
        }
        let budget = Duration::from_millis(1234);
        let parsed = parse_grpc_timeout(grpc_timeout(budget).to_str().unwrap()).unwrap();
        assert_eq!(parsed, budget);
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        for bad in ["", "m", "100", "123456789S", "-1S", "1.5S", "10x", "1 S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn incoming_prefers_grpc_timeout_and_caps_at_max() {
        let propagation = DeadlinePropagation::new().max(Duration::from_secs(2));
        let mut headers = HeaderMap::new();
        assert_eq!(propagation.incoming(&headers), None);
        headers.insert(EXPECTED_TIMEOUT_MS, HeaderValue::from_static("1500"));
        assert_eq!(
            propagation.incoming(&headers),
            Some(Duration::from_millis(1500))
        );
        headers.insert(EXPECTED_TIMEOUT_MS, HeaderValue::from_static("99999"));
        assert_eq!(propagation.incoming(&headers), Some(Duration::from_secs(2)));
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("300m"));
        assert_eq!(
            propagation.incoming(&headers),
            Some(Duration::from_millis(300))
        );
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("soon"));
        assert_eq!(propagation.incoming(&headers), None);
        let mut junk = HeaderMap::new();
        junk.insert(EXPECTED_TIMEOUT_MS, HeaderValue::from_static("-5"));
        assert_eq!(propagation.incoming(&junk), None);
    }

    #[tokio::test(start_paused = true)]
    async fn outgoing_writes_what_is_left_less_the_margin_and_refuses_when_nothing_is() {
        let propagation = DeadlinePropagation::new().margin(Duration::from_millis(10));
        let mut headers = HeaderMap::new();
        assert_eq!(propagation.outgoing(&mut headers), Ok(None));
        assert!(headers.is_empty());
        let deadline = Deadline::after(Duration::from_millis(100)).named("checkout");
        deadline
            .scope(async {
                let sent = propagation.outgoing_grpc(&mut headers).unwrap();
                assert_eq!(sent, Some(Duration::from_millis(90)));
                assert_eq!(headers[GRPC_TIMEOUT], "90000000n");
                tokio::time::advance(Duration::from_millis(89)).await;
                assert_eq!(
                    propagation.outgoing(&mut headers).unwrap(),
                    Some(Duration::from_millis(1))
                );
                tokio::time::advance(Duration::from_nanos(1)).await;
                let refused = propagation.outgoing(&mut headers).unwrap_err();
                assert_eq!(refused.reason(), RejectionReason::DeadlineExpired);
                assert_eq!(refused.name(), "checkout");
            })
            .await;
    }
}
