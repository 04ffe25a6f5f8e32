//! The load shedder's metrics: its rows of the table in [`crate::telemetry`], registered once
//! when the shedder is built.

use std::sync::Arc;

use super::Priority;
use crate::telemetry::{self, Counter, Gauge};

const PRIORITIES: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Critical,
];

fn index(priority: Priority) -> usize {
    match priority {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Critical => 3,
    }
}

#[derive(Debug)]
pub(crate) struct Instruments {
    accepted: [Counter; 4],
    shed: [Counter; 4],
    /// Permits alive: up when one is made, down when it is dropped.
    pub(super) active: Gauge,
}

impl Instruments {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        let decision = |decision| {
            PRIORITIES.map(|priority| {
                let labels = [("decision", decision), ("priority", priority.as_str())];
                Counter::register(&telemetry::LOAD_SHED_DECISIONS, name, &labels)
            })
        };
        Self {
            accepted: decision("accepted"),
            shed: decision("shed"),
            active: Gauge::register(&telemetry::LOAD_SHED_ACTIVE, name, &[]),
        }
    }

    #[inline]
    pub(crate) fn accepted(&self, priority: Priority) {
        self.accepted[index(priority)].increment();
    }

    #[inline]
    pub(crate) fn shed(&self, priority: Priority) {
        self.shed[index(priority)].increment();
    }
}
