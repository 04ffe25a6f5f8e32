//! [`PriorityHeader`]: a load shedder admitting each request at the priority its header names.

use http::header::HeaderName;
use http::request::Parts;
use resilience::load_shed::{self, LoadShedder, Priority};

use crate::stage::{Admission, Refusal, RequestStage};
use crate::HttpStageLayer;

/// The default priority header, `X-Priority`.
pub const X_PRIORITY: HeaderName = HeaderName::from_static("x-priority");

/// A [`LoadShedder`] admitting each request at the priority named by a header.
///
/// # What it does
///
/// A [`LoadShedder`] sheds the least important work first: above 60 % of its capacity it
/// sheds `low` requests, above 75 % `normal` ones, above 90 % `high` ones, and `critical` ones
/// only wait at the hard cap. Over HTTP the priority comes from a header, `X-Priority` by
/// default, parsed case-insensitively (`HIGH`, `High` and `high` are one priority). A request
/// without the header, or with a value that names no priority, gets the default priority
/// (`normal`).
///
/// A header is a claim made by the client. [`max_priority`](PriorityHeader::max_priority)
/// caps what a claim can get: set it to `high` and nobody outside can make their requests
/// unsheddable by sending `X-Priority: critical`.
///
/// Use it in an [`HttpStageLayer`] or in the [composite](crate::CompositeLayer); the slot is held until the response body has
/// been sent, and a shed request gets a 503 with `Retry-After`.
///
/// ```
/// use axum::{routing::get, Router};
/// use resilience::load_shed::{LoadShedder, Priority};
/// use resilience_http::{HttpStageLayer, PriorityHeader};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let shedder = LoadShedder::builder("api").max_requests(200).build()?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(HttpStageLayer::new(PriorityHeader::new(shedder).max_priority(Priority::High)));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PriorityHeader {
    shedder: LoadShedder,
    header: HeaderName,
    default: Priority,
    max: Priority,
}

impl PriorityHeader {
    /// Reads `X-Priority`; `normal` without it; no cap.
    pub fn new(shedder: LoadShedder) -> Self {
        Self {
            shedder,
            header: X_PRIORITY,
            default: Priority::Normal,
            max: Priority::Critical,
        }
    }

    /// Reads the priority from header `name` instead.
    #[must_use]
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// The priority of requests without the header or with an unknown value.
    #[must_use]
    pub fn default_priority(mut self, priority: Priority) -> Self {
        self.default = priority;
        self
    }

    /// The highest priority a request can claim; higher claims get this one.
    #[must_use]
    pub fn max_priority(mut self, priority: Priority) -> Self {
        self.max = priority;
        self
    }

    /// The shedder.
    pub fn shedder(&self) -> &LoadShedder {
        &self.shedder
    }

    /// The priority a request with this head is admitted at.
    pub fn priority_of(&self, request: &Parts) -> Priority {
        let claimed = request
            .headers
            .get(&self.header)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| match value.parse::<Priority>() {
                Ok(priority) => Some(priority),
                Err(error) => {
                    tracing::debug!(target: "resilience::load_shed", %error, "priority header ignored");
                    None
                }
            })
            .unwrap_or(self.default);
        claimed.min(self.max)
    }
}

impl RequestStage for PriorityHeader {
    type Permit = load_shed::OwnedPermit;

    async fn admit_request(&self, request: &Parts) -> Result<Self::Permit, Refusal> {
        let priority = self.priority_of(request);
        Ok(self.shedder.acquire(priority).await?)
    }

    fn admit_now(&self, request: &Parts) -> Admission<Self::Permit> {
        Admission::of(self.shedder.admit_at(self.priority_of(request)))
    }
}

impl From<LoadShedder> for HttpStageLayer<PriorityHeader> {
    /// Reads `X-Priority`, as [`PriorityHeader::new`].
    fn from(shedder: LoadShedder) -> Self {
        Self::new(PriorityHeader::new(shedder))
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn head(priority: Option<&str>) -> Parts {
        let mut request = Request::get("/");
        if let Some(priority) = priority {
            request = request.header("x-priority", priority);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn priorities_parse_case_insensitively_with_a_default_and_a_cap() {
        let shedder = LoadShedder::builder("api").build().unwrap();
        let header = PriorityHeader::new(shedder);
        for value in ["HIGH", "High", "high", " high "] {
            assert_eq!(
                header.priority_of(&head(Some(value))),
                Priority::High,
                "{value}"
            );
        }
        assert_eq!(header.priority_of(&head(Some("LOW"))), Priority::Low);
        assert_eq!(header.priority_of(&head(None)), Priority::Normal);
        assert_eq!(header.priority_of(&head(Some("urgent"))), Priority::Normal);

        let capped = header
            .max_priority(Priority::High)
            .default_priority(Priority::Low);
        assert_eq!(capped.priority_of(&head(Some("Critical"))), Priority::High);
        assert_eq!(capped.priority_of(&head(None)), Priority::Low);
    }
}
