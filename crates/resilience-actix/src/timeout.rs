//! [`TimeoutError`]: the answer to a request that ran out of time, carried as an actix-web
//! error.

use std::fmt;

use actix_web::body::BoxBody;
use actix_web::http::StatusCode as ActixStatusCode;
use actix_web::{HttpResponse, ResponseError};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use resilience::Rejection;
use resilience_http::TimedOut;

use crate::convert;

/// A request that ran out of time, as an actix-web error whose response is
/// `resilience-http`'s answer: 408 with a problem+json body by default, or whatever the
/// timeout's [`Reply`](resilience_http::Reply) says (504 for a gateway).
///
/// Why an error and not a response: an actix-web response carries its request, and the
/// request went to the handler whose future the timeout dropped. actix-web keeps no second
/// handle on a request while its routing runs (holding one makes the router panic), so the
/// middleware answers with this error, which actix-web turns into exactly that response for
/// the client. Outer middleware sees an error; an outer [`Resilience`](crate::Resilience)
/// counts it as a failure, as `resilience-http` counts a timeout.
pub struct TimeoutError {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    timed_out: Option<TimedOut>,
    rejection: Option<Rejection>,
}

impl TimeoutError {
    pub(crate) fn new(made: Response<Bytes>) -> Self {
        let (parts, body) = made.into_parts();
        Self {
            status: parts.status,
            timed_out: parts.extensions.get::<TimedOut>().copied(),
            rejection: parts.extensions.get::<Rejection>().cloned(),
            headers: parts.headers,
            body,
        }
    }

    /// How long the request ran and its limit (`None` when its deadline had passed before
    /// it started).
    pub fn timed_out(&self) -> Option<TimedOut> {
        self.timed_out
    }

    /// The response's status: 408 unless the timeout's reply says otherwise.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Debug for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutError")
            .field("status", &self.status)
            .field("timed_out", &self.timed_out)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.timed_out {
            Some(timed_out) => write!(f, "request timed out after {:?}", timed_out.limit),
            None => f.write_str("request deadline exceeded"),
        }
    }
}

impl std::error::Error for TimeoutError {}

impl ResponseError for TimeoutError {
    fn status_code(&self) -> ActixStatusCode {
        ActixStatusCode::from_u16(self.status.as_u16()).unwrap_or(ActixStatusCode::REQUEST_TIMEOUT)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut made = Response::new(self.body.clone());
        *made.status_mut() = self.status;
        *made.headers_mut() = self.headers.clone();
        if let Some(timed_out) = self.timed_out {
            made.extensions_mut().insert(timed_out);
        }
        if let Some(rejection) = &self.rejection {
            made.extensions_mut().insert(rejection.clone());
        }
        convert::response_to_actix(made)
    }
}
