//! [`ClientError`]: every way a request through the middleware can fail, in one flat enum.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, Url};
use resilience::Rejection;

/// Why a request sent through [`ResilientMiddleware`](crate::ResilientMiddleware) got no
/// response.
///
/// One enum for the whole stack, never `Error<Error<Error<_>>>`: match on it. Answers from
/// the server, a 503 included, are responses, not errors (also after the retries ran out: the
/// last answer comes back as it is, with [`Attempts`](crate::Attempts) in its extensions).
///
/// `reqwest-middleware` hands errors back as its own
/// [`reqwest_middleware::Error`]; turn one into this enum with `ClientError::from` (or `?`
/// into a function returning `ClientError`). Its `Reqwest` variant becomes
/// [`Request`](Self::Request), ours come back as themselves, and any other middleware's
/// error becomes [`Middleware`](Self::Middleware).
///
/// The `Display` wording is for humans and is not a stable contract.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// Not sent: a stage refused it (the circuit of its host is open or half-open and busy,
    /// the client-side rate limit is spent, the map of per-host breakers is full of busy
    /// breakers). [`Rejection::retry_after`] says when to come back, when it can be known.
    Rejected(Rejection),
    /// An attempt got no response within the middleware's timeout and was cancelled.
    Timeout {
        /// How long it had run.
        elapsed: Duration,
        /// The limit it exceeded.
        limit: Duration,
    },
    /// The retry policy gave up (attempts, time or budget) after a failure that was not an
    /// answer: a connection error or a timeout. `last` is that failure, never itself a
    /// `RetryExhausted`.
    RetryExhausted {
        /// Requests sent, the first one included.
        attempts: u32,
        /// The last attempt's failure.
        last: Box<Self>,
    },
    /// Not sent: retries or hedging are on and the request may be sent more than once (its
    /// method is idempotent or it carries an idempotency key), but its body is a stream that
    /// cannot be sent twice. Send a body of bytes, or send it through a client without
    /// retries and hedging.
    BodyNotCloneable {
        /// The request's method.
        method: Method,
        /// The request's URL.
        url: Url,
    },
    /// reqwest failed: connecting, sending, or reading the response head.
    Request(reqwest::Error),
    /// Another middleware of the client failed.
    Middleware(anyhow::Error),
}

impl ClientError {
    /// Whether a stage refused to send the request.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }

    /// Whether the request (or the last attempt, after retries) timed out, by this
    /// middleware's timeout or reqwest's own.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Request(error) => error.is_timeout(),
            Self::RetryExhausted { last, .. } => last.is_timeout(),
            _ => false,
        }
    }

    /// Whether the request (or the last attempt, after retries) could not connect.
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Request(error) => error.is_connect(),
            Self::RetryExhausted { last, .. } => last.is_connect(),
            _ => false,
        }
    }

    /// The rejection, if a stage refused to send the request.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }

    /// Requests this error stands for: the count for exhausted retries, 0 for a request
    /// refused before it was sent, 1 otherwise. A refusal that ended a retried request (its
    /// host's circuit opened meanwhile) counts 0, though earlier attempts were sent.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Rejected(_) | Self::BodyNotCloneable { .. } => 0,
            Self::RetryExhausted { attempts, .. } => *attempts,
            _ => 1,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(rejection) => write!(f, "request not sent: {rejection}"),
            Self::Timeout { limit, .. } => write!(f, "request timed out after {limit:?}"),
            Self::RetryExhausted { attempts, last } => {
                write!(f, "gave up after {attempts} attempts: {last}")
            }
            Self::BodyNotCloneable { method, url } => write!(
                f,
                "request {method} {url} not sent: it may be retried but its streaming body cannot be sent twice"
            ),
            Self::Request(error) => error.fmt(f),
            Self::Middleware(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Rejected(rejection) => Some(rejection),
            Self::RetryExhausted { last, .. } => Some(&**last),
            Self::Request(error) => Some(error),
            Self::Middleware(error) => Some(error.as_ref()),
            Self::Timeout { .. } | Self::BodyNotCloneable { .. } => None,
        }
    }
}

impl From<reqwest_middleware::Error> for ClientError {
    fn from(error: reqwest_middleware::Error) -> Self {
        match error {
            reqwest_middleware::Error::Reqwest(error) => Self::Request(error),
            reqwest_middleware::Error::Middleware(error) => match error.downcast::<Self>() {
                Ok(ours) => ours,
                Err(other) => Self::Middleware(other),
            },
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        Self::Request(error)
    }
}

/// What the middleware hands to `reqwest-middleware`: reqwest's errors stay reqwest's (so
/// code written for a bare client keeps working), ours travel inside its `Middleware`
/// variant and come back out with `ClientError::from`.
impl From<ClientError> for reqwest_middleware::Error {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Request(error) => Self::Reqwest(error),
            ClientError::Middleware(error) => Self::Middleware(error),
            ours => Self::Middleware(anyhow::Error::new(ours)),
        }
    }
}
