//! Distributed mode: several protected gateway instances sharing one rate limit and one
//! circuit breaker through Redis.

/// The shared budget and what each instance saw of it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedFigures {}

impl SharedFigures {
    /// The figures as terminal text.
    pub(crate) fn to_text(&self) -> String {
        String::new()
    }
}
