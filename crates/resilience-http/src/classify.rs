//! [`ResponseClassifier`]: which responses count as failures of the service.

use std::fmt;
use std::sync::Arc;

use http::response::Parts;
use resilience::classify::Outcome;
use resilience::Rejection;

use crate::TimedOut;

type Classify = dyn Fn(&Parts) -> Outcome + Send + Sync;

/// Judges a response for the patterns that learn from outcomes: the circuit breaker, the
/// adaptive concurrency limiter, and the bulkhead's success and failure counts.
///
/// The default, [`server_errors`](Self::server_errors):
///
/// * a response made by an inner layer of this crate because a pattern refused the request
///   (it carries the [`Rejection`]) is *ignored*: a full bulkhead says nothing about the
///   service's health;
/// * a timeout made by an inner layer (it carries [`TimedOut`]) is a *failure*;
/// * any other 5xx is a *failure*, and it reaches the client unchanged (never replaced
///   with a generic 500);
/// * everything else, 4xx included, is a *success*: the service answered.
///
/// An error returned by the inner service (not a response) is always a failure.
///
/// ```
/// use http::StatusCode;
/// use resilience::classify::Outcome;
/// use resilience_http::ResponseClassifier;
///
/// // 429s from the upstream count as failures too; 501 (not implemented) does not.
/// let classifier = ResponseClassifier::from_fn(|parts| match parts.status {
///     StatusCode::NOT_IMPLEMENTED => Outcome::Ignored,
///     status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
///         Outcome::Failure
///     }
///     _ => Outcome::Success,
/// });
/// # let _ = classifier;
/// ```
#[derive(Clone, Default)]
pub struct ResponseClassifier {
    custom: Option<Arc<Classify>>,
}

impl ResponseClassifier {
    /// The default described above.
    pub fn server_errors() -> Self {
        Self::default()
    }

    /// Judges every response with `classify` instead.
    pub fn from_fn<F>(classify: F) -> Self
    where
        F: Fn(&Parts) -> Outcome + Send + Sync + 'static,
    {
        Self {
            custom: Some(Arc::new(classify)),
        }
    }

    /// The outcome of a response, from its head.
    pub fn classify(&self, parts: &Parts) -> Outcome {
        if let Some(classify) = &self.custom {
            return classify(parts);
        }
        if parts.extensions.get::<Rejection>().is_some() {
            Outcome::Ignored
        } else if parts.extensions.get::<TimedOut>().is_some() || parts.status.is_server_error() {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

impl fmt::Debug for ResponseClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.custom.is_some() {
            "custom"
        } else {
            "server_errors"
        };
        f.debug_tuple("ResponseClassifier").field(&kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Response, StatusCode};
    use resilience::{PatternKind, RejectionReason};

    use super::*;

    fn head(status: u16) -> Parts {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response.into_parts().0
    }

    #[test]
    fn server_errors_fail_and_the_rest_succeed() {
        let classifier = ResponseClassifier::server_errors();
        assert_eq!(classifier.classify(&head(200)), Outcome::Success);
        assert_eq!(classifier.classify(&head(404)), Outcome::Success);
        assert_eq!(classifier.classify(&head(502)), Outcome::Failure);
    }

    #[test]
    fn inner_rejections_are_ignored_and_inner_timeouts_fail() {
        let classifier = ResponseClassifier::default();
        let mut rejected = head(503);
        rejected.extensions.insert(Rejection::new(
            PatternKind::Bulkhead,
            "pool".into(),
            RejectionReason::CapacityFull,
            None,
        ));
        assert_eq!(classifier.classify(&rejected), Outcome::Ignored);
        let mut timed_out = head(408);
        timed_out.extensions.insert(TimedOut {
            elapsed: Duration::from_secs(1),
            limit: Duration::from_secs(1),
        });
        assert_eq!(classifier.classify(&timed_out), Outcome::Failure);
    }
}
