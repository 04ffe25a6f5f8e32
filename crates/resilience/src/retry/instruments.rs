//! Retry's metrics: its row of the table in [`crate::telemetry`], registered once when the
//! retry is built.

use std::sync::Arc;

use crate::telemetry::{self, Counter};

#[derive(Debug)]
pub(crate) struct Instruments {
    /// By result: success, retry, give_up.
    attempts: [Counter; 3],
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        Self {
            attempts: ["success", "retry", "give_up"].map(|result| {
                Counter::register(&telemetry::RETRY_ATTEMPTS, name, &[("result", result)])
            }),
        }
    }

    /// An attempt succeeded.
    #[inline]
    pub(crate) fn succeeded(&self) {
        self.attempts[0].increment();
    }

    /// An attempt failed and another follows.
    #[inline]
    pub(crate) fn retrying(&self) {
        self.attempts[1].increment();
    }

    /// An attempt failed and the retry gave up.
    #[inline]
    pub(crate) fn gave_up(&self) {
        self.attempts[2].increment();
    }
}
