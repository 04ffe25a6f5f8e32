//! Distributed mode: several protected gateway instances sharing one rate limit and one
//! circuit breaker through Redis.

use std::time::Duration;

/// What one protected gateway instance saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct InstanceFigures {
    /// Requests the shared rate limit let in through this instance.
    pub(crate) admitted: u64,
    /// Requests the shared rate limit refused at this instance.
    pub(crate) rejected: u64,
    /// When this instance first saw the shared circuit open, from the start of the run.
    pub(crate) first_open: Option<Duration>,
}

/// The shared budget and what each instance saw of it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedFigures {
    pub(crate) budget: String,
    pub(crate) instances: Vec<InstanceFigures>,
}

impl SharedFigures {
    /// The figures as terminal text.
    pub(crate) fn to_text(&self) -> String {
        String::new()
    }
}
